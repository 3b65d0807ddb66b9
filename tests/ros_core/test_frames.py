"""Object poses between frames (what the nodes do with tf2), and the goals node's use of them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip

from her_goals.errors import StateError
from her_goals.goals_core import GoalsConfig, GoalsCore
from her_goals.rosglue import frames
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue.health import ERROR, WARN, Health
from her_mujoco.bridge_core import BridgeConfig, BridgeCore
from her_policy.deploy.policy_core import PolicyConfig, PolicyCore

S = 1_000_000_000
CAMERA = frames.from_xyz_rpy("base_link", "camera", [1.2, 0.0, 0.8], [0.0, 0.6, np.pi])
OBJECT = np.array([0.5, 0.1, 0.025, 1.0, 0.0, 0.0, 0.0])


def test_a_pose_seen_by_the_camera_maps_back_to_the_base_frame():
    in_camera = frames.transform_pose(frames.invert(CAMERA), OBJECT)
    assert not np.allclose(in_camera[:3], OBJECT[:3])
    back = frames.transform_pose(CAMERA, in_camera)
    np.testing.assert_allclose(back[:3], OBJECT[:3], atol=1e-12)
    assert abs(abs(float(np.dot(back[3:], OBJECT[3:]))) - 1.0) < 1e-12  # same orientation (q or -q)


def test_transform_messages_round_trip(types: mc.MessageTypes):
    msg = cdr_roundtrip(frames.transform_stamped_msg(types, CAMERA._replace(stamp_ns=3 * S + 5)))
    tf = frames.transform_fields(msg)
    assert (tf.parent, tf.child, tf.stamp_ns) == ("base_link", "camera", 3 * S + 5)
    np.testing.assert_allclose(tf.translation, CAMERA.translation)
    np.testing.assert_allclose(tf.rotation, CAMERA.rotation)


def lookup_with(tf: frames.Transform | None) -> frames.Lookup:
    def lookup(target: str, source: str, stamp_ns: int) -> frames.Transform:
        if tf is None:
            raise StateError(f"no transform {target} <- {source}: frame does not exist")
        return tf
    return lookup


def test_missing_stale_and_fresh_transforms():
    pose = frames.transform_pose(frames.invert(CAMERA), OBJECT)
    fresh = frames.pose_in_frame(pose, 10 * S, "camera", "base_link", lookup_with(CAMERA._replace(stamp_ns=10 * S)), 0.5)
    np.testing.assert_allclose(fresh[:3], OBJECT[:3], atol=1e-12)
    with pytest.raises(StateError, match="stale"):
        frames.pose_in_frame(pose, 10 * S, "camera", "base_link", lookup_with(CAMERA._replace(stamp_ns=9 * S)), 0.5)
    with pytest.raises(StateError, match="does not exist"):
        frames.pose_in_frame(pose, 10 * S, "camera", "base_link", lookup_with(None), 0.5)
    with pytest.raises(StateError, match="no tf2 lookup"):
        frames.pose_in_frame(pose, 10 * S, "camera", "base_link", None, 0.5)
    same = frames.pose_in_frame(OBJECT, 10 * S, "base_link", "base_link", None, 0.5)
    np.testing.assert_allclose(same, OBJECT)


def camera_pose(types: mc.MessageTypes, stamp: int) -> Any:
    pose = frames.transform_pose(frames.invert(CAMERA), OBJECT)
    return cdr_roundtrip(mc.pose_stamped_msg(types, pose, stamp, "camera"))


def test_goals_core_transforms_the_pose_and_treats_a_missing_transform_as_stale(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="push"))
    core.on_object_pose(camera_pose(types, S), lookup_with(CAMERA._replace(stamp_ns=S)))
    achieved = core.achieved(S)
    assert achieved is not None
    np.testing.assert_allclose(achieved[0], OBJECT[:3], atol=1e-9)
    core.on_object_pose(camera_pose(types, 2 * S), lookup_with(None))  # dropped: the last good one ages
    assert core.health.problems["object_pose"][0] == ERROR and "dropped" in core.health.problems["object_pose"][1]
    assert core.achieved(2 * S) is None and "no fresh /object_pose" in core.health.problems["stale"][1]
    core.on_object_pose(camera_pose(types, 3 * S), lookup_with(CAMERA._replace(stamp_ns=int(1.5 * S))))  # stale tf
    assert "stale" in core.health.problems["object_pose"][1]
    assert core.health.counters["object_poses_without_transform"] == 2


def test_a_pose_message_is_kept_transformed_or_dropped_counted_and_reported(types: mc.MessageTypes):
    health = Health("test")
    tf = lookup_with(CAMERA._replace(stamp_ns=2 * S))
    kept = frames.receive_object_pose(camera_pose(types, 2 * S), None, "base_link", tf, 0.5, health)
    assert kept is not None and kept[1] == 2 * S
    np.testing.assert_allclose(kept[0][:3], OBJECT[:3], atol=1e-9)
    assert frames.receive_object_pose(camera_pose(types, S), kept, "base_link", tf, 2.0, health) is None
    assert health.problems["pose_order"] == (WARN, "/object_pose stamp went backwards; dropped")
    assert frames.receive_object_pose(camera_pose(types, 3 * S), kept, "base_link", lookup_with(None), 0.5,
                                      health) is None
    assert health.problems["object_pose"][0] == ERROR and "does not exist" in health.problems["object_pose"][1]
    assert health.counters == {"out_of_order_object_poses": 1, "object_poses_without_transform": 1}
    later = frames.receive_object_pose(camera_pose(types, 3 * S), kept, "base_link", tf, 1.5, health)
    assert later is not None and later[1] == 3 * S and "object_pose" not in health.problems  # cleared


@pytest.mark.parametrize("make", [lambda: GoalsCore(GoalsConfig(task="push")),
                                  lambda: PolicyCore(PolicyConfig(task="push", fallback="scripted"))],
                         ids=["goals", "policy"])
def test_both_node_cores_drop_a_pose_stamped_before_the_one_they_keep(types: mc.MessageTypes, make: Any):
    core = make()

    def tf(target: str, source: str, stamp_ns: int) -> frames.Transform:  # a static camera
        return CAMERA._replace(stamp_ns=stamp_ns)

    core.on_object_pose(camera_pose(types, 2 * S), tf)
    core.on_object_pose(camera_pose(types, S), tf)
    assert core.health.counters["out_of_order_object_poses"] == 1 and core.health.problems["pose_order"][0] == WARN


def test_the_bridge_publishes_the_pose_in_its_camera_frame():
    bridge = BridgeCore(BridgeConfig(task="push", object_frame="camera", camera_xyz_m=(1.2, 0.0, 0.8),
                                     camera_rpy_rad=(0.0, 0.6, float(np.pi))))
    (tf,) = bridge.static_transforms()
    pose, frame = bridge.published_pose(OBJECT)
    assert frame == "camera" and (tf.parent, tf.child) == ("base_link", "camera")
    np.testing.assert_allclose(frames.transform_pose(tf, pose)[:3], OBJECT[:3], atol=1e-12)
    plain = BridgeCore(BridgeConfig(task="push"))
    assert plain.static_transforms() == [] and plain.published_pose(OBJECT)[1] == "base_link"


def test_an_episode_is_aborted_when_a_listener_stops(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="reach", start_delay_s=0.0, wait_for_nodes=("policy_node", "recorder_node")))
    names = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "joint7", "finger_joint1", "finger_joint2")
    q = np.array([0.0, 0.0457, 0.0, -2.3763, 0.0, 2.422, 0.7854, 0.04, 0.04])
    core.on_joint_state(cdr_roundtrip(mc.joint_state_msg(types, names, q, np.zeros(9), [], S)))
    listeners = {"policy_node", "recorder_node"}
    event, goal = core.tick(S, lambda: listeners)
    assert event is None and goal is not None
    core.start(goal, S, "auto")
    assert core.tick(S, lambda: listeners) == (None, None)
    listeners.discard("policy_node")  # deactivated (lifecycle) or gone
    event, goal = core.tick(S + 1, lambda: listeners)
    assert event is not None and event.reason == "policy_node stopped listening" and goal is None
    assert not core.book.running
