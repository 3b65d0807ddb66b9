"""Bags recorded with plain ``ros2 bag record`` of the ``/her/*`` topics (no HER metadata).

Such a bag holds the same Step and EpisodeEvent messages as ours, without the
``her_recorder`` metadata (so does one of ours after ``ros2 bag convert``, which does not copy
it). It is read without flags:

* the goal space is the one its START events name (with the registered tolerance, said in
  a warning); START events naming different goal spaces are an error;
* a recording usually starts mid-episode: the episode cut by the recording's start (steps
  and an end event, no START, before the first START of the bag) is left out and named, as
  the episode cut by the recording's end is (the checker leaves it out as incomplete).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from her_goals import GoalSpace, get_goal_space
from her_goals.errors import HerError
from her_goals.tasks import TASKS, task_goal_space
from her_recorder import interfaces as ifc
from her_recorder.errors import BagFormatError
from her_recorder.reader.model import Problem


def goal_space_from_messages(bag: Path, grouped: Mapping[int, Any], problems: list[Problem]) -> GoalSpace | None:
    """The goal space the START events of a bag without HER metadata name (None: no START)."""
    names = {str(e.goal_space) for m in grouped.values() for e in m.events if e.event == ifc.EventKind.START}
    if not names:
        return None
    if len(names) > 1:
        raise BagFormatError(f"{bag}: no HER metadata and START events name several goal spaces {sorted(names)}; "
                             "pass the one to read (--goal-space NAME)")
    (name,) = names
    tasks = {str(e.task) for m in grouped.values() for e in m.events if e.event == ifc.EventKind.START}
    try:
        space = get_goal_space(name)
    except HerError as exc:
        raise BagFormatError(f"{bag}: its START events name goal space {name!r}: {exc}") from None
    source = f"registered tolerance {space.tolerance:g}"
    if len(tasks) == 1 and next(iter(tasks)) in TASKS and TASKS[next(iter(tasks))].goal_space == name:
        (task,) = tasks
        space = task_goal_space(task)  # the task's tolerance, as its env and its trained policy score
        source = f"tolerance {space.tolerance:g} of task {task!r}"
    problems.append(Problem(bag, None, None, "goal_space_from_messages",
                            f"goal space {name!r} from the START events (no HER metadata: a plain "
                            f"`ros2 bag record`?); {source}", "warning"))
    return space


def without_cut_at_start(bag: Path, grouped: Mapping[int, Any], problems: list[Problem]) -> tuple[dict[int, Any], int]:
    """``grouped`` without the episodes the recording's start cut (named in ``problems``); how many."""
    started = [i for i, m in grouped.items() if any(e.event == ifc.EventKind.START for e in m.events)]
    first = min(started, default=None)
    kept, cut = {}, 0
    for episode_id, messages in grouped.items():
        if not any(e.event == ifc.EventKind.START for e in messages.events) and (first is None or episode_id < first):
            cut += 1
            problems.append(Problem(bag, episode_id, None, "cut_by_recording",
                                    f"{len(messages.steps)} steps without their START: the recording started "
                                    "mid-episode; left out", "excluded"))
        else:
            kept[episode_id] = messages
    return kept, cut
