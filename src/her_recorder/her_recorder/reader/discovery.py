"""Finding HER bags and telling their state: clean, recovered, or left unclosed by a crash.

:func:`find_bags` expands bag and session directories; :func:`inspect_bag` reads
only ``metadata.yaml`` and the MCAP files' tails (fast); :func:`bag_summary` adds
topics and episode counts, from a scan when the bag was never closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from her_recorder import interfaces as ifc
from her_recorder.bagmeta import KEY_GOAL_SPACE, BagMeta
from her_recorder.errors import BagFormatError
from her_recorder.mcapscan import has_valid_footer
from her_recorder.reader.model import BagInfo
from her_recorder.reader.source import BagSource, decode_events

_EVENT_NAMES = {int(k): k.name for k in ifc.EventKind}


def _is_bag_dir(path: Path) -> bool:
    return path.is_dir() and (
        (path / "metadata.yaml").exists() or any(path.glob("*.mcap")) or any(path.glob("*.db3"))
    )


def find_bags(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand bag and session directories into a sorted list of bag directories."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    bags: list[Path] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise BagFormatError(f"{path} does not exist")
        if path.is_file():
            raise BagFormatError(
                f"{path} is a file; HER bags are rosbag2 directories: pass {path.parent}"
                if path.suffix in (".mcap", ".db3", ".yaml")
                else f"{path} is a file, not a rosbag2 bag directory"
            )
        if _is_bag_dir(path):
            bags.append(path)
            continue
        inner = sorted(p for p in path.iterdir() if _is_bag_dir(p))
        if not inner:
            raise BagFormatError(
                f"{path} is not a rosbag2 bag (no metadata.yaml and no .mcap file) "
                "and holds no bags"
            )
        bags.extend(inner)
    return bags


_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (the same documents, parsed in C)."""


def _load_metadata(path: Path) -> tuple[dict[str, Any] | None, str]:
    yml = path / "metadata.yaml"
    if not yml.exists():
        return None, "metadata.yaml is missing (the recorder did not close the bag)"
    try:
        data = yaml.load(yml.read_text("utf-8"), Loader=_SAFE_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, f"metadata.yaml cannot be read: {exc}"
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        return None, "metadata.yaml has no rosbag2_bagfile_information (empty or not rosbag2)"
    return info, ""


def _listed_files(
    path: Path, metadata: dict[str, Any], on_disk: list[Path]
) -> tuple[list[Path], list[str]]:
    """The storage files metadata.yaml names (for sqlite3 bags), and what is wrong with them."""
    reasons: list[str] = []
    try:
        listed = [path / Path(str(p)).name for p in metadata["relative_file_paths"]]
        storage = str(metadata["storage_identifier"])
    except (KeyError, TypeError) as exc:
        listed, storage = [], ""
        reasons.append(f"metadata.yaml lacks {exc}")
    if storage not in ("mcap", "sqlite3"):
        reasons.append(f"metadata.yaml names storage {storage!r}, not mcap or sqlite3")
    missing = [p.name for p in listed if not p.exists()]
    if missing:
        reasons.append(f"metadata.yaml lists missing file(s) {missing}")
    unlisted = [p.name for p in on_disk if p not in listed]
    if unlisted:
        reasons.append(f"file(s) {unlisted} are not listed in metadata.yaml")
    files = listed if storage == "sqlite3" and not missing else on_disk
    return files, reasons


def _fill_from_metadata(info: BagInfo, metadata: dict[str, Any]) -> None:
    """HER description, topics and episode counts of a cleanly closed bag."""
    custom = metadata.get("custom_data") or {}
    if isinstance(custom, dict) and KEY_GOAL_SPACE in custom:
        info.meta = BagMeta.from_strings(
            {str(k): str(v) for k, v in custom.items()}, where=str(info.path)
        )
    for item in metadata.get("topics_with_message_count") or []:
        try:
            tm = item["topic_metadata"]
            info.topics[str(tm["name"])] = (str(tm["type"]), int(item["message_count"]))
        except (KeyError, TypeError, ValueError):
            continue
    if info.meta is not None and info.meta.episodes:
        info.episodes = dict(info.meta.episodes)
        last = info.episodes.get("last_id")
        info.last_episode_id = int(last) if last is not None else None


def inspect_bag(path: str | Path) -> BagInfo:
    """Tell whether ``path`` is a readable bag, from metadata and file tails only (fast)."""
    path = Path(path)
    if not path.is_dir():
        raise BagFormatError(f"{path} is not a bag directory")
    metadata, why = _load_metadata(path)
    reasons = [why] if why else []
    on_disk = sorted(path.glob("*.mcap"))
    files = on_disk
    if metadata is not None:
        files, wrong = _listed_files(path, metadata, on_disk)
        reasons.extend(wrong)
    if not files and metadata is None:
        raise BagFormatError(f"{path} is not a rosbag2 bag (no metadata.yaml and no .mcap file)")
    for mcap in on_disk:
        if mcap.stat().st_size == 0:
            reasons.append(f"{mcap.name} is empty (0 bytes)")
        elif not has_valid_footer(mcap):
            reasons.append(f"{mcap.name} has no MCAP footer (cut off or never closed)")
    info = BagInfo(path, files, bool(reasons), reasons, metadata)
    info.size_bytes = sum(p.stat().st_size for p in files if p.exists())
    if metadata is not None and not reasons:
        _fill_from_metadata(info, metadata)
    return info


def bag_summary(path: str | Path) -> BagInfo:
    """:func:`inspect_bag`, plus topics and episodes from a scan when the bag needs recovery."""
    info = inspect_bag(path)
    if not info.needs_recovery and (info.last_episode_id is not None or info.meta is None):
        return info
    src = BagSource(info)
    events = decode_events(src)
    if info.needs_recovery:
        info.topics = {t: (m, n) for (t, m), n in src.topic_counts.items()}
        info.meta = src.meta
    info.episodes = episode_counts(events)
    last = info.episodes.get("last_id")
    info.last_episode_id = int(last) if last is not None else None
    return info


def episode_counts(events: Iterable[Any]) -> dict[str, Any]:
    """Count episodes by how they ended, from decoded EpisodeEvent messages."""
    started: set[int] = set()
    ended: dict[int, str] = {}
    for ev in events:
        if ev.event == ifc.EventKind.START:
            started.add(int(ev.episode_id))
        else:
            ended[int(ev.episode_id)] = _EVENT_NAMES.get(int(ev.event), "?")
    counts: dict[str, Any] = {
        "ended": sum(1 for v in ended.values() if v == "END"),
        "aborted": sum(1 for v in ended.values() if v == "ABORT"),
        "discarded": sum(1 for v in ended.values() if v == "DISCARD"),
        "incomplete": sorted(started - set(ended)),
    }
    ids = started | set(ended)
    if ids:
        counts.update(first_id=min(ids), last_id=max(ids))
    return counts
