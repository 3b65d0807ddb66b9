"""Bags from plain `ros2 bag record` of the /her/* topics: read without flags, cut episodes left out and named.

The plain bag is made the way `ros2 bag record` makes one: the recorder's messages copied into
a rosbag2 bag of rosbags' own writer (no HER metadata), starting after the first episode's
START and stopping before the last episode's END.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from her_recorder_testlib import record_session
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from her_recorder import interfaces as ifc
from her_recorder import read_episodes, typestore
from her_recorder.errors import BagFormatError


def plain_copy(src: Path, dst: Path, *, skip: int, drop_last: int) -> None:
    """Copy the HER topics of ``src``, without the first ``skip`` and last ``drop_last`` messages."""
    store = typestore()
    with Reader(src) as reader:
        wanted = [c for c in reader.connections if c.topic in (ifc.TOPIC_STEP, ifc.TOPIC_EPISODE)]
        messages = list(reader.messages(connections=wanted))
    with Writer(dst, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {c.topic: writer.add_connection(c.topic, c.msgtype, typestore=store) for c in wanted}
        for conn, stamp, data in messages[skip: len(messages) - drop_last]:
            writer.write(conns[conn.topic], stamp, data)


def test_a_plain_recording_reads_without_flags_and_names_the_cut_episodes(tmp_path: Path):
    record_session(tmp_path / "session", n_episodes=4, n_steps=10)
    plain = tmp_path / "plain"
    plain_copy(tmp_path / "session" / "bag_0000", plain, skip=4, drop_last=3)  # START + 3 steps; END + 2 steps
    result = read_episodes(plain, log_summary=False)
    assert len(result.episodes) == 2 and not result.report.errors()
    assert result.episodes[0].goal_space.name == "ee_position"
    assert result.report.left_out["cut_by_recording"] == 1 and result.report.left_out["incomplete"] == 1
    kinds = {p.kind: p for p in result.report.problems}
    assert kinds["cut_by_recording"].episode_id == 0 and "started mid-episode" in kinds["cut_by_recording"].message
    assert "from the START events" in kinds["goal_space_from_messages"].message


def test_a_complete_plain_copy_reads_every_episode(tmp_path: Path):
    record_session(tmp_path / "session", n_episodes=2, n_steps=5)
    plain = tmp_path / "plain"
    plain_copy(tmp_path / "session" / "bag_0000", plain, skip=0, drop_last=0)
    assert len(read_episodes(plain, log_summary=False).episodes) == 2


def test_start_events_naming_two_goal_spaces_need_the_flag(tmp_path: Path):
    from her_recorder.reader.plain import goal_space_from_messages
    from her_recorder.reader.reading import EpisodeMessages

    class Event:
        def __init__(self, space: str) -> None:
            self.event, self.goal_space = ifc.EventKind.START, space

    grouped = {0: EpisodeMessages([Event("ee_position")]), 1: EpisodeMessages([Event("object_position")])}
    with pytest.raises(BagFormatError, match="several goal spaces"):
        goal_space_from_messages(tmp_path, grouped, [])
    assert goal_space_from_messages(tmp_path, {}, []) is None
