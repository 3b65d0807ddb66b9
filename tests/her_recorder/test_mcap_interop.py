"""foxglove's ``mcap`` reader, strict (CRCs validated), reads our clean and recovered files;
our one-call record write gives the bytes of rosbags' own ``Writer.write``.

``mcap`` is a dependency (mcapscan reads torn files with its StreamReader); its
indexed reader, which mcapscan does not use, checks what we and rosbags write.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import mcap.reader as mcap_reader
import mcap.stream_reader as mcap_stream
import numpy as np
import pytest
import yaml
from her_recorder_testlib import SPACE, record_session
from rosbags.highlevel import AnyReader

from her_recorder import BagFormatError, EpisodeRecorder, read_episodes, recover_bag, typestore
from her_recorder.rosbags_adapter import DurableMcap
from her_recorder.writer import header


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_clean_and_recovered_files_pass_a_strict_reader(tmp_path: Path, compression: str) -> None:
    record_session(tmp_path / "s", n_episodes=4, fsync=False, compression=compression)
    bag = tmp_path / "s" / "bag_0000"
    mcap = bag / "bag_0000.mcap"
    counts = []
    for recovered in (False, True):
        if recovered:
            data = mcap.read_bytes()
            (bag / "metadata.yaml").unlink()
            mcap.write_bytes(data[: len(data) // 2])
            recover_bag(bag)
        with mcap.open("rb") as fh:
            reader = mcap_reader.make_reader(fh, validate_crcs=True)
            summary = reader.get_summary()
            n = sum(1 for _ in reader.iter_messages())
            assert summary.statistics.message_count == n
            counts.append(n)
        with mcap.open("rb") as fh:
            assert sum(1 for _ in mcap_stream.StreamReader(fh, validate_crcs=True).records) > n
    assert 0 < counts[1] <= counts[0]


def test_a_missing_decompressor_is_an_error_not_a_lost_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mcap installed without its zstandard dependency must not read zstd chunks as corrupt."""
    record_session(tmp_path / "s", n_episodes=2, fsync=False, compression="zstd")
    bag = tmp_path / "s" / "bag_0000"
    (bag / "metadata.yaml").unlink()  # read by the tolerant scan
    monkeypatch.setattr(mcap_stream, "zstandard", None)
    with pytest.raises(BagFormatError, match="zstd-compressed .* pip install lz4 zstandard"):
        read_episodes(tmp_path / "s", log_summary=False)


def _session(path: Path) -> None:
    """Every kind of message the recorder writes: Steps (rewards left to the goal space and
    given), events, goals, true achieved goals, sim params, JointState and PoseStamped objects,
    an already serialised message; an episode longer than the recorder's pending batch."""
    store = typestore()
    types: Any = store.types
    rng = np.random.default_rng(5)
    t = 1_700_000_000_000_000_000
    with EpisodeRecorder(path, goal_space=SPACE, task="reach", seeds=1) as rec:
        for e, n_steps in enumerate((3, 300, 7)):
            rec.start_episode(rng.uniform(-0.5, 0.5, 3), stamp_ns=t, sim_params={"mass": 1.0 + e})
            for s in range(n_steps):
                t += 1_000_000
                given = s % 2 == 0
                rec.record_step(
                    observation=rng.normal(size=6), next_observation=rng.normal(size=6),
                    action_raw=rng.normal(size=4), achieved_goal=rng.normal(size=3),
                    next_achieved_goal=rng.normal(size=3), stamp_ns=t, policy="scripted",
                    reward=-1.0 if given else None, is_success=False if given else None,
                    safety_reasons=["clipped"] * (s % 3), true_next_achieved_goal=rng.normal(size=3),
                )  # fmt: skip
                rec.record_raw("/joint_states", types["sensor_msgs/msg/JointState"](
                    header=header(t, "base_link"), name=["j1", "j2"], position=rng.normal(size=2),
                    velocity=rng.normal(size=2), effort=np.zeros(2)), t)  # fmt: skip
                pose = types["geometry_msgs/msg/PoseStamped"](
                    header=header(t, "world"),
                    pose=types["geometry_msgs/msg/Pose"](
                        position=types["geometry_msgs/msg/Point"](x=s, y=0.5, z=-1.0),
                        orientation=types["geometry_msgs/msg/Quaternion"](x=0, y=0, z=0, w=1.0),
                    ),
                )
                rec.record_raw("/object_pose", pose, t)
                command = types["std_msgs/msg/Float64MultiArray"](
                    layout=types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0),
                    data=rng.normal(size=7),
                )
                rec.record_serialized(
                    "/her/command", "std_msgs/msg/Float64MultiArray",
                    bytes(store.serialize_cdr(command, "std_msgs/msg/Float64MultiArray")), t,
                )  # fmt: skip
            t += 1_000_000
            rec.end_episode(stamp_ns=t)
            t += 1_000_000


def test_write_message_gives_the_bytes_of_rosbags_own_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same session recorded twice, once through DurableMcap.write_message (the one-call
    record write) and once with it replaced by rosbags' public ``Writer.write``: the two
    MCAP files and metadata.yaml are identical byte for byte; then rosbags' AnyReader and
    mcap's strict reader read the same messages from ours."""
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=7))  # the session id in the bag
    _session(tmp_path / "ours")
    with monkeypatch.context() as m:
        m.setattr(
            DurableMcap, "write_message", lambda self, conn, t, data: self._writer.write(conn, t, data)
        )
        _session(tmp_path / "stock")
    ours, stock = tmp_path / "ours" / "bag_0000", tmp_path / "stock" / "bag_0000"
    assert (ours / "bag_0000.mcap").read_bytes() == (stock / "bag_0000.mcap").read_bytes()
    assert (ours / "metadata.yaml").read_bytes() == (stock / "metadata.yaml").read_bytes()

    with AnyReader([ours]) as reader:
        rosbags = [(c.topic, c.msgtype, t, bytes(d)) for c, t, d in reader.messages()]
        decoded = [reader.deserialize(d, c.msgtype) for c, _, d in reader.messages()]
    with (ours / "bag_0000.mcap").open("rb") as fh:
        mcap = [
            (channel.topic, schema.name, message.log_time, message.data)
            for schema, channel, message in mcap_reader.make_reader(
                fh, validate_crcs=True
            ).iter_messages(log_time_order=True)
        ]
    assert mcap == rosbags
    topics = Counter(topic for topic, *_ in rosbags)
    assert topics == {
        "/her/step": 310, "/her/true_achieved_goal": 310, "/joint_states": 310,
        "/object_pose": 310, "/her/command": 310, "/her/episode": 6, "/her/desired_goal": 3,
        "/her/sim_params": 3,
    }  # fmt: skip
    poses = [m for (topic, *_), m in zip(rosbags, decoded, strict=True) if topic == "/object_pose"]
    assert [p.pose.position.x for p in poses[:5]] == [0.0, 1.0, 2.0, 0.0, 1.0]
    info = yaml.safe_load((ours / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["starting_time"]["nanoseconds_since_epoch"] == rosbags[0][2]  # ros2 bag info
    assert info["duration"]["nanoseconds"] == rosbags[-1][2] - rosbags[0][2]
    result = read_episodes(tmp_path / "ours", log_summary=False)
    assert result.report.ok and [len(e) for e in result.episodes] == [3, 300, 7]
