"""What the reader returns: validated episodes, problems, and the report of a read.

:class:`Episode` is one complete, validated episode as numpy arrays (the shared
:class:`her_goals.episode_arrays.EpisodeArrays`, plus its bag and id);
:class:`Problem` is one thing wrong with a bag, an episode or a step;
:class:`ValidationReport` collects them per bag with a one-line summary that
says what was left out and what to run next.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from her_goals import GoalSpace
from her_goals.episode_arrays import EpisodeArrays
from her_recorder.bagmeta import BagMeta

Severity = Literal["error", "excluded", "warning"]
"""``error``: invalid data, episode left out. ``excluded``: not a complete episode
(incomplete, aborted, discarded), left out. ``warning``: kept, but look at it."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bag, an episode or a step."""

    bag: Path
    episode_id: int | None
    step: int | None
    kind: str
    message: str
    severity: Severity = "error"

    def where(self) -> str:
        """``bag_0003 episode 12 step 4`` (as much as is known)."""
        out = self.bag.name
        if self.episode_id is not None:
            out += f" episode {self.episode_id}"
        if self.step is not None:
            out += f" step {self.step}"
        return out

    def __str__(self) -> str:
        return f"{self.severity}: {self.where()}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class Episode(EpisodeArrays):
    """One complete, validated episode read from a bag: its arrays (one row per step) and
    where it came from. Every recorder field of :class:`EpisodeArrays` is present."""

    bag: Path
    episode_id: int
    task: str
    goal_space: GoalSpace
    end_reason: str
    status: Literal["complete", "aborted"] = "complete"
    split: str = ""
    """The split its START names (``train``, ``eval``, ...; '' in bags written before splits)."""
    # What a recorder always writes (optional in EpisodeArrays, present here).
    reward: NDArray[np.float32]
    action_raw: NDArray[np.float64]
    is_success: NDArray[np.bool_]
    safety_flags: NDArray[np.uint32]
    safety_cost: NDArray[np.float32]
    safety_reasons: tuple[tuple[str, ...], ...]
    stamp_ns: NDArray[np.int64]


@dataclass
class BagReport:
    """How one bag was read."""

    path: Path
    source: Literal["rosbags", "tolerant scan"]
    needs_recovery: bool
    notes: list[str] = field(default_factory=list)
    episodes_read: int = 0
    steps_read: int = 0
    episodes_left_out: int = 0


@dataclass
class ValidationReport:
    """Everything :func:`read_episodes` found: per bag, per episode, per step."""

    bags: list[BagReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    episodes_read: int = 0
    steps_read: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    """Episodes left out, by reason (incomplete, aborted, discarded, invalid)."""

    @property
    def ok(self) -> bool:
        """True when no episode was invalid and every bag was closed cleanly."""
        return not any(p.severity == "error" for p in self.problems) and not any(
            b.needs_recovery for b in self.bags
        )

    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def summary_line(self) -> str:
        """One line: what was read, what was left out and why, what to run next."""
        n_bags = len(self.bags)
        line = (
            f"read {n_bags} bag{'s' if n_bags != 1 else ''}: {self.episodes_read} episode"
            f"{'s' if self.episodes_read != 1 else ''} ({self.steps_read} steps) usable"
        )
        total = sum(self.left_out.values())
        if total:
            parts = ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items()))
            line += f"; left out {total}: {parts}"
            first = next((p for p in self.problems if p.severity == "error"), None)
            first = first or next((p for p in self.problems if p.severity == "excluded"), None)
            if first is not None:
                line += f" (first: {first.where()}: {first.message})"
        warnings = sum(1 for p in self.problems if p.severity == "warning")
        if warnings:
            line += f"; {warnings} warning{'s' if warnings != 1 else ''}"
        unclosed = [b.path for b in self.bags if b.needs_recovery]
        if unclosed:
            line += (
                f"; {len(unclosed)} bag(s) not closed cleanly, read up to their last intact "
                f"record: run `her bag recover {' '.join(str(p) for p in unclosed)}`"
            )
        return line

    def format(self, *, max_problems: int = 50) -> str:
        """The full report: one line per bag, one per problem, then the summary line."""
        lines = []
        for bag in self.bags:
            state = "NOT CLOSED (tolerant scan)" if bag.needs_recovery else "ok"
            lines.append(
                f"{bag.path}: {state}; {bag.episodes_read} episodes, {bag.steps_read} steps read, "
                f"{bag.episodes_left_out} left out"
            )
            lines.extend(f"  note: {note}" for note in bag.notes)
        for problem in self.problems[:max_problems]:
            lines.append(f"  {problem}")
        if len(self.problems) > max_problems:
            lines.append(f"  ... and {len(self.problems) - max_problems} more problems")
        lines.append(self.summary_line())
        return "\n".join(lines)


@dataclass
class ReadResult:
    """Episodes read from bags, and the report of what was checked and left out."""

    episodes: list[Episode]
    report: ValidationReport


@dataclass
class BagInfo:
    """What a bag directory holds and whether it was closed cleanly."""

    path: Path
    files: list[Path]
    """Storage files the bag consists of (listed in metadata.yaml or found on disk)."""
    needs_recovery: bool
    reasons: list[str]
    """Why the bag needs recovery (empty when it does not)."""
    metadata: dict[str, Any] | None
    """``rosbag2_bagfile_information`` from metadata.yaml, if it could be read."""
    meta: BagMeta | None = None
    """The HER description (goal space, task, config, seeds), if the bag has one."""
    topics: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Topic -> (message type, message count)."""
    episodes: dict[str, Any] = field(default_factory=dict)
    last_episode_id: int | None = None
    size_bytes: int = 0

    @property
    def message_count(self) -> int:
        return sum(count for _, count in self.topics.values())

    @property
    def state(self) -> str:
        """``clean``, ``recovered`` (repaired by ``her bag recover``) or ``unclosed``."""
        if self.needs_recovery:
            return "unclosed"
        return "recovered" if self.meta is not None and self.meta.recovered else "clean"


@dataclass
class EpisodeMessages:
    """The decoded messages of one episode, in bag order (not yet checked)."""

    events: list[Any] = field(default_factory=list)
    """EpisodeEvent messages (START and END/ABORT/DISCARD)."""
    steps: list[Any] = field(default_factory=list)
    """Step messages."""
    goals: list[Any] = field(default_factory=list)
    """``/her/desired_goal`` Goal messages (the requested goal as published, with its tolerance)."""
    truths: list[Any] = field(default_factory=list)
    """Simulation only: ``/her/true_achieved_goal`` Goal messages, one per step."""
    sim_params: dict[str, Any] | None = None
    """Simulation only: the episode's ``/her/sim_params`` record."""
