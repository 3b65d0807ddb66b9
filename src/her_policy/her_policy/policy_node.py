"""policy_node: the control loop at a fixed rate; the work is in her_policy.deploy.policy_core."""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from her_interfaces.msg import EpisodeEvent, Step
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from her_goals.base_node import profile, run_node, subscribe_any_qos
from her_goals.errors import HerError
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos
from her_goals.rosglue.health import ERROR, Health, log_to
from her_goals.rosglue.params import config_from_parameters, declare_config
from her_policy.deploy.policy_core import PolicyConfig, PolicyCore

# Latched (reliable + transient local): a late subscriber still gets the last goal / e-stop.
LATCHED = profile(qos.LATCHED)
RELIABLE = profile(qos.RELIABLE)
SENSOR = profile(qos.SENSOR)


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy_node")
        self.types = mc.MessageTypes.from_ros()
        values = declare_config(self, PolicyConfig, self.types)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.health = Health("her_policy: policy_node", on_change=log_to(self.get_logger()))
        self.core: PolicyCore | None = None
        try:
            config = config_from_parameters(PolicyConfig, values, where="policy_node")
            self.core = PolicyCore(config)
        except (HerError, OSError) as exc:  # bad parameters or config files: report, send nothing
            self.health.report("config", ERROR, f"not running, no command is sent: {exc}")
            self.create_timer(1.0, self.publish_diagnostics)
            return
        self.health = self.core.health
        self.health.name = f"her_policy: {self.get_fully_qualified_name()}"
        self.health.on_change = log = log_to(self.get_logger())
        for level, message in list(self.health.problems.values()):
            log(level, message)  # reported while loading (e.g. an artefact that does not fit)
        self.create_subscription(EpisodeEvent, "/her/episode", self.on_event, RELIABLE)  # first: goals_node waits for it
        self.trajectory = config.command_interface == "trajectory"
        msg_type = JointTrajectory if self.trajectory else Float64MultiArray
        self.command_pub = self.create_publisher(msg_type, config.topic, 10)
        self.gripper_pub = (
            self.create_publisher(Float64MultiArray, config.gripper_topic, 10) if config.gripper_topic else None
        )
        self.step_pub = self.create_publisher(Step, "/her/step", RELIABLE)
        sensor = SENSOR
        self.create_subscription(JointState, "/joint_states", self.core.on_joint_state, sensor)
        self.create_subscription(PoseStamped, "/object_pose", self.core.on_object_pose, sensor)
        # Any publisher QoS engages the stop (her_goals.rosglue.qos.ESTOP_SUBSCRIPTIONS); so does ~/estop.
        subscribe_any_qos(self, Bool, "/her/estop", self.on_estop, qos.ESTOP_SUBSCRIPTIONS)
        self.create_service(Trigger, "~/estop", self.on_estop_service)
        self.create_service(Trigger, "~/reset_estop", self.on_reset_estop)
        self.create_timer(self.core.period_s, self.tick)
        self.create_timer(1.0 / config.diagnostics_rate_hz, self.publish_diagnostics)
        self.get_logger().info(
            f"task {config.task}, actor {self.core.actor_kind}, {1.0 / self.core.period_s:g} Hz, "
            f"commands on {config.topic} ({config.command_interface})"
        )

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_event(self, msg: EpisodeEvent) -> None:
        assert self.core is not None
        self.core.on_event(mc.episode_event_data(msg))

    def on_estop(self, msg: Bool) -> None:
        assert self.core is not None
        if msg.data and not self.core.estop_signal:
            self.get_logger().error("e-stop: holding the arm until ~/reset_estop")
        self.core.on_estop(msg.data)

    def on_estop_service(self, request: Any, response: Any) -> Any:
        assert self.core is not None
        response.success, response.message = self.core.engage_estop()
        self.get_logger().error(f"e-stop: {response.message}")
        return response

    def on_reset_estop(self, request: Any, response: Any) -> Any:
        assert self.core is not None
        response.success, response.message = self.core.reset_estop()
        self.get_logger().info(f"reset_estop: {response.message}")
        return response

    def tick(self) -> None:
        assert self.core is not None
        out = self.core.tick(self.now_ns())
        if out.command is not None:
            if self.trajectory:
                msg = mc.joint_trajectory_msg(self.types, self.core.joint_names, out.command, self.core.period_s)
            else:
                msg = mc.float64_multi_array_msg(self.types, out.command)
            self.command_pub.publish(msg)
        if out.gripper_m is not None and self.gripper_pub is not None:
            self.gripper_pub.publish(mc.float64_multi_array_msg(self.types, [out.gripper_m]))
        for step in out.steps:
            self.step_pub.publish(mc.step_msg(self.types, step))

    def publish_diagnostics(self) -> None:
        status = self.health.diagnostic()
        if self.core is not None:
            status = self.health.diagnostic(self.core.status_values())
            status = status._replace(level=self.core.diagnostic_level())
            if self.core.last is not None and self.core.last.details:
                status = status._replace(message=f"{status.message}; {'; '.join(self.core.last.details)}")
        self.diag_pub.publish(mc.diagnostic_array_msg(self.types, self.now_ns(), [status]))


def main(args: list[str] | None = None) -> None:
    run_node(PolicyNode, args)


if __name__ == "__main__":
    main()
