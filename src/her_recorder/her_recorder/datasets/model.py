"""What every dataset format shares: the provenance record, the episode order, the errors.

An exported dataset holds the reader's complete episodes (:class:`~her_recorder.reader.Episode`)
and, in the format's own metadata under the key ``her_ros``, a :class:`Provenance`: the task,
the goal space with its units and tolerance, every bag read with the sha256 of its storage
files, and the split ranges. Both formats keep the episodes **grouped by split** (training
episodes first, then each other split), in bag order inside a group, so a split is one index
range (LeRobot's ``info.json`` ``splits``, e.g. ``{"train": "0:40", "eval": "40:50"}``).

Every step is stored exactly (float64 observations, goals and actions; the recorder's float32
reward and cost, uint32 safety flags, int64 stamps): an imported episode equals the one the bag
holds, array for array, so training from a dataset is training from its bags.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from her_goals.evaluation import TRAIN
from her_goals.spaces import GoalSpace
from her_recorder.errors import BagError
from her_recorder.reader import Episode

FORMATS = ("lerobot", "minari")
"""The formats ``her export --format`` writes and ``her train --bags/--demos`` reads."""
HER_KEY = "her_ros"
"""The key of our :class:`Provenance` in a format's metadata (``info.json``, ``metadata.json``)."""
PROVENANCE_VERSION = 1
META_NAMES = ("bag", "bag_path", "episode_id", "split", "end_reason", "status", "success", "sim_params")
"""The per-episode fields every format stores beside the arrays (:func:`episode_meta`)."""


class DatasetError(BagError):
    """A dataset that cannot be written (bad bags, an existing --out) or read as HER-ROS data."""


def split_group(split: str) -> str:
    """The split range an episode belongs to: bags written before splits ('') train."""
    return TRAIN if split in ("", TRAIN) else split


def grouped_by_split(episodes: Sequence[Episode]) -> tuple[list[Episode], dict[str, str]]:
    """The episodes reordered training first, then each other split (stable inside a group),
    and the ``{split: "start:stop"}`` ranges."""
    groups = sorted({split_group(e.split) for e in episodes}, key=lambda g: (g != TRAIN, g))
    ordered: list[Episode] = []
    ranges: dict[str, str] = {}
    for group in groups:
        start = len(ordered)
        ordered.extend(e for e in episodes if split_group(e.split) == group)
        ranges[group] = f"{start}:{len(ordered)}"
    return ordered, ranges


@dataclass(frozen=True)
class Provenance:
    """Where a dataset's episodes came from (stored under ``her_ros`` in its metadata)."""

    task: str
    goal_space: GoalSpace
    bags: list[dict[str, Any]]
    """Per bag read: ``{"path": ..., "files": {file name: sha256}}``."""
    splits: dict[str, str]
    """``{split: "start:stop"}`` episode index ranges."""
    episodes: int
    steps: int
    reader_summary: str = ""
    """The reader's one line: what was read, what was left out and why."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PROVENANCE_VERSION,
            "task": self.task,
            "goal_space": self.goal_space.spec(),
            "bags": self.bags,
            "splits": self.splits,
            "episodes": self.episodes,
            "steps": self.steps,
            "reader_summary": self.reader_summary,
            "training_refuses": sorted(s for s in self.splits if s != TRAIN),
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: Any, where: Path) -> Provenance:
        if not isinstance(data, dict):
            raise DatasetError(
                f"{where}: no {HER_KEY!r} record in its metadata: not exported by `her export` "
                "(its task, goal space and splits are unknown); export the bags with `her export`"
            )
        try:
            return cls(
                task=str(data["task"]),
                goal_space=GoalSpace.from_spec(data["goal_space"]),
                bags=list(data["bags"]),
                splits={str(k): str(v) for k, v in data["splits"].items()},
                episodes=int(data["episodes"]),
                steps=int(data["steps"]),
                reader_summary=str(data.get("reader_summary", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(
                f"{where}: the {HER_KEY!r} record of its metadata is damaged ({type(exc).__name__}: "
                f"{exc}); export the bags again with `her export`"
            ) from None


def episode_meta(e: Episode) -> dict[str, Any]:
    """The per-episode fields every format stores beside the arrays."""
    return {
        "bag": e.bag.name,
        "bag_path": str(e.bag),
        "episode_id": int(e.episode_id),
        "split": e.split,
        "end_reason": e.end_reason,
        "status": e.status,
        "success": float(e.success),
        "sim_params": json.dumps(e.sim_params, sort_keys=True) if e.sim_params is not None else "",
    }


def reasons_to_text(reasons: tuple[str, ...]) -> str:
    """One step's safety reasons as a JSON list (every format stores them as text)."""
    return json.dumps(list(reasons))


def reasons_from_text(text: str | bytes) -> tuple[str, ...]:
    raw = text.decode("utf-8") if isinstance(text, bytes) else text
    return tuple(str(r) for r in json.loads(raw)) if raw else ()


def rebuild_episode(
    dataset: Path, prov: Provenance, meta: dict[str, Any], arrays: dict[str, Any]
) -> Episode:
    """The reader's Episode from a dataset's stored fields (``arrays`` as the reader types them).

    ``bag`` is ``DATASET/<bag name>``: errors name the dataset and the bag the episode came from."""
    sim = str(meta.get("sim_params", ""))
    return Episode(
        bag=Path(dataset) / str(meta["bag"]),
        episode_id=int(meta["episode_id"]),
        task=prov.task,
        goal_space=prov.goal_space,
        end_reason=str(meta["end_reason"]),
        status="aborted" if str(meta["status"]) == "aborted" else "complete",
        split=str(meta["split"]),
        success=float(meta["success"]),
        sim_params=json.loads(sim) if sim else None,
        observation=np.asarray(arrays["observation"], np.float64),
        next_observation=np.asarray(arrays["next_observation"], np.float64),
        action=np.asarray(arrays["action"], np.float64),
        action_raw=np.asarray(arrays["action_raw"], np.float64),
        achieved_goal=np.asarray(arrays["achieved_goal"], np.float64),
        next_achieved_goal=np.asarray(arrays["next_achieved_goal"], np.float64),
        desired_goal=np.asarray(arrays["desired_goal"], np.float64),
        reward=np.asarray(arrays["reward"], np.float32),
        terminated=np.asarray(arrays["terminated"], bool),
        truncated=np.asarray(arrays["truncated"], bool),
        is_success=np.asarray(arrays["is_success"], bool),
        safety_flags=np.asarray(arrays["safety_flags"], np.uint32),
        safety_cost=np.asarray(arrays["safety_cost"], np.float32),
        safety_reasons=tuple(reasons_from_text(t) for t in arrays["safety_reasons"]),
        stamp_ns=np.asarray(arrays["stamp_ns"], np.int64),
        true_next_achieved_goal=(
            None if arrays.get("true_next_achieved_goal") is None
            else np.asarray(arrays["true_next_achieved_goal"], np.float64)
        ),
    )  # fmt: skip
