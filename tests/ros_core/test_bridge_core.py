"""bridge_node's core: the MuJoCo arm behind ros2_control-like commands, latency, noise, reset."""

from __future__ import annotations

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip

from her_goals.errors import ConfigError, StateError
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue.health import ERROR
from her_goals.tasks import MIN_START_GOAL_DISTANCE_M
from her_mujoco.bridge_core import BridgeConfig, BridgeCore
from her_mujoco.tasks import PARKED_OBJECT_M

S = 1_000_000_000


@pytest.fixture(scope="module")
def bridge() -> BridgeCore:
    return BridgeCore(BridgeConfig(task="reach"))


def test_steps_publish_joint_states_at_the_bridge_rate(bridge: BridgeCore):
    bridge.reset()
    t0 = bridge.clock_ns
    (m,) = bridge.step()
    assert m.stamp_ns - t0 == 10_000_000  # 100 Hz
    assert m.names == bridge.sim.joint_names and m.position.shape == (9,)
    np.testing.assert_allclose(m.object_pose[:3], PARKED_OBJECT_M, atol=1e-4)  # reach: block out of reach


def test_forward_command_moves_the_arm_and_is_held(bridge: BridgeCore):
    bridge.reset()
    target = np.asarray(bridge.arm.home_qpos_rad) + np.array([0.2, 0, 0, 0, 0, 0, 0])
    assert bridge.command(target)
    for _ in range(100):
        m = bridge.step()[-1]
    assert abs(m.position[0] - target[0]) < 0.01  # reached and held, no timeout


def test_malformed_commands_are_rejected_and_reported(bridge: BridgeCore):
    bridge.reset()
    assert not bridge.command(np.zeros(8))
    assert not bridge.command([np.nan] * 7)
    assert bridge.health.problems["command"][0] == ERROR
    assert bridge.health.counters["rejected_commands"] >= 2
    assert not bridge.gripper([0.1, 0.2])
    assert not bridge.trajectory(["joint1", "joint2"], [0.0, 0.0])  # lacks joints 3-7
    assert "the arm needs" in bridge.health.problems["command"][1]
    q0 = bridge.sim.arm_qpos.copy()
    bridge.step()
    np.testing.assert_allclose(bridge.sim.arm_qpos, q0, atol=2e-3)  # nothing half-applied


def test_trajectory_by_joint_name_and_gripper(bridge: BridgeCore):
    bridge.reset()
    names = [*reversed(bridge.joint_names), "some_other_joint"]
    target = np.asarray(bridge.arm.home_qpos_rad) + 0.1
    assert bridge.trajectory(names, [*reversed(target), 0.0])
    assert bridge.gripper([0.0])
    for _ in range(100):
        bridge.step()
    np.testing.assert_allclose(bridge.sim.arm_qpos, target, atol=0.02)
    assert bridge.sim.gripper_opening_m < 0.01
    assert "command" not in bridge.health.problems


def test_command_and_state_latency():
    core = BridgeCore(BridgeConfig(task="reach", command_latency_s=0.05, state_latency_s=0.03))
    # The first measurement (stamped 10 ms) is published 30 ms later, on the 4th step.
    assert core.step() == [] and core.step() == [] and core.step() == []
    (m,) = core.step()
    assert core.clock_ns - m.stamp_ns == 30_000_000
    q0 = core.sim.arm_qpos.copy()
    core.command(q0 + 0.3)
    for _ in range(4):
        core.step()
    np.testing.assert_allclose(core.sim.arm_qpos, q0, atol=1e-3)  # not applied before 50 ms
    for _ in range(20):
        core.step()
    assert core.sim.arm_qpos[0] > q0[0] + 0.05


def test_noise_is_on_the_measurement_not_the_simulation():
    core = BridgeCore(BridgeConfig(task="push", joint_noise_std_rad=0.01, object_noise_std_m=0.005, seed=1))
    m = core.step()[-1]
    assert np.abs(m.position - core.sim.state().position).max() > 1e-4
    assert 0 < np.abs(m.object_pose[:3] - core.sim.object_pose()[:3]).max() < 0.05


def test_reset_places_the_block_away_from_the_goal_and_shows_the_marker():
    core = BridgeCore(BridgeConfig(task="push"))
    goal = np.array([0.5, 0.0, 0.025])
    for seed in range(5):
        pose = core.reset(desired_goal=goal, seed=seed)
        assert np.linalg.norm(pose[:3] - goal) >= MIN_START_GOAL_DISTANCE_M
    np.testing.assert_allclose(core.sim.data.mocap_pos[0], goal)
    pose = core.reset(object_position=[0.4, 0.1, 0.025])
    np.testing.assert_allclose(pose[:3], [0.4, 0.1, 0.025])
    with pytest.raises(StateError, match="3 values"):
        core.reset(object_position=[0.4, 0.1])


def test_clock_never_goes_back_on_reset(bridge: BridgeCore):
    bridge.step()
    t = bridge.clock_ns
    bridge.reset()
    assert bridge.step()[-1].stamp_ns > t


def test_bad_configs():
    with pytest.raises(ConfigError, match="unknown task"):
        BridgeConfig(task="door")
    with pytest.raises(ConfigError, match="latency"):
        BridgeConfig(command_latency_s=-1.0)


# -- what bridge_node publishes and answers (the node only hands these to rclpy) -------------
def test_a_step_becomes_joint_states_and_the_object_pose_stamped_by_wall_time_less_the_latency(
        types: mc.MessageTypes):
    core = BridgeCore(BridgeConfig(task="push", state_latency_s=0.0))
    pairs = core.messages(types, core.step(), wall_now_ns=5 * S)
    assert [k for k, _ in pairs] == ["joint_states", "object_pose"]  # no /clock unless asked
    js, pose = (cdr_roundtrip(m) for _, m in pairs)
    assert mc.stamp_to_ns(js.header.stamp) == mc.stamp_to_ns(pose.header.stamp) == 5 * S
    assert list(js.name) == list(core.sim.joint_names) and pose.header.frame_id == "base_link"
    late = BridgeCore(BridgeConfig(task="reach", state_latency_s=0.02))
    for _ in range(2):
        assert late.messages(types, late.step(), wall_now_ns=5 * S) == []  # nothing due yet
    (key, msg), *_ = late.messages(types, late.step(), wall_now_ns=5 * S)
    assert key == "joint_states" and mc.stamp_to_ns(cdr_roundtrip(msg).header.stamp) == 5 * S - 20_000_000


def test_with_clock_the_simulated_time_goes_out_first_and_stamps_the_measurements(types: mc.MessageTypes):
    core = BridgeCore(BridgeConfig(task="reach", publish_clock=True))
    measurements = core.step()
    pairs = core.messages(types, measurements, wall_now_ns=5 * S)
    assert [k for k, _ in pairs] == ["clock", "joint_states", "object_pose"]
    clock, js = cdr_roundtrip(pairs[0][1]), cdr_roundtrip(pairs[1][1])
    assert mc.stamp_to_ns(clock.clock) == core.clock_ns
    assert mc.stamp_to_ns(js.header.stamp) == measurements[0].stamp_ns


def test_a_trajectory_message_without_points_is_rejected_and_the_reset_service_replies(types: mc.MessageTypes):
    core = BridgeCore(BridgeConfig(task="push"))
    empty = cdr_roundtrip(types[mc.JOINT_TRAJECTORY](header=mc.header_msg(types, 0, ""), joint_names=[], points=[]))
    assert not core.trajectory_msg(empty)
    assert core.health.problems["command"] == (ERROR, "trajectory rejected: it has no points")
    one_point = cdr_roundtrip(mc.joint_trajectory_msg(types, core.joint_names, core.arm.home_qpos_rad, 0.04))
    assert core.trajectory_msg(one_point) and "command" not in core.health.problems
    ok, message, placed = core.reset_request([0.55, 0.05, 0.025], [0.45, -0.1, 0.025], 3)
    assert (ok, message) == (True, "reset") and placed == pytest.approx([0.55, 0.05, 0.025], abs=1e-3)
    ok, message, placed = core.reset_request([0.5], [], -1)
    assert not ok and placed == [] and "object_position" in message
