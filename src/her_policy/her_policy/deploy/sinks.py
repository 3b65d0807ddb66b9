"""Where the control loop's steps go: a list (tests), a callable, or the episode recorder (bags)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from her_goals.evaluation import EVAL, NO_INDEX
from her_goals.safety_flags import SafetyStatus
from her_policy.deploy.pipeline import Vector

# -- recording ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
    """One step as ``her_interfaces/Step`` records it (plus the command, for debugging)."""

    stamp_ns: int
    observation: Vector
    next_observation: Vector
    action_raw: Vector
    action_applied: Vector
    achieved_goal: Vector
    next_achieved_goal: Vector
    safety_flags: int
    safety_cost: float
    safety_reasons: tuple[str, ...]
    status: SafetyStatus
    command: Vector | None
    truncated: bool = False
    true_next_achieved_goal: Vector | None = None
    """Simulation only: the true state's achieved goal after the step (honest sensing)."""


class StepSink(Protocol):
    """Where steps go: the her_recorder EpisodeRecorder (via :class:`RecorderSink`) or a list."""

    def start_episode(self, desired_goal: Vector, *, stamp_ns: int) -> Any: ...

    def record_step(self, record: StepRecord) -> Any: ...

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> Any: ...


class ListSink:
    """Keeps every step in memory (tests, short runs)."""

    def __init__(self) -> None:
        self.episodes: list[dict[str, Any]] = []

    def start_episode(self, desired_goal: Vector, *, stamp_ns: int) -> None:
        self.episodes.append({"desired_goal": desired_goal, "steps": [], "end": None})

    def record_step(self, record: StepRecord) -> None:
        self.episodes[-1]["steps"].append(record)

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> None:
        self.episodes[-1]["end"] = ("ABORT" if aborted else "END", reason)

    @property
    def steps(self) -> list[StepRecord]:
        return [s for e in self.episodes for s in e["steps"]]


class CallableSink:
    """Adapts a plain ``step_sink(record)`` callable to :class:`StepSink`."""

    def __init__(self, fn: Callable[[StepRecord], Any]) -> None:
        self.fn = fn

    def start_episode(self, desired_goal: Vector, *, stamp_ns: int) -> None:
        pass

    def record_step(self, record: StepRecord) -> None:
        self.fn(record)

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> None:
        pass


class RecorderSink:
    """Sends steps to a ``her_recorder.EpisodeRecorder`` (an open one), flags and cost included.

    Stamps must be >= 0 ns (bag time); reward and success are left to the recorder, which
    computes them with the goal space's own function (ARCHITECTURE.md, rule 2).

    Provenance (her_goals.evaluation): every START names the ``split`` and, for an
    evaluation, the goal's index in the planned stream - the driver runs the plan's goals
    in order, one episode each, so the n-th started episode is stream index
    ``first_index + n``; every Step names ``policy``, the policy that acted.
    """

    def __init__(
        self, recorder: Any, *, split: str = "", policy: str = "", first_index: int = 0
    ) -> None:
        self.recorder = recorder
        self.split = split
        """Recorded as the START split (and reason): ``eval`` or ``train``."""
        self.policy = policy
        """Recorded in every Step: the artefact hash, ``scripted``, ``random``..."""
        self.next_index = first_index if split == EVAL else NO_INDEX
        """Stream index of the next episode (evaluation only; -1 otherwise)."""

    def start_episode(
        self, desired_goal: Vector, *, stamp_ns: int, sim_params: dict[str, Any] | None = None
    ) -> Any:
        index = self.next_index
        if index != NO_INDEX:
            self.next_index += 1
        return self.recorder.start_episode(
            desired_goal, stamp_ns=stamp_ns, reason=self.split, split=self.split,
            stream_index=index, sim_params=sim_params,
        )  # fmt: skip

    def record_step(self, record: StepRecord) -> Any:
        return self.recorder.record_step(
            observation=record.observation,
            next_observation=record.next_observation,
            action_raw=record.action_raw,
            action_applied=record.action_applied,
            achieved_goal=record.achieved_goal,
            next_achieved_goal=record.next_achieved_goal,
            truncated=record.truncated,
            safety_flags=record.safety_flags,
            safety_cost=record.safety_cost,
            safety_reasons=record.safety_reasons,
            stamp_ns=record.stamp_ns,
            policy=self.policy,
            true_next_achieved_goal=record.true_next_achieved_goal,
        )

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> Any:
        if aborted:
            return self.recorder.abort_episode(reason, stamp_ns=stamp_ns)
        return self.recorder.end_episode(stamp_ns=stamp_ns)


