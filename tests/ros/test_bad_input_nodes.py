"""Bad input to the real nodes: wrong parameter types, an artefact for another goal space, wrong
joint names, out-of-order stamps. Each node logs, publishes a diagnostic, holds, and stays up;
the managed policy node refuses to configure with an artefact that does not fit, stays
unconfigured (visible through the lifecycle services) and configures once the parameter is fixed.

Skipped without rclpy/launch_pytest or without the built workspace.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_cli import bringup_share

bringup_share(launch_tests=True)
import launch  # noqa: E402
import launch_pytest  # noqa: E402
import rclpy  # noqa: E402
from launch_ros.actions import LifecycleNode, Node  # noqa: E402
from ros_probe_node import lifecycle, start_probe  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "ros_core"))
from ros_testlib import write_artefact  # noqa: E402

from her_goals.robot.arm_config import ARM_JOINTS, GRIPPER_JOINTS, HOME_QPOS_RAD  # noqa: E402

ERROR = b"\x02"
NAMES = list(ARM_JOINTS + GRIPPER_JOINTS)
HOME = [*HOME_QPOS_RAD, 0.04, 0.04]


@pytest.fixture(scope="module")
def push_artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_artefact(tmp_path_factory.mktemp("art") / "policy", task="push")


@launch_pytest.fixture(scope="module")
def bad_stack(push_artefact: Path) -> Any:
    return launch.LaunchDescription([
        Node(package="her_goals", executable="goals_node", name="goals_node", output="screen",
             parameters=[{"achieved_rate_hz": "fast", "task": "reach"}]),
        LifecycleNode(package="her_policy", executable="policy_node", name="policy_node", namespace="",
                      output="screen", parameters=[{"task": "reach", "artefact": str(push_artefact)}]),
        LifecycleNode(package="her_policy", executable="policy_node", name="policy_good", namespace="",
                      output="screen", parameters=[{"task": "reach", "fallback": "hold"}]),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.fixture(scope="module")
def probe() -> Any:
    node = start_probe()
    yield node
    node.close()
    rclpy.try_shutdown()


def diag(probe: Any, prefix: str, text: str, since: float = 0.0) -> Any:
    return probe.wait_for(
        "/diagnostics", lambda m: m.status[0].name.startswith(prefix) and text in m.status[0].message,
        since=since, timeout=30,
    ).status[0]


def joint_state(names: list[str], stamp_ns: int) -> Any:
    from sensor_msgs.msg import JointState

    msg = JointState(name=names, position=[float(v) for v in HOME])
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


@pytest.mark.launch(fixture=bad_stack)
def test_wrong_parameter_type_is_reported_not_a_crash(probe: Any):
    status = diag(probe, "her_goals", "achieved_rate_hz: expected a number")
    assert status.level == ERROR
    t = time.monotonic()
    diag(probe, "her_goals", "not running", since=t)  # still alive, still saying so


@pytest.mark.launch(fixture=bad_stack)
def test_artefact_for_another_goal_space_is_refused_at_configure_and_recoverable(probe: Any):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    assert lifecycle(probe, "/policy_node") == "unconfigured"
    assert not lifecycle(probe, "/policy_node", "configure")
    status = diag(probe, "her_policy: /policy_node", "configure failed")
    assert status.level == ERROR and "object_position" in status.message
    assert lifecycle(probe, "/policy_node") == "unconfigured"  # visible, and nothing is commanded
    empty = Parameter(name="artefact", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=""))
    probe.call(SetParameters, "/policy_node/set_parameters", SetParameters.Request(parameters=[empty]))
    assert lifecycle(probe, "/policy_node", "configure")  # fixed parameter: configures (fallback hold)
    assert lifecycle(probe, "/policy_node") == "inactive"
    assert lifecycle(probe, "/policy_node", "cleanup")


@pytest.mark.launch(fixture=bad_stack)
def test_wrong_joint_names_and_out_of_order_stamps(probe: Any):
    from her_interfaces.msg import EpisodeEvent
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState

    pub = probe.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
    event_pub = probe.create_publisher(EpisodeEvent, "/her/episode", 100)
    now = probe.get_clock().now().nanoseconds
    t = time.monotonic()
    for i in range(20):
        pub.publish(joint_state([n.upper() for n in NAMES], now + i * 10_000_000))
        time.sleep(0.02)
    # configure checks the joint names against what the driver publishes
    assert not lifecycle(probe, "/policy_good", "configure")
    status = diag(probe, "her_policy: /policy_good", "lacks the arm's joint(s)", since=t)
    assert status.level == ERROR and "JOINT1" in status.message
    pub.publish(joint_state(NAMES, probe.get_clock().now().nanoseconds))
    time.sleep(0.2)
    assert lifecycle(probe, "/policy_good", "configure") and lifecycle(probe, "/policy_good", "activate")
    t = time.monotonic()
    for _ in range(20):  # an active node told the wrong names: reported, the state goes stale
        pub.publish(joint_state([n.upper() for n in NAMES], probe.get_clock().now().nanoseconds))
        time.sleep(0.02)
    status = diag(probe, "her_policy: /policy_good", "lacks joint(s)", since=t)
    assert status.level == ERROR and "JOINT1" in status.message
    # Good names, then one message stamped in the past: dropped and counted.
    good = probe.get_clock().now().nanoseconds
    pub.publish(joint_state(NAMES, good))
    time.sleep(0.1)
    pub.publish(joint_state(NAMES, good - 500_000_000))
    t = time.monotonic()
    status = diag(probe, "her_policy: /policy_good", "stamp went backwards", since=t)
    counts = {kv.key: kv.value for kv in status.values}
    assert counts["out_of_order_joint_states"] == "1"
    # An episode under this artefact: the policy holds at the measured position.
    event_pub.publish(EpisodeEvent(event=0, episode_id=0, task="reach", goal_space="ee_position",
                                   desired_goal=[0.5, 0.0, 0.2]))
    t = time.monotonic()
    for _ in range(25):
        stamp = probe.get_clock().now().nanoseconds
        pub.publish(joint_state(NAMES, stamp))
        time.sleep(0.04)
    commands = probe.messages("/forward_position_controller/commands", since=t)
    assert commands, "the policy sent no hold command"
    for c in commands:
        np.testing.assert_allclose(c.data, HOME[:7], atol=1e-9)
