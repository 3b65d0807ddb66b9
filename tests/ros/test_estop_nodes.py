"""The software e-stop of the real policy node engages from every publisher QoS and from its service.

``ros2 topic pub --once`` itself (default QoS: reliable, volatile) is run as the README types
it; a latched (transient local) stop, a best-effort one and the ``~/estop`` service follow;
and a stop latched *before* a policy node starts reaches it when it comes up.

Skipped without rclpy/launch_pytest or without the built workspace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

import pytest
from ros_cli import bringup_share, run, stop

bringup_share(launch_tests=True)
import ament_index_python.packages as ament  # noqa: E402
import launch  # noqa: E402
import launch_pytest  # noqa: E402
import rclpy  # noqa: E402
from launch_ros.actions import Node  # noqa: E402
from ros_probe_node import start_probe  # noqa: E402

ROS2 = shutil.which("ros2")


@launch_pytest.fixture(scope="module")
def policy_alone() -> Any:
    return launch.LaunchDescription([
        Node(package="her_policy", executable="policy_node", name="policy_node", output="screen",
             parameters=[{"task": "reach", "fallback": "hold"}]),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.fixture(scope="module")
def probe() -> Any:
    node = start_probe()
    yield node
    node.close()
    rclpy.try_shutdown()


def latched(probe: Any, node: str = "policy_node", since: float = 0.0, timeout: float = 15.0) -> bool:
    """The policy's ``estop_latched`` from its first diagnostic received after ``since``."""
    msg = probe.wait_for("/diagnostics", lambda m: any(s.name.endswith(node) for s in m.status),
                         since=since, timeout=timeout)
    status = next(s for s in msg.status if s.name.endswith(node))
    return {kv.key: kv.value for kv in status.values}["estop_latched"] == "True"


def wait_latched(probe: Any, want: bool, node: str = "policy_node", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if latched(probe, node, since=time.monotonic(), timeout=timeout) == want:
            return
    raise AssertionError(f"{node}: estop_latched never became {want}")


def release(probe: Any, pub: Any = None, node: str = "/policy_node") -> None:
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    if pub is not None:
        pub.publish(Bool(data=False))
        time.sleep(0.5)
    answer = probe.call(Trigger, f"{node}/reset_estop", Trigger.Request())
    assert answer.success, answer.message
    wait_latched(probe, False, node.rsplit("/", 1)[-1])


def ros2_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.mark.launch(fixture=policy_alone)
def test_the_readme_command_engages_it(probe: Any):
    """`ros2 topic pub --once /her/estop std_msgs/msg/Bool "{data: true}"`, exactly as typed."""
    assert ROS2, "ros2 is not on PATH"
    wait_latched(probe, False)
    done = run([ROS2, "topic", "pub", "--once", "/her/estop", "std_msgs/msg/Bool", "{data: true}"], timeout=60)
    assert done.returncode == 0, done.stdout
    wait_latched(probe, True)
    refused = run([ROS2, "service", "call", "/policy_node/reset_estop", "std_srvs/srv/Trigger"], timeout=60)
    assert "success=False" in refused.stdout, refused.stdout  # the signal is still true
    done = run([ROS2, "topic", "pub", "--once", "/her/estop", "std_msgs/msg/Bool", "{data: false}"], timeout=60)
    assert done.returncode == 0, done.stdout
    release(probe)


@pytest.mark.launch(fixture=policy_alone)
def test_a_latched_a_default_and_a_best_effort_publisher_each_engage_it(probe: Any):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool

    wait_latched(probe, False)
    for reliability in (ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT):
        for durability in (DurabilityPolicy.TRANSIENT_LOCAL, DurabilityPolicy.VOLATILE):
            qos = QoSProfile(depth=1, reliability=reliability, durability=durability)
            pub = probe.create_publisher(Bool, "/her/estop", qos)
            deadline = time.monotonic() + 10
            while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pub.get_subscription_count() > 0, f"no e-stop subscription matches {qos}"
            for _ in range(3):  # best effort: a stop is repeated, as a PLC bridge repeats it
                pub.publish(Bool(data=True))
                time.sleep(0.05)
            wait_latched(probe, True)
            release(probe, pub)
            probe.destroy_publisher(pub)


@pytest.mark.launch(fixture=policy_alone)
def test_the_estop_service_engages_it(probe: Any):
    from std_srvs.srv import Trigger

    wait_latched(probe, False)
    answer = probe.call(Trigger, "/policy_node/estop", Trigger.Request())
    assert answer.success, answer.message
    wait_latched(probe, True)
    release(probe)


@pytest.mark.launch(fixture=policy_alone)
def test_a_stop_latched_before_the_node_starts_reaches_it(probe: Any):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool

    topic = "/late/her/estop"
    pub = probe.create_publisher(Bool, topic, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    pub.publish(Bool(data=True))
    exe = os.path.join(ament.get_package_prefix("her_policy"), "lib", "her_policy", "policy_node")
    late = subprocess.Popen(
        [exe, "--ros-args", "-r", "__node:=late_policy",
         "-r", f"/her/estop:={topic}", "-p", "fallback:=hold"], env=ros2_env(), start_new_session=True, text=True)
    try:
        wait_latched(probe, True, node="late_policy", timeout=30)
    finally:
        stop(late)
