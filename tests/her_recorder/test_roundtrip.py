"""Write episodes, read them back, compare every field (for every storage option)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from her_recorder_testlib import SPACE, Recorded, record_session
from rosbags.rosbag2 import Reader

from her_recorder import read_episodes, typestore


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"compression": "zstd"},
        {"queue_size": 64},
        {"fsync": False, "max_episodes_per_bag": 2},
    ],
    ids=["plain", "zstd", "threaded", "split-by-count"],
)
def test_round_trip_every_field(tmp_path: Path, options: dict[str, object]) -> None:
    path = tmp_path / "s"
    recorded = record_session(path, **options)
    result = read_episodes(path)
    assert result.report.ok, result.report.format()
    assert [ep.episode_id for ep in result.episodes] == sorted(recorded.episodes)
    for ep in result.episodes:
        want = recorded.episodes[ep.episode_id]
        for name in (
            "observation",
            "next_observation",
            "action_raw",
            "action_applied",
            "achieved_goal",
            "next_achieved_goal",
            "stamp_ns",
        ):
            attr = "action" if name == "action_applied" else name  # the applied action
            np.testing.assert_array_equal(getattr(ep, attr), want[name], err_msg=name)
        np.testing.assert_array_equal(ep.desired_goal, np.tile(want["desired_goal"], (len(ep), 1)))
        np.testing.assert_array_equal(ep.safety_flags, want["safety_flags"])
        # the one reward function, recomputed by the recorder and checked by the reader
        np.testing.assert_array_equal(
            ep.reward, SPACE.compute_reward(ep.next_achieved_goal, ep.desired_goal)
        )
        assert ep.success == want["success"] == bool(ep.is_success[-1])
        assert ep.truncated[-1] and not ep.terminated.any()
        assert ep.goal_space.same_as(SPACE) and ep.task == "reach"
    if "max_episodes_per_bag" in options:
        assert len(list(path.iterdir())) == 2


def test_episode_arrays_have_one_row_per_step(session: tuple[Path, Recorded]) -> None:
    # (was test_buffer_args_match_add_episode_signature: Episode.buffer_args() is gone, its
    # keys did not match HerReplayBuffer.add_episode; the shapes and dtypes it checked stay)
    path, _ = session
    ep = read_episodes(path).episodes[0]
    assert ep.observation.shape == (10, 6) and ep.next_observation.shape == (10, 6)
    assert ep.action.shape == (10, 4) and ep.action_raw.shape == (10, 4)
    assert ep.terminated.dtype == np.bool_ and ep.truncated.dtype == np.bool_


def test_rosbags_reads_our_bag_and_connections_carry_definitions(
    session: tuple[Path, Recorded],
) -> None:
    path, recorded = session
    bag = next(path.iterdir())
    with Reader(bag) as reader:
        topics = reader.topics
        assert topics["/her/step"].msgcount == sum(
            len(e["stamp_ns"]) for e in recorded.episodes.values()
        )
        assert topics["/her/episode"].msgcount == 2 * len(recorded.episodes)
        assert topics["/joint_states"].msgtype == "sensor_msgs/msg/JointState"
        step_def = topics["/her/step"].msgdef.data
        assert "uint32 CLIPPED=1" in step_def and "MSG: std_msgs/Header" in step_def
        for conn, _, data in reader.messages():
            typestore().deserialize_cdr(data, conn.msgtype)


def test_metadata_records_goal_space_task_config_seeds(session: tuple[Path, Recorded]) -> None:
    path, _ = session
    from her_recorder import bag_summary

    info = bag_summary(next(path.iterdir()))
    assert info.state == "clean" and info.meta is not None
    assert info.meta.goal_space.same_as(SPACE)
    assert info.meta.task == "reach"
    assert info.meta.config == {"lr": 1e-3} and len(info.meta.config_hash) == 16
    assert info.meta.seeds == {"train": 0}
    assert info.episodes["ended"] == 4 and info.last_episode_id == 3
    metadata = info.metadata
    assert metadata is not None and metadata["version"] == 9
    assert metadata["storage_identifier"] == "mcap"


def test_split_by_size(tmp_path: Path) -> None:
    path = tmp_path / "s"
    record_session(path, n_episodes=6, max_bag_bytes=4_000)
    bags = sorted(path.iterdir())
    assert len(bags) >= 3
    result = read_episodes(path)
    assert [e.episode_id for e in result.episodes] == list(range(6))


def test_resume_continues_ids_in_a_new_bag(tmp_path: Path) -> None:
    path = tmp_path / "s"
    record_session(path, n_episodes=2)
    record_session(path, n_episodes=2, seed=1, resume=True)
    assert sorted(p.name for p in path.iterdir()) == ["bag_0000", "bag_0001"]
    result = read_episodes(path)
    assert [e.episode_id for e in result.episodes] == [0, 1, 2, 3]
    from her_recorder import bag_summary

    sessions = {bag_summary(b).meta.session for b in path.iterdir()}  # type: ignore[union-attr]
    assert len(sessions) == 1


def test_discard_and_abort_are_left_out_visibly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from her_recorder import EpisodeRecorder

    path = tmp_path / "s"
    with EpisodeRecorder(path, goal_space=SPACE, task="reach") as rec:
        for kind in ("end", "discard", "abort", "end"):
            rec.start_episode(np.zeros(3))
            rec.record_step(
                observation=[0.0],
                next_observation=[1.0],
                action_raw=[0.0],
                achieved_goal=np.ones(3),
                next_achieved_goal=np.zeros(3),
            )
            if kind == "end":
                rec.end_episode()
            elif kind == "discard":
                rec.discard_episode("re-record")
            else:
                rec.abort_episode("safety")
    result = read_episodes(path)
    assert [e.episode_id for e in result.episodes] == [0, 3]
    assert result.report.left_out == {"discarded": 1, "aborted": 1}
    assert "left out 2: 1 aborted, 1 discarded" in caplog.text
    with_aborted = read_episodes(path, include_aborted=True)
    aborted = [e for e in with_aborted.episodes if e.status == "aborted"]
    assert len(aborted) == 1 and aborted[0].truncated[-1] and not aborted[0].success
