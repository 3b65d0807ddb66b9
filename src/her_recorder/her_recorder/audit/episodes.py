"""The episodes the audit looks at, gathered from the reader, and which split each belongs to.

Episodes the reader leaves out only because their recorded reward or success
disagrees with the goal space are rebuilt from their raw messages
(:func:`raw_episodes`): those are exactly the episodes a reward-recompute audit
exists for. Every episode is an :class:`AuditedEpisode`, whichever way it came.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from her_goals.episode_arrays import EpisodeArrays
from her_recorder import interfaces as ifc
from her_recorder.audit.model import Split
from her_recorder.bagmeta import BagMeta
from her_recorder.reader import (
    BagSource,
    Episode,
    EpisodeMessages,
    ReadResult,
    bag_summary,
    collect_episode_messages,
    inspect_bag,
    read_events,
)

RECOMPUTE_KINDS = frozenset({"reward_mismatch", "success_mismatch", "requested_success_mismatch"})
"""Reader problems that only say the recorded reward/success disagrees with the goal space."""

EVAL_WORDS = frozenset({"eval", "evaluation", "heldout", "held_out", "held-out", "test"})
TRAIN_WORDS = frozenset({"train", "training", "explore", "exploration", "collect"})

RAW_NOTE = (
    "left out by the reader (recorded reward/success disagrees with the goal "
    "space); audited from its raw messages"
)


@dataclass(frozen=True, kw_only=True)
class AuditedEpisode(EpisodeArrays):
    """One audited episode: its arrays (from a validated Episode or from raw messages) and
    what the audit needs to know of where it came from."""

    bag: Path
    episode_id: int
    status: Literal["complete", "aborted"]
    end_success: bool | None
    end_reason: str
    start_reason: str
    requested_goal: NDArray[np.float64]
    """(goal_dim,): the requested goal of the START event."""
    note: str = ""
    # What a recorder always writes (optional in EpisodeArrays, present here).
    reward: NDArray[np.float32]
    action_raw: NDArray[np.float64]
    is_success: NDArray[np.bool_]
    safety_flags: NDArray[np.uint32]
    safety_cost: NDArray[np.float32]

    @classmethod
    def from_episode(cls, ep: Episode, start_reason: str) -> AuditedEpisode:
        arrays = {f.name: getattr(ep, f.name) for f in dataclasses.fields(EpisodeArrays)}
        return cls(
            **arrays,
            bag=ep.bag,
            episode_id=ep.episode_id,
            status=ep.status,
            end_success=bool(ep.success) if ep.status == "complete" else None,
            end_reason=ep.end_reason,
            start_reason=start_reason,
            requested_goal=ep.desired_goal[0],
        )

    @classmethod
    def from_messages(
        cls, bag: Path, episode_id: int, messages: EpisodeMessages, dim: int
    ) -> AuditedEpisode | None:
        """The episode as recorded, unchecked; None without START, end or steps."""
        start = next((e for e in messages.events if e.event == ifc.EventKind.START), None)
        end = next((e for e in messages.events if e.event != ifc.EventKind.START), None)
        if start is None or end is None or not messages.steps:
            return None
        steps = sorted(messages.steps, key=lambda s: s.step)
        n = len(steps)

        def stack(name: str, width: int | None = None) -> NDArray[np.float64]:
            arr = np.asarray(np.stack([getattr(s, name) for s in steps]), dtype=np.float64)
            return arr.reshape(n, width) if width is not None else arr.reshape(n, -1)

        complete = int(end.event) == ifc.EventKind.END
        terminated = np.array([bool(s.terminated) for s in steps])
        truncated = np.array([bool(s.truncated) for s in steps])
        return cls(
            observation=stack("observation"),
            next_observation=stack("next_observation"),
            action=stack("action_applied"),
            action_raw=stack("action_raw"),
            achieved_goal=stack("achieved_goal", dim),
            next_achieved_goal=stack("next_achieved_goal", dim),
            desired_goal=stack("desired_goal", dim),
            terminated=terminated,
            truncated=truncated,
            success=1.0 if (complete and end.success) else 0.0,
            reward=np.array([s.reward for s in steps], dtype=np.float32),
            is_success=np.array([s.is_success for s in steps], dtype=bool),
            safety_flags=np.array([s.safety_flags for s in steps], dtype=np.uint32),
            safety_cost=np.array([s.safety_cost for s in steps], dtype=np.float32),
            bag=bag,
            episode_id=episode_id,
            status="complete" if complete else "aborted",
            end_success=bool(end.success) if complete else None,
            end_reason=str(end.reason),
            start_reason=str(start.reason),
            requested_goal=np.asarray(start.desired_goal, dtype=np.float64),
            note=RAW_NOTE,
        )


def raw_episodes(bag: Path, wanted: set[int], dim: int) -> dict[int, AuditedEpisode]:
    """Rebuild episodes the reader left out for recompute mismatches, from their messages."""
    grouped = collect_episode_messages(BagSource(inspect_bag(bag)))
    out: dict[int, AuditedEpisode] = {}
    for episode_id in sorted(wanted & set(grouped)):
        episode = AuditedEpisode.from_messages(bag, episode_id, grouped[episode_id], dim)
        if episode is not None:
            out[episode_id] = episode
    return out


def start_reasons(bag: Path) -> dict[int, str]:
    """Episode id -> the START event's reason (where a writer may say ``eval``/``train``)."""
    return {
        int(ev.episode_id): str(ev.reason)
        for ev in read_events(bag)
        if ev.event == ifc.EventKind.START
    }


def gather_episodes(
    bag_paths: Sequence[Path],
    result: ReadResult,
    dim: int,
    *,
    reasons: Mapping[tuple[Path, int], str] | None = None,
    discarded: set[tuple[Path, int]] | None = None,
) -> list[AuditedEpisode]:
    """Validated episodes plus those left out only for recompute mismatches, in bag order
    (``reasons``: the START reasons, if already read; else read from the bags). The
    ``discarded`` episodes (evaluation episodes, which count as failures) are audited from
    their raw messages too, as aborted ones, so each gets a failure label."""
    errors: dict[tuple[Path, int], set[str]] = {}
    for p in result.report.problems:
        if p.severity == "error" and p.episode_id is not None:
            errors.setdefault((p.bag, p.episode_id), set()).add(p.kind)
    recompute_only = {key for key, kinds in errors.items() if kinds <= RECOMPUTE_KINDS}
    by_bag: dict[Path, list[Episode]] = {}
    for ep in result.episodes:
        by_bag.setdefault(ep.bag, []).append(ep)
    eps: list[AuditedEpisode] = []
    for bag in bag_paths:
        bag_reasons = (
            {eid: r for (b, eid), r in reasons.items() if b == bag}
            if reasons is not None
            else start_reasons(bag)
        )
        for ep in by_bag.get(bag, []):
            eps.append(AuditedEpisode.from_episode(ep, bag_reasons.get(ep.episode_id, "")))
        wanted = {eid for (b, eid) in recompute_only | (discarded or set()) if b == bag}
        if wanted:
            for raw in raw_episodes(bag, wanted, dim).values():
                if (bag, raw.episode_id) in (discarded or set()):
                    raw = dataclasses.replace(raw, note="discarded: audited from its raw messages")
                eps.append(raw)
    order = {bag: i for i, bag in enumerate(bag_paths)}
    eps.sort(key=lambda e: (order[e.bag], e.episode_id))
    return eps


def bag_meta(bag: Path) -> BagMeta | None:
    """The bag's HER description, from a scan if the bag was never closed."""
    info = inspect_bag(bag)
    if info.meta is None and info.needs_recovery:
        info = bag_summary(bag)
    return info.meta


def split_word(text: str) -> Split | None:
    """``eval``/``train`` from a START reason or config value (``eval``, ``split=test``, ...)."""
    value = text.strip().lower()
    if "split=" in value:
        value = value.split("split=", 1)[1].split()[0].strip(",;")
    if value in EVAL_WORDS:
        return "eval"
    if value in TRAIN_WORDS:
        return "train"
    return None


def bag_split(meta: BagMeta | None) -> Split | None:
    """The split a bag's config names (``split`` or ``mode``), if any."""
    config: Any = meta.config if meta is not None else None
    if isinstance(config, Mapping):
        for key in ("split", "mode"):
            if isinstance(config.get(key), str):
                found = split_word(config[key])
                if found is not None:
                    return found
    return None
