"""A test-side rclpy node for the launch tests: records what the stack publishes, calls its services.

Imported by the tests in this directory only when rclpy is present (they skip otherwise).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from her_interfaces.msg import EpisodeEvent, Goal, Step
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


class Probe(Node):
    """Subscribes to every stack topic and keeps (receive time, message) per topic."""

    def __init__(self) -> None:
        super().__init__("her_test_probe")
        self.lock = threading.Lock()
        self.received: dict[str, list[tuple[float, Any]]] = {}
        for topic, cls, qos in (
            ("/her/desired_goal", Goal, LATCHED),
            ("/her/achieved_goal", Goal, RELIABLE),
            ("/her/episode", EpisodeEvent, RELIABLE),
            ("/her/step", Step, RELIABLE),
            ("/diagnostics", DiagnosticArray, 10),
            ("/joint_states", JointState, qos_profile_sensor_data),
            ("/forward_position_controller/commands", Float64MultiArray, 10),
        ):
            self.create_subscription(cls, topic, lambda msg, t=topic: self._keep(t, msg), qos)
        # As `ros2 topic pub` publishes by default: reliable, volatile.
        self.estop_pub = self.create_publisher(Bool, "/her/estop", 10)
        self.spinner = MultiThreadedExecutor()
        self.spinner.add_node(self)
        self.thread = threading.Thread(target=self.spinner.spin, daemon=True)
        self.thread.start()

    def _keep(self, topic: str, msg: Any) -> None:
        with self.lock:
            self.received.setdefault(topic, []).append((time.monotonic(), msg))

    def messages(self, topic: str, since: float = 0.0) -> list[Any]:
        with self.lock:
            return [m for t, m in self.received.get(topic, []) if t >= since]

    def wait_for(self, topic: str, check: Callable[[Any], bool] = lambda m: True, *, timeout: float = 30.0,
                 since: float = 0.0) -> Any:
        """The first message on ``topic`` (received after ``since``) that passes ``check``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.messages(topic, since):
                if check(msg):
                    return msg
            time.sleep(0.05)
        raise AssertionError(f"nothing on {topic} passed the check within {timeout} s")

    def listen(self, topic: str, cls: Any, qos: Any) -> None:
        """Also keep the messages of ``topic`` (e.g. a namespaced stack's)."""
        self.create_subscription(cls, topic, lambda msg, t=topic: self._keep(t, msg), qos)

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.done(), f"service {name} did not answer within {timeout} s"
        return future.result()

    def close(self) -> None:
        self.spinner.shutdown()
        self.destroy_node()


def start_probe() -> Probe:
    if not rclpy.ok():
        rclpy.init()
    return Probe()


def lifecycle(probe: Probe, node: str, transition: str = "") -> Any:
    """``ros2 lifecycle get NODE`` (the state label) or ``... set NODE TRANSITION`` (success)."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    if not transition:
        return probe.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label
    request = ChangeState.Request(transition=Transition(label=transition))
    return probe.call(ChangeState, f"{node}/change_state", request).success
