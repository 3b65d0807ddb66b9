"""Bad input: each a clear error or a recovered read with a summary; nothing recorded lost."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from her_recorder_testlib import SPACE, Recorded, record_session
from rosbags.rosbag2 import StoragePlugin, Writer

from her_goals import GoalSpace
from her_recorder import (
    BagFormatError,
    BagMismatchError,
    EpisodeRecorder,
    RecorderError,
    read_episodes,
    recover_bag,
    typestore,
)
from her_recorder.writer import header


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "her_recorder", *args], capture_output=True, text=True, timeout=120
    )


def _bag(path: Path) -> Path:
    return next(p for p in sorted(path.iterdir()) if p.is_dir())


def test_directory_that_is_not_a_bag(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BagFormatError, match="not a rosbag2 bag"):
        read_episodes(tmp_path)
    with pytest.raises(BagFormatError, match="does not exist"):
        read_episodes(tmp_path / "nope")
    proc = _cli("bag", "check", str(tmp_path))
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "not a rosbag2 bag" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bag_of_another_goal_space(session: tuple[Path, Recorded]) -> None:
    path, _ = session
    with pytest.raises(BagMismatchError, match="goal space"):
        read_episodes(path, goal_space="object_position")
    other = GoalSpace(name="ee_position", dim=3, units="m", frame="base_link", tolerance=0.02)
    with pytest.raises(BagMismatchError, match="rewards would not agree"):
        read_episodes(path, goal_space=other)
    proc = _cli("bag", "check", str(path), "--goal-space", "object_position")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_mixing_goal_spaces_across_bags_is_refused(tmp_path: Path) -> None:
    record_session(tmp_path / "a")
    with EpisodeRecorder(
        tmp_path / "b", goal_space=SPACE.with_tolerance(0.01), task="reach"
    ) as rec:
        rec.start_episode(np.zeros(3))
        rec.end_episode()
    with pytest.raises(BagMismatchError):
        read_episodes([tmp_path / "a", tmp_path / "b"])


def test_bag_with_no_step_topic(tmp_path: Path) -> None:
    bag = tmp_path / "foreign"
    store = typestore()
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=store)
        msg = store.types["sensor_msgs/msg/JointState"](
            header=header(1, ""),
            name=["a"],
            position=np.zeros(1),
            velocity=np.zeros(1),
            effort=np.zeros(1),
        )
        writer.write(conn, 1, store.serialize_cdr(msg, "sensor_msgs/msg/JointState"))
    with pytest.raises(BagFormatError, match="no /her/step messages .*not a HER episode bag"):
        read_episodes(bag)


def test_metadata_yaml_that_lies_about_its_files(session: tuple[Path, Recorded]) -> None:
    path, recorded = session
    bag = _bag(path)
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["rosbag2_bagfile_information"]["relative_file_paths"] = ["bag_0000_0.mcap"]
    meta_path.write_text(yaml.safe_dump(meta))
    result = read_episodes(path)
    assert len(result.episodes) == len(recorded.episodes)
    assert "lists missing file(s) ['bag_0000_0.mcap']" in result.report.format()
    assert "her bag recover" in result.report.summary_line()
    report = recover_bag(bag)
    assert report.needed and (bag / "metadata.yaml.bak").exists()
    fixed = read_episodes(path)
    assert fixed.report.ok and len(fixed.episodes) == len(recorded.episodes)


def test_metadata_yaml_that_lies_about_counts(session: tuple[Path, Recorded]) -> None:
    path, _ = session
    bag = _bag(path)
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    for topic in meta["rosbag2_bagfile_information"]["topics_with_message_count"]:
        topic["message_count"] += 5
    meta_path.write_text(yaml.safe_dump(meta))
    result = read_episodes(path)
    warnings = [p for p in result.report.problems if p.kind == "metadata_mismatch"]
    assert warnings and "run `her bag recover" in warnings[0].message
    assert len(result.episodes) == 4


def test_mcap_cut_in_half(session: tuple[Path, Recorded]) -> None:
    path, recorded = session
    bag = _bag(path)
    mcap = bag / "bag_0000.mcap"
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    result = read_episodes(path)
    line = result.report.summary_line()
    assert "not closed cleanly" in line and f"her bag recover {bag}" in line
    n_read = len(result.episodes)
    assert 0 < n_read < len(recorded.episodes)
    recover_bag(bag)
    after = read_episodes(path)
    assert [e.episode_id for e in after.episodes] == [e.episode_id for e in result.episodes]
    assert after.report.ok


def test_zero_byte_mcap_and_zero_byte_metadata(
    tmp_path: Path, session: tuple[Path, Recorded]
) -> None:
    path, recorded = session
    empty = tmp_path / "empty_bag"
    empty.mkdir()
    (empty / "empty_bag.mcap").write_bytes(b"")
    result = read_episodes(empty, log_summary=False)
    assert not result.episodes
    assert any(p.kind == "empty" for p in result.report.problems)
    proc = _cli("bag", "recover", str(empty))
    assert proc.returncode == 0 and "0 bytes" in proc.stdout and "Traceback" not in proc.stderr
    # a zero-byte metadata.yaml beside a good MCAP file: read from the MCAP, then repaired
    bag = _bag(path)
    (bag / "metadata.yaml").write_bytes(b"")
    result = read_episodes(path)
    assert len(result.episodes) == len(recorded.episodes)
    assert "metadata.yaml has no rosbag2_bagfile_information" in result.report.format()
    recover_bag(bag)
    assert read_episodes(path).report.ok


def test_foreign_file_with_mcap_suffix(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "bag.mcap").write_bytes(b"PK\x03\x04 this is a zip file, not MCAP" * 10)
    with pytest.raises(BagFormatError, match="MCAP"):
        recover_bag(bag)
    proc = _cli("bag", "check", str(bag))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_undecodable_step_is_reported_and_its_episode_left_out(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with EpisodeRecorder(path, goal_space=SPACE, task="reach", fsync=False) as rec:
        rec.start_episode(np.zeros(3), stamp_ns=1)
        rec.record_step(
            observation=[0.0],
            next_observation=[0.0],
            action_raw=[0.0],
            achieved_goal=np.zeros(3),
            next_achieved_goal=np.zeros(3),
            stamp_ns=2,
        )
        rec.record_serialized("/her/step", "her_interfaces/msg/Step", b"\x00\x01\x00\x00garbage", 3)
        rec._episode.num_steps += 1  # type: ignore[union-attr]
        rec.end_episode(stamp_ns=4)
    result = read_episodes(path, log_summary=False)
    kinds = {p.kind for p in result.report.problems}
    assert {"undecodable", "missing_steps"} <= kinds
    assert not result.episodes


def test_recorder_misuse_is_a_clear_error(tmp_path: Path) -> None:
    rec = EpisodeRecorder(tmp_path / "s", goal_space=SPACE, task="reach")
    assert not (tmp_path / "s").exists()  # no I/O in __init__
    with pytest.raises(RecorderError, match="not open"):
        rec.start_episode(np.zeros(3))
    with rec:
        with pytest.raises(RecorderError, match="outside an episode"):
            rec.record_step(
                observation=[0.0],
                next_observation=[0.0],
                action_raw=[0.0],
                achieved_goal=np.zeros(3),
                next_achieved_goal=np.zeros(3),
            )
    with pytest.raises(RecorderError, match="resume=True"):
        record_session(tmp_path / "t", n_episodes=1)
        record_session(tmp_path / "t", n_episodes=1)


def test_exception_inside_the_context_aborts_the_episode_and_keeps_the_bag(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with (
        pytest.raises(ZeroDivisionError),
        EpisodeRecorder(path, goal_space=SPACE, task="reach") as rec,
    ):
        rec.start_episode(np.zeros(3))
        rec.record_step(
            observation=[0.0],
            next_observation=[0.0],
            action_raw=[0.0],
            achieved_goal=np.zeros(3),
            next_achieved_goal=np.zeros(3),
        )
        rec.end_episode()
        rec.start_episode(np.zeros(3))
        _ = 1 / 0
    result = read_episodes(path, log_summary=False)
    assert [e.episode_id for e in result.episodes] == [0]
    assert result.report.left_out == {"aborted": 1}
    assert "exception: ZeroDivisionError" in result.report.format()


def test_cli_info_check_recover(session: tuple[Path, Recorded], tmp_path: Path) -> None:
    path, _ = session
    info = _cli("bag", "info", str(path))
    assert info.returncode == 0, info.stderr
    assert "clean" in info.stdout and "goal space: ee_position" in info.stdout
    assert "/her/step" in info.stdout
    check = _cli("bag", "check", str(path))
    assert check.returncode == 0 and "4 episodes (40 steps) usable" in check.stdout
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    bag = _bag(copy)
    (bag / "metadata.yaml").unlink()
    info = _cli("bag", "info", str(copy))
    assert info.returncode == 1 and f"her bag recover {bag}" in info.stdout
    rec = _cli("bag", "recover", str(copy))
    assert rec.returncode == 0 and "metadata.yaml rebuilt" in rec.stdout
    again = _cli("bag", "recover", str(copy))
    assert "nothing to recover" in again.stdout
