"""What ``her train --bags`` and ``--demos`` read: bags, session directories, or datasets that
``her export`` wrote (LeRobot or Minari), side by side.

Datasets come back as the reader's :class:`~her_recorder.reader.Episode` objects, exactly as
their bags hold them (``bag`` is ``DATASET/<bag name>``, so errors name both), with their
splits: the trainer's checks (held-out evaluation episodes, one task, one goal space and
layout) apply to them as to bags.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from her_recorder.datasets.formats import detect_format, format_module
from her_recorder.datasets.model import HER_KEY, DatasetError, Provenance
from her_recorder.reader import Episode, bag_summary, find_bags, read_episodes


@dataclass(frozen=True)
class TrainingInput:
    """Episodes read from bags and datasets, and what was read."""

    episodes: list[Episode]
    sources: list[Path]
    """Every bag directory and dataset directory read (their files are hashed into artefacts)."""
    summary: str
    """One line: what was read, what was left out."""


def read_dataset(path: str | Path) -> tuple[list[Episode], Provenance]:
    """The episodes and provenance of a dataset directory ``her export`` wrote."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt is None:
        raise DatasetError(
            f"{path} is not a LeRobot (meta/info.json) or Minari (data/metadata.json) dataset"
        )
    episodes, prov = format_module(fmt).read(path)
    return list(episodes), prov


def read_training_input(paths: Sequence[str | Path]) -> TrainingInput:
    """The episodes of ``paths``: the bags first (one validating read), then each dataset."""
    datasets = [Path(p) for p in paths if detect_format(Path(p)) is not None]
    bags = [Path(p) for p in paths if Path(p) not in datasets]
    episodes: list[Episode] = []
    sources: list[Path] = []
    parts: list[str] = []
    if bags:
        result = read_episodes(bags, log_summary=False)
        episodes.extend(result.episodes)
        sources.extend(b.path for b in result.report.bags)
        parts.append(result.report.summary_line())
    for path in datasets:
        read, prov = read_dataset(path)
        episodes.extend(read)
        sources.append(path)
        parts.append(
            f"read dataset {path} ({detect_format(path)}): {len(read)} episodes "
            f"({sum(len(e) for e in read)} steps) exported from {len(prov.bags)} bag(s)"
        )
    return TrainingInput(episodes, sources, "; ".join(parts))


def storage_files(path: Path) -> list[Path]:
    """The files whose hashes name a training input: a bag's MCAP files, a dataset's files."""
    path = Path(path)
    if detect_format(path) is not None:
        return sorted(p for p in path.rglob("*") if p.is_file())
    return sorted(path.glob("*.mcap"))


def input_task(path: str | Path) -> str | None:
    """The task of a training input: a dataset's provenance, or the first bag's metadata
    (None: a bag without HER metadata)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt is None:
        found = find_bags([path])
        meta = bag_summary(found[0]).meta if found else None
        return meta.task if meta is not None else None
    # The provenance is plain JSON in both formats: no dataset library is needed to read it.
    info = path / "meta" / "info.json" if fmt == "lerobot" else _minari_metadata(path)
    try:
        record = json.loads(info.read_text("utf-8")).get(HER_KEY)
    except (OSError, ValueError, AttributeError) as exc:
        raise DatasetError(f"{info} cannot be read ({exc}); export the bags again with `her export`") from None
    return Provenance.from_json(record, path).task


def _minari_metadata(path: Path) -> Path:
    return path / "metadata.json" if (path / "metadata.json").is_file() else path / "data" / "metadata.json"
