"""``her bag recover``: make a bag left by a killed recorder whole again, from its MCAP files.

For each MCAP file without a valid footer, recovery

1. scans it record by record and finds the end of the last intact record;
2. copies whatever follows (a torn chunk of the episode in progress) to
   ``<file>.truncated-at-<offset>.bin`` beside it, so no byte is destroyed;
3. cuts the file there, re-writes the message index of the last chunk if the
   crash cut it, and appends the MCAP summary and footer (schemas, channels,
   chunk indexes, statistics), so rosbags and ``ros2 bag`` read it indexed;

then rebuilds ``metadata.yaml`` (rosbag2 version 9, as Jazzy writes) from the
files themselves: topics, types, QoS, counts, times, and the HER description
from the ``her_recorder`` MCAP metadata record, plus ``her.recovered`` naming the
episode that was in progress (it has no END event, so readers never use it as a
complete episode). A lying ``metadata.yaml`` is kept as ``metadata.yaml.bak``.
Recovery is idempotent: a second run finds nothing to do, and a run interrupted
half-way is finished by the next one.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rosbags.serde import SerdeError

from her_recorder import interfaces as ifc
from her_recorder.bagmeta import KEY_EPISODES, KEY_RECOVERED, MCAP_METADATA_NAME, dumps
from her_recorder.errors import BagFormatError
from her_recorder.mcapscan import (
    McapScanner,
    ScanResult,
    header_record,
    message_index_records,
    write_summary,
)
from her_recorder.reader import episode_counts, find_bags, inspect_bag


@dataclass
class FileRecovery:
    """What recovery did to one MCAP file."""

    path: Path
    action: str
    """``intact``, ``repaired`` or ``empty`` (0 bytes, nothing recorded: left out)."""
    messages: int = 0
    chunks: int = 0
    cut_at: int | None = None
    """Offset where the file was cut (the end of its last intact record)."""
    cut_bytes: int = 0
    saved_tail: Path | None = None
    note: str = ""


@dataclass
class RecoveryReport:
    """What :func:`recover_bag` found and did."""

    bag: Path
    needed: bool
    reasons: list[str] = field(default_factory=list)
    files: list[FileRecovery] = field(default_factory=list)
    episodes: dict[str, Any] = field(default_factory=dict)
    metadata_written: bool = False
    dry_run: bool = False

    def format(self) -> str:
        """Human-readable lines for the command line."""
        if not self.needed:
            return f"{self.bag}: closed cleanly, nothing to recover"
        verb = "would recover" if self.dry_run else "recovered"
        lines = [f"{self.bag}: {verb} ({'; '.join(self.reasons)})"]
        for f in self.files:
            line = f"  {f.path.name}: {f.action}, {f.messages} messages in {f.chunks} chunks"
            if f.cut_at is not None:
                line += f"; cut at byte {f.cut_at} ({f.cut_bytes} torn bytes"
                line += f" saved to {f.saved_tail.name})" if f.saved_tail else ")"
            if f.note:
                line += f"; {f.note}"
            lines.append(line)
        ep = self.episodes
        if ep:
            incomplete = ep.get("incomplete") or []
            lines.append(
                f"  episodes: {ep.get('ended', 0)} complete, {ep.get('aborted', 0)} aborted, "
                f"{ep.get('discarded', 0)} discarded, {len(incomplete)} incomplete"
                + (
                    f" (id {', '.join(map(str, incomplete))}: in progress at the crash, "
                    "never used as complete)"
                    if incomplete
                    else ""
                )
            )
        if self.metadata_written:
            lines.append("  metadata.yaml rebuilt from the MCAP files")
        return "\n".join(lines)


def recover(paths: str | Path | list[str | Path], *, dry_run: bool = False) -> list[RecoveryReport]:
    """Recover every bag in ``paths`` (bags or session directories) that needs it."""
    return [recover_bag(bag, dry_run=dry_run) for bag in find_bags(paths)]


def recover_bag(path: str | Path, *, dry_run: bool = False, force: bool = False) -> RecoveryReport:
    """Repair one bag directory in place; see the module docstring for what that means."""
    path = Path(path)
    info = inspect_bag(path)
    reasons = list(info.reasons)
    stale = [] if info.needs_recovery else _stale_counts(path, info)
    if stale:
        # `her bag check` sends the user here for this; saying "nothing to recover" would loop.
        reasons.append(f"metadata.yaml counts disagree with the files ({'; '.join(stale)})")
    report = RecoveryReport(
        path, info.needs_recovery or force or bool(stale), reasons, dry_run=dry_run
    )
    if not report.needed:
        return report
    mcaps = sorted(path.glob("*.mcap"))
    if not mcaps:
        raise BagFormatError(
            f"{path}: {'; '.join(info.reasons)}; there is no .mcap file to recover from "
            "(only MCAP bags can be recovered)"
        )
    scans: list[tuple[Path, ScanResult]] = []
    events: list[Any] = []
    store = ifc.typestore()
    for mcap in mcaps:
        scanner = McapScanner(mcap)
        for channel, _, data in scanner.messages():
            if channel.topic == ifc.TOPIC_EPISODE:
                try:
                    events.append(store.deserialize_cdr(data, ifc.EVENT_TYPE))
                except (SerdeError, KeyError, ValueError):
                    continue
        res = scanner.result
        if res.size == 0:
            report.files.append(FileRecovery(mcap, "empty", note="0 bytes: nothing was recorded"))
            continue
        if res.data_end == 0:
            raise BagFormatError(f"{mcap}: {res.stop_reason}; it is not an MCAP file")
        if res.profile and res.profile != "ros2":
            raise BagFormatError(f"{mcap}: MCAP profile {res.profile!r}, not a rosbag2 (ros2) file")
        scans.append((mcap, res))
        fr = FileRecovery(
            mcap, "intact" if res.has_footer else "repaired", res.message_count, len(res.chunks)
        )
        if res.skipped:
            fr.note = f"skipped {len(res.skipped)} corrupt chunk(s): {res.skipped[0]}"
        report.files.append(fr)
        if not res.has_footer and not dry_run:
            _repair(mcap, res, fr)
        elif not res.has_footer:
            fr.cut_at, fr.cut_bytes = res.data_end, res.size - res.data_end
    report.episodes = episode_counts(events)
    if not dry_run:
        for fr in report.files:
            if fr.action == "empty":
                fr.path.unlink()  # 0 bytes: removing it loses nothing, keeping it breaks readers
        _write_metadata(path, scans, report)
        report.metadata_written = True
    return report


def _stale_counts(path: Path, info: Any) -> list[str]:
    """Topics of a closed bag whose metadata.yaml count differs from the messages in its files."""
    counted: dict[str, int] = {}
    for mcap in sorted(path.glob("*.mcap")):
        for channel, _, _ in McapScanner(mcap).messages():
            counted[channel.topic] = counted.get(channel.topic, 0) + 1
    return [
        f"{topic}: metadata.yaml {n}, files {counted.get(topic, 0)}"
        for topic, (_, n) in sorted(info.topics.items())
        if counted.get(topic, 0) != n
    ]


def _repair(mcap: Path, res: ScanResult, fr: FileRecovery) -> None:
    cut = res.data_end
    last = res.chunks[-1] if res.chunks else None
    reindex = last is not None and not last.indexes_complete and last.index_end == cut
    if reindex and last is not None:
        cut = last.end
    fr.cut_at, fr.cut_bytes = cut, res.size - cut
    with mcap.open("r+b") as bio:
        if fr.cut_bytes:
            tail = mcap.with_name(f"{mcap.name}.truncated-at-{cut}.bin")
            bio.seek(cut)
            with tail.open("wb") as out:
                shutil.copyfileobj(bio, out)
                out.flush()
                os.fsync(out.fileno())
            fr.saved_tail = tail
        bio.seek(cut)
        bio.truncate()
        if not res.profile:  # cut inside the Header record: nothing but the magic is left
            bio.write(header_record("ros2", "her_recorder recover"))
            fr.note = "the MCAP header itself was cut; wrote a new one"
        if reindex and last is not None:
            bio.write(message_index_records(last, cut))
        write_summary(bio, res, rosbag2_metadata=None)
        bio.flush()
        os.fsync(bio.fileno())


def _qos_profiles(raw: str) -> Any:
    if not raw:
        return []
    try:
        loaded = yaml.safe_load(raw)
    except Exception:  # a foreign writer's malformed QoS string (YAMLError, ValueError): none
        return []
    return loaded if isinstance(loaded, list) else []


def _write_metadata(
    path: Path, scans: list[tuple[Path, ScanResult]], report: RecoveryReport
) -> None:
    store = ifc.typestore()
    topics: dict[tuple[str, str], dict[str, Any]] = {}
    files = []
    custom: dict[str, str] = {}
    start_all, end_all, count_all = 2**63 - 1, 0, 0
    for mcap, res in scans:
        for cid, channel in sorted(res.channels.items()):
            schema = res.schemas.get(channel.schema_id)
            msgtype = schema.name if schema else ""
            key = (channel.topic, msgtype)
            if key not in topics:
                try:
                    digest = store.hash_rihs01(msgtype)
                except Exception:  # a type this typestore does not know
                    digest = ""
                topics[key] = {
                    "topic_metadata": {
                        "name": channel.topic,
                        "type": msgtype,
                        "serialization_format": channel.message_encoding or "cdr",
                        "offered_qos_profiles": _qos_profiles(
                            channel.metadata_map().get("offered_qos_profiles", "")
                        ),
                        "type_description_hash": digest,
                    },
                    "message_count": 0,
                }
            topics[key]["message_count"] += res.channel_counts.get(cid, 0)
        n = res.message_count
        start = res.message_start_time if n else 0
        end = res.message_end_time if n else 0
        files.append(
            {
                "path": mcap.name,
                "starting_time": {"nanoseconds_since_epoch": start},
                "duration": {"nanoseconds": max(0, end - start)},
                "message_count": n,
            }
        )
        if n:
            start_all, end_all = min(start_all, start), max(end_all, end)
        count_all += n
        if not custom and MCAP_METADATA_NAME in res.metadata:
            custom = dict(res.metadata[MCAP_METADATA_NAME])
    if not count_all:
        start_all = 0
    custom[KEY_EPISODES] = dumps(report.episodes)
    custom[KEY_RECOVERED] = dumps(
        {
            "at_ns": time.time_ns(),
            "reasons": report.reasons,
            "incomplete_episodes": report.episodes.get("incomplete", []),
            "cut_bytes": {f.path.name: f.cut_bytes for f in report.files if f.cut_at is not None},
        }
    )
    metadata = {
        "rosbag2_bagfile_information": {
            "version": 9,
            "storage_identifier": "mcap",
            "relative_file_paths": [m.name for m, _ in scans],
            "duration": {"nanoseconds": max(0, end_all - start_all)},
            "starting_time": {"nanoseconds_since_epoch": start_all},
            "message_count": count_all,
            "topics_with_message_count": list(topics.values()),
            "compression_format": "",
            "compression_mode": "",
            "files": files,
            "custom_data": custom,
            "ros_distro": "rosbags",
        }
    }
    text = yaml.safe_dump(metadata, default_flow_style=False)
    target = path / "metadata.yaml"
    if target.exists():
        backup = path / "metadata.yaml.bak"
        if not backup.exists():
            target.replace(backup)
    tmp = path / "metadata.yaml.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(target)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
