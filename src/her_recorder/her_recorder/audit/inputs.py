"""What the audit reads besides the episodes: artefact, training log, goal region, layout.

Each setting comes from the first source that has it, and the report names the
source: the policy artefact's ``policy.json`` (hash verified), the trainer's
JSON-lines log, the bags' config, or the command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from her_goals import GoalRegion
from her_goals.config import from_mapping
from her_goals.errors import ConfigError
from her_goals.provenance import (
    TRAINING_DATA_FILE,
    ArtefactMetadataError,
    TrainingData,
    metadata_path,
    read_policy_metadata,
    verify_artefact_files,
)
from her_goals.training_log import read_rows
from her_recorder.audit.episodes import AuditedEpisode
from her_recorder.audit.model import TrainingLogSummary, nanmean
from her_recorder.errors import AuditError

# -- artefact ---------------------------------------------------------------------------


def load_artefact_metadata(path: Path) -> dict[str, Any]:
    """``policy.json`` of a policy artefact (a directory or the file), its hash verified
    (``her_goals.provenance.read_policy_metadata``, the loader's own check)."""
    try:
        metadata = read_policy_metadata(path)
        verify_artefact_files(path, metadata)
        return metadata
    except ArtefactMetadataError as exc:
        raise AuditError(f"{exc}; or audit without --artefact") from None


def load_training_data(path: Path, metadata: Mapping[str, Any]) -> TrainingData | None:
    """What trained the artefact (``training_data.npz``, its sha256 checked against
    ``policy.json``'s ``files`` by :func:`load_artefact_metadata`), or None for an artefact
    written before training data was recorded."""
    files = metadata.get("files") or {}
    if TRAINING_DATA_FILE not in files:
        return None
    try:
        return TrainingData.load(metadata_path(path).parent / TRAINING_DATA_FILE)
    except ArtefactMetadataError as exc:
        raise AuditError(f"{exc}; or audit without --artefact") from None


def training_log_beside(artefact: Path) -> Path | None:
    """``train_log.jsonl`` in the run directory of an artefact, if the trainer left one."""
    beside = artefact.parent if artefact.is_dir() else artefact.parent.parent
    log = beside / "train_log.jsonl"
    return log if log.is_file() else None


# -- training log ------------------------------------------------------------------------


def read_training_log(path: Path) -> TrainingLogSummary:
    """Read the trainer's JSON-lines log, in its one set of names (``her_goals.training_log``)."""
    try:
        rows = read_rows(path)
    except ConfigError as exc:
        raise AuditError(f"training log: {exc}") from None
    if not rows:
        raise AuditError(
            f"training log {path} holds no records; pass the train_log.jsonl of a run that logged"
        )
    ratio = [r.hindsight_ratio for r in rows]
    original = [r.positive_fraction_original for r in rows]
    relabelled = [r.positive_fraction_relabelled for r in rows]
    return TrainingLogSummary(
        path=str(path),
        records=len(rows),
        hindsight_ratio_mean=nanmean(ratio),
        hindsight_ratio_last=ratio[-1],
        positive_fraction_original_mean=nanmean(original),
        positive_fraction_relabelled_mean=nanmean(relabelled),
        # The relabel settings are the run's config (artefact, bags), not log rows.
        relabel_strategy=None,
        replay_k=None,
        relabel_prob=None,
        step=[float(r.env_steps) if math.isfinite(r.env_steps) else float(i) for i, r in enumerate(rows)],
        hindsight_ratio=ratio,
        positive_fraction_original=original,
        positive_fraction_relabelled=relabelled,
        requested_success=[r.requested_success for r in rows],
    )


# -- settings from configs --------------------------------------------------------------


def find_key(data: Any, key: str, depth: int = 3) -> Any:
    """The value of ``key`` in a nested mapping (breadth-first, ``depth`` levels)."""
    level = [data]
    for _ in range(depth):
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, Mapping):
                if key in item:
                    return item[key]
                nxt.extend(v for v in item.values() if isinstance(v, Mapping))
        level = nxt
    return None


def region_from(value: Any, where: str) -> GoalRegion:
    """A goal region from a ``{low, high}`` mapping; ``where`` names the source in errors."""
    try:
        return from_mapping(GoalRegion, value, where=where)
    except ConfigError as exc:
        raise AuditError(
            f"{where}: not a goal region: {exc}; give it as low and high corners"
        ) from None


def relabel_settings(
    log: TrainingLogSummary | None, art_config: Mapping[str, Any], bag_configs: list[Any]
) -> dict[str, Any]:
    """Relabel strategy, k and probability, with where they came from."""
    candidates: list[tuple[str, Mapping[str, Any]]] = []
    if log is not None:
        candidates.append(
            (
                f"training log {log.path}",
                {
                    "relabel_strategy": log.relabel_strategy,
                    "replay_k": log.replay_k,
                    "relabel_prob": log.relabel_prob,
                },
            )
        )
    if art_config:
        candidates.append(("artefact config", art_config))
    candidates.extend(("bag config", c) for c in bag_configs if isinstance(c, Mapping))
    for source, data in candidates:
        strategy = data.get("relabel_strategy")
        if strategy:
            k = data.get("replay_k")
            prob = data.get("relabel_prob")
            if prob is None and isinstance(k, int | float) and k >= 0:
                prob = float(k) / (float(k) + 1.0)
            return {"strategy": str(strategy), "k": k, "probability": prob, "source": source}
    return {"strategy": None, "k": None, "probability": None, "source": "not recorded"}


def goal_region(
    given: GoalRegion | None, configs: list[Any], eps: list[AuditedEpisode]
) -> tuple[GoalRegion, str]:
    """The task's goal region and its source: given, bag config, else the desired goals' box."""
    if given is not None:
        return given, "given"
    for config in configs:
        value = find_key(config, "goal_region")
        if value is not None:
            return region_from(value, "bag config goal_region"), "bag config"
    if not eps:
        return GoalRegion(low=(0.0,), high=(0.0,)), "desired goals"
    desired = np.stack([e.requested_goal for e in eps])
    return (
        GoalRegion(
            low=tuple(desired.min(axis=0).tolist()), high=tuple(desired.max(axis=0).tolist())
        ),
        "desired goals",
    )


def observation_fields(
    art_meta: Mapping[str, Any] | None, configs: list[Any]
) -> tuple[dict[str, tuple[int, int]], str]:
    """Observation layout (field -> [start, stop)) and its source, or ({}, "none")."""
    sources: list[tuple[str, Any]] = []
    if art_meta is not None:
        sources.append(
            (
                "artefact observation_layout",
                (art_meta.get("observation_layout") or {}).get("observation_fields"),
            )
        )
    sources.extend(
        ("bag config observation_fields", find_key(c, "observation_fields")) for c in configs
    )
    for source, value in sources:
        if not value:
            continue
        try:
            return {str(n): (int(a), int(b)) for n, a, b in value}, source
        except (TypeError, ValueError):
            raise AuditError(
                f"{source}: expected a list of [name, start, stop], got {value!r}"
            ) from None
    return {}, "none"
