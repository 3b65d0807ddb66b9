"""Bad episodes are reported by bag, episode and step, and left out visibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from her_recorder_testlib import SPACE

from her_recorder import EpisodeRecorder, read_episodes


def _episode(
    rec: EpisodeRecorder,
    n: int = 5,
    *,
    t0: int = 10**9,
    bad_at: int | None = None,
    **step_overrides: object,
) -> None:
    rec.start_episode(np.zeros(3), stamp_ns=t0)
    for s in range(n):
        kwargs: dict[str, object] = {
            "observation": np.full(4, float(s)),
            "next_observation": np.full(4, s + 1.0),
            "action_raw": np.zeros(2),
            "achieved_goal": np.full(3, 0.1 * s),
            "next_achieved_goal": np.full(3, 0.1 * (s + 1)),
            "stamp_ns": t0 + 1000 * (s + 1),
        }
        if s == bad_at:
            kwargs.update(step_overrides)
        rec.record_step(**kwargs)  # type: ignore[arg-type]
    rec.end_episode(stamp_ns=t0 + 1000 * (n + 1))


def _read_one_bad(tmp_path: Path, caplog: pytest.LogCaptureFixture, **bad: object):
    path = tmp_path / "s"
    with EpisodeRecorder(path, goal_space=SPACE, task="reach", fsync=False) as rec:
        _episode(rec, t0=10**9)
        _episode(rec, t0=2 * 10**9, bad_at=2, **bad)
        _episode(rec, t0=3 * 10**9)
    result = read_episodes(path)
    assert [e.episode_id for e in result.episodes] == [0, 2]
    assert result.report.left_out == {"invalid": 1}
    errors = result.report.errors()
    assert errors and all(p.episode_id == 1 for p in errors)
    assert "left out 1: 1 invalid (first: bag_0000 episode 1" in caplog.text
    return errors


def test_nan_observation_names_bag_episode_step_and_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    errors = _read_one_bad(tmp_path, caplog, observation=np.array([0.0, 1.0, np.nan, 0.0]))
    assert errors[0].kind == "non_finite" and errors[0].step == 2
    assert "observation[2] is nan" in str(errors[0])
    assert str(errors[0]).startswith("error: bag_0000 episode 1 step 2:")


def test_inf_in_achieved_goal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    errors = _read_one_bad(tmp_path, caplog, next_achieved_goal=np.array([np.inf, 0, 0]))
    assert {p.kind for p in errors} == {"non_finite"}


def test_non_monotonic_stamp(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    errors = _read_one_bad(tmp_path, caplog, stamp_ns=2 * 10**9 + 1000)  # same as step 0's
    assert errors[0].kind == "non_monotonic_stamp" and errors[0].step == 2


def test_reward_that_is_not_compute_reward(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    errors = _read_one_bad(tmp_path, caplog, reward=0.0)
    assert errors[0].kind == "reward_mismatch" and errors[0].step == 2


def test_missing_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s"
    with EpisodeRecorder(path, goal_space=SPACE, task="reach", fsync=False) as rec:
        _episode(rec)
        rec.start_episode(np.zeros(3), stamp_ns=5 * 10**9)
        for s in range(4):
            if s == 2:
                rec._episode.num_steps += 1  # type: ignore[union-attr]  # a step lost on the way
            rec.record_step(
                observation=[0.0],
                next_observation=[0.0],
                action_raw=[0.0],
                achieved_goal=np.zeros(3),
                next_achieved_goal=np.zeros(3),
                stamp_ns=5 * 10**9 + 1000 * (s + 1),
            )
        rec.end_episode(stamp_ns=6 * 10**9)
    result = read_episodes(path)
    kinds = {p.kind: p for p in result.report.errors()}
    assert kinds["missing_steps"].step == 2 and kinds["missing_steps"].episode_id == 1
    assert [e.episode_id for e in result.episodes] == [0]


def test_hindsight_success_never_passes_as_requested_success(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with EpisodeRecorder(path, goal_space=SPACE, task="reach", fsync=False) as rec:
        rec.start_episode(np.zeros(3), stamp_ns=10)
        rec.record_step(
            observation=[0.0],
            next_observation=[0.0],
            action_raw=[0.0],
            achieved_goal=np.ones(3),
            next_achieved_goal=np.ones(3),
            stamp_ns=20,
        )
        rec.end_episode(success=True, stamp_ns=30)  # reached *a* goal, not the requested one
    result = read_episodes(path, log_summary=False)
    assert not result.episodes
    (problem,) = result.report.errors()
    assert problem.kind == "requested_success_mismatch"
    assert "1.732 m from the requested goal (tolerance 0.05 m)" in problem.message


def test_strict_raises_with_the_full_report(tmp_path: Path) -> None:
    from her_recorder import BagFormatError

    path = tmp_path / "s"
    with EpisodeRecorder(path, goal_space=SPACE, task="reach", fsync=False) as rec:
        _episode(rec, bad_at=1, observation=np.full(4, np.nan))
    with pytest.raises(BagFormatError, match="episode 0 step 1"):
        read_episodes(path, strict=True)


def test_shape_change_across_episodes(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with EpisodeRecorder(path, goal_space=SPACE, task="reach", fsync=False) as rec:
        _episode(rec)
        rec.start_episode(np.zeros(3), stamp_ns=9 * 10**9)
        rec.record_step(
            observation=[0.0] * 9,
            next_observation=[0.0] * 9,
            action_raw=[0.0, 0.0],
            achieved_goal=np.zeros(3),
            next_achieved_goal=np.zeros(3),
            stamp_ns=9 * 10**9 + 1,
        )
        rec.end_episode(stamp_ns=9 * 10**9 + 2)
    result = read_episodes(path, log_summary=False)
    assert [e.episode_id for e in result.episodes] == [0]
    assert result.report.errors()[0].kind == "shape"
