"""Every message conversion, through CDR, with the rosbags classes of the Jazzy typestore."""

from __future__ import annotations

import array
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip

from her_goals import get_goal_space
from her_goals.errors import StateError
from her_goals.rosglue import msgconv as mc

SPACE = get_goal_space("ee_position")


def test_time_and_header(types: mc.MessageTypes):
    stamp = 1_700_000_000_123_456_789
    header = cdr_roundtrip(mc.header_msg(types, stamp, "base_link"))
    assert mc.stamp_to_ns(header.stamp) == stamp and header.frame_id == "base_link"
    duration = mc.time_msg(types, 40_000_000, "Duration")
    assert (duration.sec, duration.nanosec) == (0, 40_000_000)


def test_joint_state_round_trip_to_robot_state(types: mc.MessageTypes):
    names = ("joint1", "joint2", "finger_joint1")
    msg = cdr_roundtrip(mc.joint_state_msg(types, names, [0.1, -0.2, 0.04], [1, 2, 3], [], 5_000))
    state = mc.robot_state(msg)
    assert state.joint_names == names and state.stamp_ns == 5_000
    np.testing.assert_array_equal(state.position, [0.1, -0.2, 0.04])
    np.testing.assert_array_equal(state.velocity, [1.0, 2.0, 3.0])
    assert state.effort.size == 0 and state.object_pose is None


def test_joint_state_with_mismatched_arrays_is_a_state_error(types: mc.MessageTypes):
    msg = mc.joint_state_msg(types, ["a", "b"], [0.1], [], [], 0)
    with pytest.raises(StateError, match="2 names but 1 position"):
        mc.joint_state_fields(msg)


def test_pose_stamped_round_trip_keeps_quaternion_order(types: mc.MessageTypes):
    pose = [0.5, -0.1, 0.025, 0.7071, 0.0, 0.0, 0.7071]
    msg = cdr_roundtrip(mc.pose_stamped_msg(types, pose, 42, "base_link"))
    assert (msg.pose.orientation.w, msg.pose.orientation.z) == (0.7071, 0.7071)
    values, stamp, frame = mc.pose_fields(msg)
    np.testing.assert_array_equal(values, pose)
    assert (stamp, frame) == (42, "base_link")
    js = mc.joint_state_msg(types, ["j"], [0.0], [], [], 1)
    state = mc.robot_state(js, msg, expect_frame="base_link")
    np.testing.assert_array_equal(state.object_pose, pose)
    assert state.object_stamp_ns == 42
    with pytest.raises(StateError, match="frame 'base_link', goals are in 'world'"):
        mc.robot_state(js, msg, expect_frame="world")


def test_goal_round_trip(types: mc.MessageTypes):
    msg = cdr_roundtrip(mc.goal_msg(types, SPACE, [0.5, 0.0, 0.2], 7, 3))
    data = mc.goal_data(msg)
    assert data.goal_space == "ee_position" and data.frame_id == "base_link"
    assert data.tolerance == SPACE.tolerance and data.episode_id == 3 and data.stamp_ns == 7
    np.testing.assert_array_equal(data.value, [0.5, 0.0, 0.2])


def test_episode_event_round_trip(types: mc.MessageTypes):
    data = mc.EventData(1, 4, "reach", "ee_position", np.array([0.4, 0.1, 0.2]), 50, True, "success", 99, "base_link")
    back = mc.episode_event_data(cdr_roundtrip(mc.episode_event_msg(types, data)))
    assert back._replace(desired_goal=None) == data._replace(desired_goal=None)
    np.testing.assert_array_equal(back.desired_goal, data.desired_goal)


def step_data(**over: Any) -> mc.StepData:
    fields: dict[str, Any] = {
        "episode_id": 2, "step": 5, "observation": np.arange(8.0), "next_observation": np.arange(8.0) + 1,
        "action_raw": np.array([1.5, 0.0, -0.2, 1.0]), "action_applied": np.array([1.0, 0.0, -0.2, 1.0]),
        "achieved_goal": np.array([0.5, 0.0, 0.2]), "next_achieved_goal": np.array([0.51, 0.0, 0.2]),
        "desired_goal": np.array([0.6, 0.1, 0.2]), "reward": -1.0, "terminated": False, "truncated": True,
        "is_success": False, "safety_flags": 1 | 16, "safety_cost": 1.0,
        "safety_reasons": ("CLIPPED", "WORKSPACE"), "stamp_ns": 123, "frame_id": "base_link",
    }
    fields.update(over)
    return mc.StepData(**fields)


def test_step_round_trip_keeps_every_field(types: mc.MessageTypes):
    data = step_data(observation=np.array([np.nan, 1.0]))
    back = mc.step_data(cdr_roundtrip(mc.step_msg(types, data)))
    for name in data.__dataclass_fields__:
        a, b = getattr(data, name), getattr(back, name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)  # NaN compares equal here: recorded as such
        else:
            assert a == b, name
    kwargs = back.recorder_kwargs()
    assert kwargs["reward"] == -1.0 and kwargs["safety_reasons"] == ("CLIPPED", "WORKSPACE")
    assert "desired_goal" not in kwargs  # the recorder always writes the episode's own


def test_forward_command_and_trajectory(types: mc.MessageTypes):
    cmd = cdr_roundtrip(mc.float64_multi_array_msg(types, [0.1, 0.2]))
    np.testing.assert_array_equal(mc.float64_multi_array_values(cmd), [0.1, 0.2])
    traj = cdr_roundtrip(mc.joint_trajectory_msg(types, ["a", "b", "c"], [1.0, 2.0, 3.0], 0.04))
    assert mc.stamp_to_ns(traj.points[0].time_from_start) == 40_000_000
    np.testing.assert_array_equal(mc.joint_trajectory_target(traj, ["c", "a"]), [3.0, 1.0])
    with pytest.raises(StateError, match="lacks joint"):
        mc.joint_trajectory_target(traj, ["a", "d"])
    empty = types[mc.JOINT_TRAJECTORY](header=mc.header_msg(types, 0, ""), joint_names=["a"], points=[])
    with pytest.raises(StateError, match="no points"):
        mc.joint_trajectory_target(empty, ["a"])


def test_diagnostics_round_trip(types: mc.MessageTypes):
    statuses = [
        mc.Diagnostic(2, "her_policy: policy_node", "holding", "reach", {"cost": 1.0, "flags": "ESTOP"}),
        mc.Diagnostic(3, "stale", "no state", "", {"x": math.nan, "v": np.array([1.0, 2.0])}),
    ]
    msg = cdr_roundtrip(mc.diagnostic_array_msg(types, 5, statuses))
    back = mc.diagnostics(msg)
    assert [s.level for s in back] == [2, 3]
    assert back[0].values == {"cost": "1", "flags": "ESTOP"}
    assert back[1].values == {"x": "nan", "v": "[1.0, 2.0]"}


def test_bool_and_clock(types: mc.MessageTypes):
    assert cdr_roundtrip(mc.bool_msg(types, True)).data is True
    assert mc.stamp_to_ns(cdr_roundtrip(mc.clock_msg(types, 3_000_000_001)).clock) == 3_000_000_001


class _RclpyLikeStatus:
    """DiagnosticStatus as rclpy generates it: ``level`` is one byte, constants are bytes."""

    OK, WARN, ERROR, STALE = b"\x00", b"\x01", b"\x02", b"\x03"

    def __init__(self, **kw: Any) -> None:
        assert isinstance(kw["level"], bytes) and len(kw["level"]) == 1
        self.__dict__.update(kw)


def test_rclpy_flavour_uses_byte_levels_and_double_arrays():
    classes = {
        "diagnostic_msgs/msg/DiagnosticStatus": _RclpyLikeStatus,
        "diagnostic_msgs/msg/KeyValue": SimpleNamespace,
        "diagnostic_msgs/msg/DiagnosticArray": SimpleNamespace,
        "std_msgs/msg/Header": SimpleNamespace,
        "builtin_interfaces/msg/Time": SimpleNamespace,
        "std_msgs/msg/MultiArrayLayout": SimpleNamespace,
        "std_msgs/msg/Float64MultiArray": SimpleNamespace,
    }
    types = mc.MessageTypes(classes.__getitem__, mc._to_double_array)
    msg = mc.diagnostic_array_msg(types, 0, [mc.Diagnostic(1, "n", "m")])
    assert msg.status[0].level == b"\x01"
    assert [d.level for d in mc.diagnostics(msg)] == [1]
    cmd = mc.float64_multi_array_msg(types, np.array([0.5, -1.0]))
    assert isinstance(cmd.data, array.array) and cmd.data.typecode == "d" and list(cmd.data) == [0.5, -1.0]
    np.testing.assert_array_equal(mc.float64_multi_array_values(cmd), [0.5, -1.0])


def test_from_ros_imports_lazily():
    types = mc.MessageTypes.from_ros()  # nothing imported yet: works without ROS
    with pytest.raises(ModuleNotFoundError):
        types["no_such_pkg_xyz/msg/Nothing"]
