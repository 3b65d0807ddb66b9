"""The checks of a bag and of each episode in it; a failed check is a :class:`Problem`.

Bag level: the message schemas (:func:`check_schema`), ``metadata.yaml``'s counts
(:func:`check_counts`) and the goal space (:func:`resolve_goal_space`).
Episode level (:class:`EpisodeChecker`): its events, step indices and stamps,
array shapes, finite values, the requested goal, the reward and success
recomputed by the goal space, continuity and the done flags. An episode with
an error is left out; warnings keep it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rosbags.typesys import TypesysError, get_types_from_msg

from her_goals import GoalSpace
from her_recorder import interfaces as ifc
from her_recorder.bagmeta import BagMeta
from her_recorder.errors import BagFormatError, BagMismatchError
from her_recorder.reader.model import BagInfo, Episode, EpisodeMessages, Problem, Severity
from her_recorder.reader.source import BagSource

VECTOR_FIELDS = (
    "observation",
    "next_observation",
    "action_raw",
    "action_applied",
    "achieved_goal",
    "next_achieved_goal",
    "desired_goal",
)
"""Step fields stacked into (T, n) arrays."""
GOAL_FIELDS = ("achieved_goal", "next_achieved_goal", "desired_goal")


# -- bag level ---------------------------------------------------------------------------


def _fielddefs_of(msgdef: str, msgtype: str) -> Any:
    return get_types_from_msg(ifc.first_section(msgdef), msgtype)[msgtype]


def check_schema(src: BagSource, bag: Path, problems: list[Problem]) -> None:
    """Refuse a bag whose HER topics carry another type, or a definition without the fields
    the reader needs; a definition without the provenance fields (an older her_recorder's)
    is read with the bag's own definition and reported."""
    store = ifc.typestore()
    seen = {topic: msgtype for topic, msgtype in src.topic_counts}
    for topic, expected in (
        (ifc.TOPIC_STEP, ifc.STEP_TYPE),
        (ifc.TOPIC_EPISODE, ifc.EVENT_TYPE),
        (ifc.TOPIC_DESIRED_GOAL, ifc.GOAL_TYPE),
    ):
        msgtype = seen.get(topic)
        if msgtype is None:
            continue
        if msgtype != expected:
            raise BagMismatchError(
                f"{bag}: topic {topic} carries {msgtype}, expected {expected}: "
                "not a HER-ROS bag of this version"
            )
        text = src.msgdefs.get(topic, "")
        if not text:
            problems.append(
                Problem(
                    bag,
                    None,
                    None,
                    "schema",
                    f"{topic} has no message definition; assuming the current one",
                    "warning",
                )
            )
            continue
        try:
            theirs = dict(_fielddefs_of(text, expected)[1])
        except (TypesysError, KeyError, ValueError) as exc:
            raise BagMismatchError(
                f"{bag}: the {expected} definition in the bag does not parse: {exc}"
            ) from None
        ours = dict(store.fielddefs[expected][1])
        optional = set(ifc.PROVENANCE_FIELDS.get(expected, ()))
        needed = {name: kind for name, kind in ours.items() if name not in optional}
        wrong = sorted(n for n, kind in needed.items() if theirs.get(n) != kind)
        if wrong:
            raise BagMismatchError(
                f"{bag}: {expected} was recorded with another definition (fields "
                f"{sorted(theirs)}; this version needs {sorted(needed)}, differing in {wrong}). "
                "Read it with the her_recorder version that wrote it, or convert it."
            )
        lacking = sorted(n for n in optional if n not in theirs)
        if lacking or set(theirs) - set(ours):
            problems.append(
                Problem(
                    bag,
                    None,
                    None,
                    "old_schema",
                    f"{expected} was recorded with an older definition (without {lacking}); "
                    "read with the bag's own definition, so where its evaluation came from "
                    "is not recorded",
                    "warning",
                )
            )


def check_counts(info: BagInfo, src: BagSource, bag: Path, problems: list[Problem]) -> None:
    """Compare metadata.yaml's per-topic counts with what the files hold."""
    got: Counter[str] = Counter()
    for (topic, _), n in src.topic_counts.items():
        got[topic] += n
    for topic, (_, n) in info.topics.items():
        if topic in (ifc.TOPIC_STEP, ifc.TOPIC_EPISODE) and got.get(topic, 0) != n:
            problems.append(
                Problem(
                    bag,
                    None,
                    None,
                    "metadata_mismatch",
                    f"metadata.yaml says {n} {topic} messages, the files hold {got.get(topic, 0)}; "
                    f"run `her bag recover {bag}` to rebuild metadata.yaml",
                    "warning",
                )
            )


def resolve_goal_space(
    bag: Path, meta: BagMeta | None, wanted: GoalSpace | None, problems: list[Problem]
) -> GoalSpace:
    """The goal space to check ``bag`` against: its own, which must match ``wanted`` if given."""
    if meta is None:
        if wanted is None:
            raise BagFormatError(
                f"{bag}: no HER metadata (goal space, task); it was not written by her_recorder. "
                "Pass the goal space (goal_space=... or --goal-space NAME) to read it."
            )
        problems.append(
            Problem(
                bag,
                None,
                None,
                "no_metadata",
                f"no HER metadata; assuming goal space {wanted.name!r}",
                "warning",
            )
        )
        return wanted
    if wanted is not None and not meta.goal_space.same_as(wanted):
        raise BagMismatchError(
            f"{bag} was recorded in goal space {meta.goal_space.spec()}, but "
            f"{wanted.spec()} was asked for: rewards would not agree. Read it separately "
            "or relabel it deliberately."
        )
    return meta.goal_space


# -- episode level -----------------------------------------------------------------------


@dataclass
class EpisodeProblems:
    """The problems found in one episode, in the order the checks found them."""

    bag: Path
    episode_id: int
    items: list[Problem] = field(default_factory=list)

    def add(self, kind: str, msg: str, step: int | None = None, sev: Severity = "error") -> None:
        self.items.append(Problem(self.bag, self.episode_id, step, kind, msg, sev))

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.items)


@dataclass(frozen=True)
class _Bounds:
    """The START and end events of an episode that has both, and how it ended."""

    start: Any
    end: Any
    kind: int


def _stack(rows: list[Any]) -> tuple[NDArray[np.float64] | None, int | None]:
    """Stack 1-D rows into (T, n); on a length change return (None, first bad step index)."""
    n = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != n:
            return None, i
    if n == 0:
        return np.zeros((len(rows), 0)), None
    return np.asarray(np.stack(rows), dtype=np.float64), None


def _bounds(
    messages: EpisodeMessages, include_aborted: bool, found: EpisodeProblems
) -> _Bounds | str:
    """The episode's START and end events, or why it is left out."""
    starts = [e for e in messages.events if e.event == ifc.EventKind.START]
    ends = [e for e in messages.events if e.event != ifc.EventKind.START]
    if len(starts) > 1 or len(ends) > 1:
        found.add(
            "duplicate_episode", f"{len(starts)} START and {len(ends)} end events share this id"
        )
        return "invalid"
    if not starts:
        found.add("no_start", f"{len(messages.steps)} steps and no START event")
        return "invalid"
    if not ends:
        found.add(
            "incomplete",
            f"no END event after {len(messages.steps)} steps: the recording stopped "
            "mid-episode (crash?); never used as a complete episode",
            sev="excluded",
        )
        return "incomplete"
    end = ends[0]
    kind = int(end.event)
    if kind == ifc.EventKind.DISCARD:
        found.add("discarded", f"discarded ({end.reason or 'no reason'})", sev="excluded")
        return "discarded"
    if kind == ifc.EventKind.ABORT and not include_aborted:
        found.add("aborted", f"aborted ({end.reason or 'no reason'})", sev="excluded")
        return "aborted"
    if kind not in (ifc.EventKind.END, ifc.EventKind.ABORT):
        found.add("bad_event", f"unknown end event {kind}")
        return "invalid"
    return _Bounds(starts[0], end, kind)


def _check_indices(steps: Sequence[Any], end: Any, found: EpisodeProblems) -> NDArray[np.int64]:
    """Step indices (sorted); duplicates, gaps and a count the end event disagrees with."""
    index = np.array([s.step for s in steps], dtype=np.int64)
    if len(np.unique(index)) != len(index):
        dup = index[np.flatnonzero(np.diff(index) == 0)[0]]
        found.add("duplicate_steps", f"step index {int(dup)} recorded more than once", int(dup))
    # Steps 0..n-1 must all be there, n = what the end event counted (or more
    # if more arrived): a gap and a missing tail are both missing steps.
    n_expected = max(int(end.num_steps), int(index.max()) + 1)
    missing = sorted(set(range(n_expected)) - set(index.tolist()))
    if missing:
        found.add(
            "missing_steps",
            f"missing step(s) {missing[:10]}{'...' if len(missing) > 10 else ''} of {n_expected}",
            missing[0],
        )
    elif int(end.num_steps) != len(steps):
        found.add(
            "step_count",
            f"the end event says {int(end.num_steps)} steps, the bag holds {len(steps)}",
        )
    return index


def _check_stamps(
    steps: Sequence[Any], index: NDArray[np.int64], found: EpisodeProblems
) -> NDArray[np.int64]:
    """Header stamps in ns; each must be after the previous step's."""
    stamps = np.array(
        [s.header.stamp.sec * 1_000_000_000 + s.header.stamp.nanosec for s in steps],
        dtype=np.int64,
    )
    back = np.flatnonzero(np.diff(stamps) <= 0)
    if back.size:
        i = int(back[0]) + 1
        found.add(
            "non_monotonic_stamp",
            f"stamp {stamps[i]} ns is not after the previous step's {stamps[i - 1]} ns",
            int(index[i]),
        )
    return stamps


def _stack_fields(
    steps: Sequence[Any], index: NDArray[np.int64], space: GoalSpace, found: EpisodeProblems
) -> dict[str, NDArray[np.float64]]:
    """The vector fields as (T, n) arrays; a field that changes length or has the wrong
    goal dimension is reported and left out of the result."""
    arrays: dict[str, NDArray[np.float64]] = {}
    for name in VECTOR_FIELDS:
        stacked, first_bad = _stack([getattr(s, name) for s in steps])
        if stacked is None:
            row = first_bad or 0
            found.add(
                "shape",
                f"{name} changes length from {len(getattr(steps[0], name))} to "
                f"{len(getattr(steps[row], name))}",
                int(index[row]),
            )
            continue
        arrays[name] = stacked
    for name in GOAL_FIELDS:
        if name in arrays and arrays[name].shape[1] != space.dim:
            found.add(
                "shape",
                f"{name} has {arrays[name].shape[1]} components; goal space "
                f"{space.name!r} has {space.dim}",
            )
            arrays.pop(name)
    return arrays


def _check_finite(
    checked: Sequence[tuple[str, NDArray[Any]]], index: NDArray[np.int64], found: EpisodeProblems
) -> None:
    for name, arr in checked:
        bad_mask = ~np.isfinite(arr)
        if bad_mask.any():
            row = int(np.argwhere(bad_mask)[0][0])
            col = np.argwhere(bad_mask)[0][1:] if arr.ndim > 1 else []
            at = f"[{int(col[0])}]" if len(col) else ""
            value = arr[bad_mask][0]
            found.add("non_finite", f"{name}{at} is {value}", int(index[row]))


def _check_requested_goal(
    desired: NDArray[np.float64],
    start: Any,
    dim: int,
    index: NDArray[np.int64],
    found: EpisodeProblems,
) -> None:
    """Every step's desired goal is the START event's: a relabelled goal is never recorded."""
    start_goal = np.asarray(start.desired_goal, dtype=np.float64)
    if start_goal.shape == (dim,) and np.array_equal(
        desired, np.broadcast_to(start_goal, desired.shape)
    ):
        return
    row = (
        int(np.flatnonzero(~np.all(desired == start_goal, axis=-1))[0])
        if start_goal.shape == (dim,)
        else 0
    )
    found.add(
        "desired_goal_changed",
        "desired_goal differs from the START event's "
        "(a relabelled goal must never be recorded as the requested one)",
        int(index[row]),
    )


def _check_recompute(
    space: GoalSpace,
    reward: NDArray[np.float32],
    success: NDArray[np.bool_],
    next_ag: NDArray[np.float64],
    desired: NDArray[np.float64],
    bounds: _Bounds,
    index: NDArray[np.int64],
    found: EpisodeProblems,
) -> None:
    """Recorded rewards, is_success flags and END success against the goal space's own."""
    expected_reward = space.compute_reward(next_ag, desired)
    bad = np.flatnonzero(reward != expected_reward)
    if bad.size:
        i = int(bad[0])
        found.add(
            "reward_mismatch",
            f"reward {reward[i]} but compute_reward(next_achieved_goal, "
            f"desired_goal) = {expected_reward[i]} ({bad.size} step(s) differ)",
            int(index[i]),
        )
    expected_success = space.is_success(next_ag, desired)
    bad = np.flatnonzero(success != expected_success)
    if bad.size:
        i = int(bad[0])
        found.add(
            "success_mismatch",
            f"is_success {bool(success[i])} but the goal space says "
            f"{bool(expected_success[i])} ({bad.size} step(s) differ)",
            int(index[i]),
        )
    end = bounds.end
    if bounds.kind == ifc.EventKind.END and bool(end.success) != bool(expected_success[-1]):
        distance = float(space.distance(next_ag[-1], desired[-1]))
        found.add(
            "requested_success_mismatch",
            f"END says success={bool(end.success)} but the final achieved goal is "
            f"{distance:.4g} {space.units} from the requested goal (tolerance {space.tolerance} "
            f"{space.units}); requested-goal success must come from the requested goal",
        )


def _check_continuity(
    arrays: dict[str, NDArray[np.float64]], index: NDArray[np.int64], found: EpisodeProblems
) -> None:
    """Warn where a step does not start where the previous one ended."""
    if len(index) < 2:
        return
    for now, before in (
        ("achieved_goal", "next_achieved_goal"),
        ("observation", "next_observation"),
    ):
        jump = np.flatnonzero(~np.all(arrays[now][1:] == arrays[before][:-1], axis=-1))
        if jump.size:
            found.add(
                "discontinuity",
                f"{now} differs from the previous step's {before}",
                int(index[int(jump[0]) + 1]),
                "warning",
            )


def _check_done_flags(
    steps: Sequence[Any], index: NDArray[np.int64], found: EpisodeProblems
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(terminated, truncated); warn when one is set before the last step."""
    terminated = np.array([s.terminated for s in steps], dtype=bool)
    truncated = np.array([s.truncated for s in steps], dtype=bool)
    early = np.flatnonzero((terminated | truncated)[:-1])
    if early.size:
        found.add(
            "early_done",
            "terminated or truncated before the last step",
            int(index[int(early[0])]),
            "warning",
        )
    return terminated, truncated


class EpisodeChecker:
    """All checks of one episode; collects problems, builds the Episode if it passes."""

    def __init__(self, bag: Path, goal_space: GoalSpace, task: str, include_aborted: bool) -> None:
        self.bag = bag
        self.goal_space = goal_space
        self.task = task
        self.include_aborted = include_aborted

    def check(
        self, episode_id: int, messages: EpisodeMessages
    ) -> tuple[Episode | None, list[Problem], str]:
        """Return (episode or None, problems, why left out or '')."""
        found = EpisodeProblems(self.bag, episode_id)
        bounds = _bounds(messages, self.include_aborted, found)
        if isinstance(bounds, str):
            return None, found.items, bounds
        if bounds.start.goal_space != self.goal_space.name:
            found.add(
                "goal_space",
                f"START names goal space {bounds.start.goal_space!r}, "
                f"the bag {self.goal_space.name!r}",
            )
        if not messages.steps:
            found.add("empty", "no steps")
            return None, found.items, "invalid"
        episode = self._check_steps(episode_id, messages, bounds, found)
        return episode, found.items, "" if episode is not None else "invalid"

    def _check_steps(
        self, episode_id: int, messages: EpisodeMessages, bounds: _Bounds, found: EpisodeProblems
    ) -> Episode | None:
        steps = sorted(messages.steps, key=lambda s: s.step)
        space = self.goal_space
        index = _check_indices(steps, bounds.end, found)
        stamps = _check_stamps(steps, index, found)
        arrays = _stack_fields(steps, index, space, found)
        reward = np.array([s.reward for s in steps], dtype=np.float32)
        safety_cost = np.array([s.safety_cost for s in steps], dtype=np.float32)
        _check_finite(
            [*arrays.items(), ("reward", reward), ("safety_cost", safety_cost)], index, found
        )
        if found.has_errors:
            return None
        desired, next_ag = arrays["desired_goal"], arrays["next_achieved_goal"]
        success = np.array([s.is_success for s in steps], dtype=bool)
        _check_requested_goal(desired, bounds.start, space.dim, index, found)
        _check_recompute(space, reward, success, next_ag, desired, bounds, index, found)
        _check_continuity(arrays, index, found)
        terminated, truncated = _check_done_flags(steps, index, found)
        if found.has_errors:
            return None
        aborted = bounds.kind == ifc.EventKind.ABORT
        if aborted and not (terminated[-1] or truncated[-1]):
            truncated = truncated.copy()
            truncated[-1] = True  # cut short: a time-limit-like end, not a terminal state
        return Episode(
            bag=self.bag,
            episode_id=episode_id,
            task=bounds.start.task or self.task,
            goal_space=space,
            observation=arrays["observation"],
            next_observation=arrays["next_observation"],
            action_raw=arrays["action_raw"],
            action=arrays["action_applied"],
            achieved_goal=arrays["achieved_goal"],
            next_achieved_goal=next_ag,
            desired_goal=desired,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            is_success=success,
            safety_flags=np.array([s.safety_flags for s in steps], dtype=np.uint32),
            safety_cost=safety_cost,
            safety_reasons=tuple(tuple(s.safety_reasons) for s in steps),
            stamp_ns=stamps,
            success=1.0 if (not aborted and bounds.end.success) else 0.0,
            end_reason=str(bounds.end.reason),
            status="aborted" if aborted else "complete",
            split=str(getattr(bounds.start, "split", "") or ""),
            true_next_achieved_goal=_truths(messages, len(steps), space.dim),
            sim_params=messages.sim_params,
        )


def _truths(messages: EpisodeMessages, n_steps: int, dim: int) -> NDArray[np.float64] | None:
    """The true next achieved goals (simulation), when every step has one; else None."""
    if len(messages.truths) != n_steps:
        return None
    values = np.asarray([m.value for m in messages.truths], dtype=np.float64)
    return values.reshape(n_steps, dim) if values.size == n_steps * dim else None
