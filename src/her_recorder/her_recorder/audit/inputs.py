"""What the audit reads besides the episodes: artefact, training log, goal region, layout.

Each setting comes from the first source that has it, and the report names the
source: the policy artefact's ``policy.json`` (hash verified), the trainer's
JSON-lines log, the bags' config, or the command line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from her_goals import GoalRegion
from her_goals.config import from_mapping
from her_goals.errors import ConfigError
from her_goals.provenance import metadata_hash
from her_recorder.audit.episodes import AuditedEpisode
from her_recorder.audit.model import TrainingLogSummary, nanmean
from her_recorder.errors import AuditError

TRAINING_LOG_FIELDS: dict[str, tuple[str, ...]] = {
    "step": ("step", "env_steps"),
    "hindsight_ratio": ("hindsight_ratio",),
    "positive_fraction_original": ("positive_fraction_original", "original_positive_fraction"),
    "positive_fraction_relabelled": (
        "positive_fraction_relabelled",
        "hindsight_positive_fraction",
    ),
    "relabel_strategy": ("relabel_strategy", "strategy"),
    "replay_k": ("replay_k", "k"),
    "relabel_prob": ("relabel_prob", "probability"),
    "requested_success": ("requested_success",),
}
"""Fields of one training-log record (JSON lines) -> accepted names, first preferred.

The trainer's ``train_log.jsonl`` rows (``her_policy.train.EvalRow``) use the
second names; ``hindsight_ratio`` is required, everything else optional."""


# -- artefact ---------------------------------------------------------------------------


def load_artefact_metadata(path: Path) -> dict[str, Any]:
    """``policy.json`` of a policy artefact (a directory or the file), its hash verified.

    Read directly (no her_policy import), hashed by the function that wrote it.
    """
    meta_path = path / "policy.json" if path.is_dir() else path
    if not meta_path.is_file():
        raise AuditError(
            f"{path} is not a policy artefact: policy.json is missing; pass the directory "
            "her train wrote (--artefact RUN/policy)"
        )
    try:
        metadata = json.loads(meta_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditError(f"{meta_path} cannot be read as JSON: {exc}") from None
    if not isinstance(metadata, dict) or "artefact_hash" not in metadata:
        raise AuditError(
            f"{meta_path} has no artefact_hash: not a her_policy artefact; pass one her train wrote"
        )
    digest = metadata_hash(metadata)
    if digest != metadata["artefact_hash"]:
        raise AuditError(
            f"{meta_path} was modified after it was written (artefact hash "
            f"{metadata['artefact_hash']} != {digest}); the audit will not name it: use the "
            "artefact as her train wrote it, or audit without --artefact"
        )
    return metadata


def training_log_beside(artefact: Path) -> Path | None:
    """``train_log.jsonl`` in the run directory of an artefact, if the trainer left one."""
    beside = artefact.parent if artefact.is_dir() else artefact.parent.parent
    log = beside / "train_log.jsonl"
    return log if log.is_file() else None


# -- training log ------------------------------------------------------------------------


def _pick(record: Mapping[str, Any], name: str) -> Any:
    for key in TRAINING_LOG_FIELDS[name]:
        if key in record:
            return record[key]
    return None


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _log_records(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"training log {path} cannot be read: {exc}") from None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditError(f"training log {path}:{number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise AuditError(f"training log {path}:{number} is not a JSON object")
        if _pick(record, "hindsight_ratio") is None:
            raise AuditError(
                f"training log {path}:{number} has no hindsight_ratio; each record needs "
                f"{', '.join(k[0] for k in TRAINING_LOG_FIELDS.values())} (hindsight_ratio required)"
            )
        records.append(record)
    if not records:
        raise AuditError(
            f"training log {path} holds no records; pass the train_log.jsonl of a run that logged"
        )
    return records


def read_training_log(path: Path) -> TrainingLogSummary:
    """Read a JSON-lines training log (see :data:`TRAINING_LOG_FIELDS`)."""
    records = _log_records(path)

    def series(name: str) -> list[float]:
        return [_num(_pick(r, name)) for r in records]

    last = records[-1]
    steps = series("step")
    ratio = series("hindsight_ratio")
    strategy = next(
        (str(v) for v in (_pick(r, "relabel_strategy") for r in reversed(records)) if v), None
    )
    k = _num(_pick(last, "replay_k"))
    prob = _num(_pick(last, "relabel_prob"))
    return TrainingLogSummary(
        path=str(path),
        records=len(records),
        hindsight_ratio_mean=nanmean(ratio),
        hindsight_ratio_last=ratio[-1],
        positive_fraction_original_mean=nanmean(series("positive_fraction_original")),
        positive_fraction_relabelled_mean=nanmean(series("positive_fraction_relabelled")),
        relabel_strategy=strategy,
        replay_k=k if math.isfinite(k) else None,
        relabel_prob=prob if math.isfinite(prob) else None,
        step=[s if math.isfinite(s) else float(i) for i, s in enumerate(steps)],
        hindsight_ratio=ratio,
        positive_fraction_original=series("positive_fraction_original"),
        positive_fraction_relabelled=series("positive_fraction_relabelled"),
        requested_success=series("requested_success"),
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
    desired = np.stack([e.desired_goal for e in eps])
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
