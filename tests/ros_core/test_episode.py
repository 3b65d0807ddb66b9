"""Episode bookkeeping: start, time limit, success, e-stop, refusal, timeout, abort."""

from __future__ import annotations

import numpy as np
import pytest

from her_goals import get_goal_space
from her_goals.episode import EpisodeBook, EventKind
from her_goals.errors import GoalError
from her_recorder.interfaces import EventKind as RecorderEventKind
from her_recorder.interfaces import SafetyFlag

SPACE = get_goal_space("ee_position")
GOAL = np.array([0.5, 0.0, 0.2])
FAR = np.array([0.3, 0.1, 0.1])


def test_event_kinds_and_flags_match_the_messages():
    assert {k.name: int(k) for k in EventKind} == {k.name: int(k) for k in RecorderEventKind}
    from her_goals import episode

    assert episode.ESTOP_FLAG == SafetyFlag.ESTOP
    assert episode.GOAL_OUT_OF_REGION_FLAG == SafetyFlag.GOAL_OUT_OF_REGION


def test_time_limit_ends_with_requested_goal_success_of_the_last_step():
    book = EpisodeBook(SPACE, max_steps=3)
    start = book.start(GOAL, 0, "auto")
    assert start.kind == EventKind.START and start.episode_id == 0 and start.num_steps == 0
    assert book.on_step(0, GOAL, now_ns=1) is None  # success mid-episode does not end it
    assert book.on_step(0, FAR, now_ns=2) is None
    end = book.on_step(0, GOAL + 0.01, now_ns=3)
    assert end is not None and end.kind == EventKind.END and end.num_steps == 3
    assert end.success and end.reason == "success"
    book.start(GOAL, 4)
    book.on_step(1, FAR, now_ns=5, truncated=True)  # the policy's own tick limit
    assert not book.running


def test_end_on_success_and_terminated():
    book = EpisodeBook(SPACE, max_steps=50, end_on_success=True)
    book.start(GOAL, 0)
    assert book.on_step(0, FAR, now_ns=1) is None
    end = book.on_step(0, GOAL, now_ns=2)
    assert end is not None and (end.kind, end.reason, end.num_steps) == (EventKind.END, "success", 2)
    book.start(GOAL, 3)
    end = book.on_step(1, FAR, now_ns=4, terminated=True)
    assert end is not None and (end.reason, end.success) == ("terminated", False)


def test_estop_and_refusal_abort():
    book = EpisodeBook(SPACE)
    book.start(GOAL, 0)
    end = book.on_step(0, GOAL, now_ns=1, safety_flags=int(SafetyFlag.ESTOP | SafetyFlag.STALE_STATE))
    assert end is not None and (end.kind, end.reason, end.success) == (EventKind.ABORT, "estop", False)
    book.start(GOAL, 2)
    end = book.on_step(1, GOAL, now_ns=3, safety_flags=int(SafetyFlag.GOAL_OUT_OF_REGION))
    assert end is not None and end.kind == EventKind.ABORT and end.reason.startswith("refused")


def test_steps_of_other_episodes_are_ignored_and_counted():
    book = EpisodeBook(SPACE, max_steps=2)
    book.on_step(7, GOAL, now_ns=0)
    book.start(GOAL, 1)
    assert book.on_step(3, GOAL, now_ns=2) is None
    assert book.ignored_steps == 2 and book.num_steps == 0


def test_timeout_and_operator_abort():
    book = EpisodeBook(SPACE, timeout_s=1.0)
    assert book.on_time(10**10) is None and book.abort("operator", 0) is None
    book.start(GOAL, 0)
    assert book.on_time(900_000_000) is None
    end = book.on_time(1_100_000_000)
    assert end is not None and end.kind == EventKind.ABORT and end.reason.startswith("timeout")
    book.start(GOAL, 2)
    end = book.abort("operator", 3)
    assert end is not None and end.reason == "operator" and end.episode_id == 1


def test_bad_goals_and_double_start_are_refused():
    book = EpisodeBook(SPACE)
    with pytest.raises(GoalError):
        book.start([0.5, 0.0], 0)
    with pytest.raises(GoalError):
        book.start([np.nan, 0.0, 0.1], 0)
    book.start(GOAL, 0)
    with pytest.raises(GoalError, match="still running"):
        book.start(GOAL, 1)


def test_nan_achieved_goal_is_not_a_success():
    book = EpisodeBook(SPACE, max_steps=1)
    book.start(GOAL, 0)
    end = book.on_step(0, [np.nan, 0, 0], now_ns=1)
    assert end is not None and not end.success and end.reason == "time_limit"
