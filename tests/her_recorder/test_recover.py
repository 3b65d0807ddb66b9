"""A truncated MCAP file is read up to its last intact record, at any cut point."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from her_recorder_testlib import record_session
from rosbags.rosbag2 import Reader

from her_recorder import interfaces, read_episodes, recover_bag, typestore
from her_recorder.mcapscan import McapScanner


def _durable_points(mcap: Path) -> list[tuple[int, int]]:
    """(file offset where its chunk ends, episode id) of every END event."""
    scanner = McapScanner(mcap)
    out = []
    for channel, _, data in scanner.messages():
        if channel.topic == interfaces.TOPIC_EPISODE:
            ev = typestore().deserialize_cdr(data, interfaces.EVENT_TYPE)
            if ev.event == interfaces.EventKind.END:
                out.append((scanner.result.chunks[-1].end, int(ev.episode_id)))
    return out


@pytest.mark.parametrize(
    ("compression", "n_random", "around_points"),
    [
        ("none", 4, False),
        ("zstd", 2, False),
        pytest.param("none", 60, True, marks=pytest.mark.slow),
        pytest.param("zstd", 60, True, marks=pytest.mark.slow),
    ],
)
def test_every_episode_before_the_cut_survives(
    tmp_path: Path, compression: str, n_random: int, around_points: bool
) -> None:
    source = tmp_path / "source"
    record_session(source, n_episodes=6, n_steps=8, compression=compression, fsync=False)
    bag = source / "bag_0000"
    mcap = bag / "bag_0000.mcap"
    size = mcap.stat().st_size
    points = _durable_points(mcap)
    rng = random.Random(7)
    cuts = {p for p, _ in points[::2]} | {8, 9, size - 1}
    cuts |= {rng.randrange(0, size) for _ in range(n_random)}
    if around_points:
        cuts |= {p + d for p, _ in points for d in (-1, 1)}
    for cut in sorted(cuts):
        trial = tmp_path / f"cut{cut}"
        shutil.copytree(bag, trial / "bag_0000")
        (trial / "bag_0000" / "metadata.yaml").unlink()
        target = trial / "bag_0000" / "bag_0000.mcap"
        target.write_bytes(mcap.read_bytes()[:cut])
        expected = [eid for end, eid in points if end <= cut]
        before = read_episodes(trial, log_summary=False)
        assert [e.episode_id for e in before.episodes] == expected, cut
        recover_bag(trial / "bag_0000")
        after = read_episodes(trial, log_summary=False)
        assert [e.episode_id for e in after.episodes] == expected, cut
        assert after.report.ok or any(p.kind == "empty" for p in after.report.problems), cut
        if (trial / "bag_0000" / "bag_0000.mcap").exists():
            with Reader(trial / "bag_0000") as reader:
                assert sum(1 for _ in reader.messages()) == reader.message_count
        assert recover_bag(trial / "bag_0000").needed is False  # idempotent
        shutil.rmtree(trial)


def test_recovery_keeps_the_torn_bytes(tmp_path: Path) -> None:
    record_session(tmp_path / "s", n_episodes=3, fsync=False)
    bag = tmp_path / "s" / "bag_0000"
    mcap = bag / "bag_0000.mcap"
    data = mcap.read_bytes()
    (bag / "metadata.yaml").unlink()
    mcap.write_bytes(data[: len(data) - 700])
    report = recover_bag(bag)
    (fr,) = report.files
    assert fr.action == "repaired" and fr.saved_tail is not None and fr.cut_at is not None
    assert fr.saved_tail.read_bytes() == data[fr.cut_at : len(data) - 700]
    assert "repaired" in report.format()


def test_a_zero_filled_tail_is_cut_where_the_zeros_begin(tmp_path: Path) -> None:
    """After a power loss the file may keep its size with zeros where data never landed."""
    source = tmp_path / "source"
    record_session(source, n_episodes=4, n_steps=5, fsync=False)
    mcap = source / "bag_0000" / "bag_0000.mcap"
    points = _durable_points(mcap)
    cut = points[1][0]
    data = mcap.read_bytes()
    (source / "bag_0000" / "metadata.yaml").unlink()
    mcap.write_bytes(data[:cut] + bytes(len(data) - cut))
    before = read_episodes(source, log_summary=False)
    assert [e.episode_id for e in before.episodes] == [points[0][1], points[1][1]]
    assert "invalid record opcode 0x00" in before.report.format()
    (fr,) = recover_bag(source / "bag_0000").files
    assert fr.cut_at == cut and fr.cut_bytes == len(data) - cut
    after = read_episodes(source, log_summary=False)
    assert [e.episode_id for e in after.episodes] == [e.episode_id for e in before.episodes]
    assert after.report.ok


def test_a_corrupt_chunk_is_skipped_and_the_chunks_after_it_are_read(tmp_path: Path) -> None:
    source = tmp_path / "source"
    record_session(source, n_episodes=4, n_steps=5, fsync=False)
    bag = source / "bag_0000"
    mcap = bag / "bag_0000.mcap"
    points = _durable_points(mcap)
    scanner = McapScanner(mcap)
    for _ in scanner.messages(keep_data=False):
        pass
    # the chunk that ends where episode 1's END made it durable: its first inner opcode
    # (after opcode, length, 3 x u64 + u32 header, compression "" and the records' u64 size)
    chunk = next(c for c in scanner.result.chunks if c.end == points[1][0])
    data = bytearray(mcap.read_bytes()[: points[-1][0]])  # no summary: read by the scan
    first_inner = chunk.start + 1 + 8 + 28 + 4 + 8
    assert data[first_inner] == 0x05  # a Message record
    data[first_inner] = 0x00
    (bag / "metadata.yaml").unlink()
    mcap.write_bytes(bytes(data))
    result = read_episodes(source, log_summary=False)
    assert [e.episode_id for e in result.episodes] == [points[0][1], points[2][1], points[3][1]]
    assert "skipped corrupt chunk at offset" in result.report.format()
    (p,) = [p for p in result.report.problems if p.episode_id == points[1][1]]
    assert p.kind == "incomplete"  # its steps and END were in the corrupt chunk
    recover_bag(bag)
    assert [e.episode_id for e in read_episodes(source, log_summary=False).episodes] == [
        e.episode_id for e in result.episodes
    ]


def test_check_advice_never_loops_recover_rebuilds_stale_metadata_counts(tmp_path: Path) -> None:
    import yaml


    path = tmp_path / "s"
    record_session(path, n_episodes=2, n_steps=3)
    bag = next(path.iterdir())
    meta_file = bag / "metadata.yaml"
    data = yaml.safe_load(meta_file.read_text())
    for topic in data["rosbag2_bagfile_information"]["topics_with_message_count"]:
        if topic["topic_metadata"]["name"] == "/her/step":
            topic["message_count"] += 5  # metadata.yaml edited, or written by another tool
    meta_file.write_text(yaml.safe_dump(data))
    first = read_episodes(path, log_summary=False).report
    advice = [p.message for p in first.problems if p.kind == "metadata_mismatch"]
    assert advice and "her bag recover" in advice[0]
    report = recover_bag(bag)
    assert report.needed and report.metadata_written, report.format()
    assert "counts disagree" in report.format()
    again = read_episodes(path, log_summary=False).report
    assert not [p for p in again.problems if p.kind == "metadata_mismatch"]
    assert len(read_episodes(path, log_summary=False).episodes) == 2
