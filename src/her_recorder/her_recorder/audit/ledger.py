"""What the bags say about where each episode came from: the audit's ledger of episodes.

The reader's episodes are the ones that pass its checks; an evaluation must also account
for the ones that did not (aborted, discarded, cut off by a crash, invalid). The ledger is
built from every START, end, Step and desired-goal message of every bag, whatever the
reader made of them, with the provenance each carries (her_goals.evaluation): the bag's
evaluation plan, the START's split and stream index, each Step's policy.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from her_goals.evaluation import EvaluationPlan
from her_goals.provenance import episode_digest
from her_recorder import interfaces as ifc
from her_recorder.bagmeta import BagMeta
from her_recorder.reader import BagSource, EpisodeMessages, collect_episode_messages, inspect_bag

END_KINDS = {int(ifc.EventKind.END): "END", int(ifc.EventKind.ABORT): "ABORT", int(ifc.EventKind.DISCARD): "DISCARD"}


@dataclass
class LedgerEpisode:
    """One episode of one bag as its messages record it (nothing checked yet)."""

    bag: Path
    episode_id: int
    plan: EvaluationPlan | None
    """The evaluation plan of the episode's bag."""
    starts: int
    """START events with this id (1 in a sound bag)."""
    task: str = ""
    goal_space: str = ""
    start_reason: str = ""
    split: str | None = None
    """START split; None when the bag's EpisodeEvent definition has no split (older bag)."""
    stream_index: int | None = None
    """START stream index; None when the definition has none."""
    desired_goal: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    """The requested goal of the START event."""
    end: str = ""
    """``END``, ``ABORT``, ``DISCARD``, or '' (no end event: the recording stopped)."""
    ends: int = 0
    end_reason: str = ""
    end_success: bool = False
    steps: int = 0
    step_goal_changed: int | None = None
    """Index of the first step whose desired goal differs from the START's, or None."""
    goal_messages: list[tuple[NDArray[np.float64], float, str]] = field(default_factory=list)
    """``/her/desired_goal`` messages: (value, tolerance, goal space)."""
    policies: Counter[str | None] = field(default_factory=Counter)
    """Steps by the policy they name (None: the Step definition has no policy field)."""
    achieved: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    """Every achieved and next-achieved goal of the episode's steps, (2T, dim)."""
    trajectory: str = ""
    """Hash of the episode's observations, actions and achieved goals ('' without steps)."""
    digest: int | None = None
    """:func:`her_goals.provenance.episode_digest` of its observations, executed actions and
    requested goal, as the trainer records each episode it trains on (None without steps)."""

    @property
    def key(self) -> tuple[str, int]:
        return str(self.bag), self.episode_id

    def where(self) -> str:
        """``session/bag_0000 episode 3``."""
        return f"{self.bag.parent.name}/{self.bag.name} episode {self.episode_id}"


@dataclass
class BagLedger:
    """The episodes of one bag and what its metadata says about them."""

    bag: Path
    meta: BagMeta | None
    episodes: list[LedgerEpisode]
    needs_recovery: bool = False


def _stack(steps: Sequence[Any], name: str) -> NDArray[np.float64] | None:
    rows = [np.asarray(getattr(s, name), dtype=np.float64).reshape(-1) for s in steps]
    if not rows or len({r.shape for r in rows}) != 1:
        return None
    return np.stack(rows)


def _trajectory_hash(steps: Sequence[Any]) -> str:
    digest = hashlib.sha256()
    for name in ("observation", "action_raw", "achieved_goal", "next_achieved_goal"):
        for s in steps:
            digest.update(np.ascontiguousarray(getattr(s, name), dtype=np.float64).tobytes())
    return digest.hexdigest()


def ledger_episode(bag: Path, episode_id: int, messages: EpisodeMessages, plan: EvaluationPlan | None) -> LedgerEpisode:
    """The ledger entry of one episode from its decoded messages."""
    starts = [e for e in messages.events if int(e.event) == ifc.EventKind.START]
    ends = [e for e in messages.events if int(e.event) != ifc.EventKind.START]
    entry = LedgerEpisode(bag, episode_id, plan, starts=len(starts), ends=len(ends))
    if starts:
        start = starts[0]
        entry.task, entry.goal_space = str(start.task), str(start.goal_space)
        entry.start_reason = str(start.reason)
        split = ifc.field_or(start, "split", None)
        index = ifc.field_or(start, "stream_index", None)
        entry.split = None if split is None else str(split)
        entry.stream_index = None if index is None else int(index)  # type: ignore[call-overload]
        entry.desired_goal = np.asarray(start.desired_goal, dtype=np.float64).reshape(-1)
    if ends:
        end = ends[0]
        entry.end = END_KINDS.get(int(end.event), f"event {int(end.event)}")
        entry.end_reason, entry.end_success = str(end.reason), bool(end.success)
    steps = sorted(messages.steps, key=lambda s: int(s.step))
    entry.steps = len(steps)
    for s in steps:
        policy = ifc.field_or(s, "policy", None)
        entry.policies[None if policy is None else str(policy)] += 1
    for i, s in enumerate(steps):
        desired = np.asarray(s.desired_goal, dtype=np.float64).reshape(-1)
        if desired.shape != entry.desired_goal.shape or not np.array_equal(desired, entry.desired_goal):
            entry.step_goal_changed = int(steps[i].step)
            break
    entry.goal_messages = [
        (np.asarray(g.value, dtype=np.float64).reshape(-1), float(g.tolerance), str(g.goal_space))
        for g in messages.goals
    ]
    achieved = [a for a in (_stack(steps, "achieved_goal"), _stack(steps, "next_achieved_goal")) if a is not None]
    if achieved and len({a.shape[1] for a in achieved}) == 1:
        entry.achieved = np.concatenate(achieved)
    if steps:
        entry.trajectory = _trajectory_hash(steps)
        observation, action = _stack(steps, "observation"), _stack(steps, "action_applied")
        if observation is not None and action is not None:
            entry.digest = episode_digest(observation, action, np.asarray(steps[0].desired_goal, np.float64))
    return entry


def read_ledger(bag_paths: Sequence[Path], metas: Mapping[Path, BagMeta | None]) -> list[BagLedger]:
    """The ledger of every bag, in the order given."""
    out: list[BagLedger] = []
    for bag in bag_paths:
        meta = metas.get(bag)
        info = inspect_bag(bag)
        grouped = collect_episode_messages(BagSource(info))
        plan = meta.plan if meta is not None else None
        episodes = [ledger_episode(bag, eid, grouped[eid], plan) for eid in sorted(grouped)]
        out.append(BagLedger(bag, meta, [e for e in episodes if e.starts or e.ends or e.steps], info.needs_recovery))
    return out
