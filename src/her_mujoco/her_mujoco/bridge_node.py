"""bridge_node: the MuJoCo arm as a drop-in for the arm driver; the work is in her_mujoco.bridge_core."""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from her_interfaces.srv import ResetSim
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from tf2_ros import StaticTransformBroadcaster
from trajectory_msgs.msg import JointTrajectory

from her_goals.base_node import profile, run_node
from her_goals.errors import HerError
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics
from her_goals.rosglue.frames import transform_stamped_msg
from her_goals.rosglue.health import ERROR, Health, log_to
from her_goals.rosglue.params import config_from_parameters, declare_config
from her_mujoco.bridge_core import BridgeConfig, BridgeCore

SENSOR = profile(qos.SENSOR)

class BridgeNode(Node):
    def __init__(self) -> None:
        super().__init__("bridge_node")
        self.types = mc.MessageTypes.from_ros()
        values = declare_config(self, BridgeConfig, self.types)
        commands = {
            name: str(self.declare_parameter(name, default).value)
            for name, default in (
                ("command_topic", topics.FORWARD_COMMANDS),
                ("trajectory_topic", topics.TRAJECTORY_COMMANDS),
                ("gripper_topic", topics.GRIPPER_COMMANDS),
            )
        }
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        name = f"her_mujoco: {self.get_fully_qualified_name()}"
        self.health = Health(name, on_change=log_to(self.get_logger()))
        self.core: BridgeCore | None = None
        try:
            config = config_from_parameters(BridgeConfig, values, where="bridge_node")
            self.core = BridgeCore(config)
        except (HerError, OSError) as exc:
            self.health.report("config", ERROR, f"not running: {exc}")
            self.create_timer(1.0, self.publish_diagnostics)
            return
        self.health = self.core.health
        self.health.name, self.health.on_change = name, log_to(self.get_logger())
        self.joint_pub = self.create_publisher(JointState, config.joint_states_topic, SENSOR)
        self.pose_pub = self.create_publisher(PoseStamped, config.object_pose_topic, SENSOR)
        self.clock_pub = self.create_publisher(Clock, topics.CLOCK, 10) if config.publish_clock else None
        self.tf_static = StaticTransformBroadcaster(self)  # like a robot: the camera's calibrated pose
        if self.core.static_transforms():
            self.tf_static.sendTransform([transform_stamped_msg(self.types, t) for t in self.core.static_transforms()])
        self.create_subscription(Float64MultiArray, commands["command_topic"], self.on_command, 10)
        self.create_subscription(JointTrajectory, commands["trajectory_topic"], self.on_trajectory, 10)
        if commands["gripper_topic"]:
            self.create_subscription(Float64MultiArray, commands["gripper_topic"], self.on_gripper, 10)
        self.create_service(ResetSim, "~/reset", self.on_reset)
        self.create_timer(config.wall_period_s, self.tick)
        self.create_timer(1.0, self.publish_diagnostics)
        self.get_logger().info(
            f"MuJoCo arm ({config.task}) at {config.rate_hz:g} Hz; commands on "
            f"{commands['command_topic']} or {commands['trajectory_topic']}; object pose in {self.core.object_frame}"
        )

    def on_command(self, msg: Float64MultiArray) -> None:
        assert self.core is not None
        self.core.command(mc.float64_multi_array_values(msg))

    def on_trajectory(self, msg: JointTrajectory) -> None:
        assert self.core is not None
        if not msg.points:
            self.core.health.report("command", ERROR, "trajectory rejected: it has no points")
            return
        self.core.trajectory(list(msg.joint_names), list(msg.points[-1].positions))

    def on_gripper(self, msg: Float64MultiArray) -> None:
        assert self.core is not None
        self.core.gripper(mc.float64_multi_array_values(msg))

    def on_reset(self, request: Any, response: Any) -> Any:
        assert self.core is not None
        try:
            pose = self.core.reset(list(request.object_position), list(request.desired_goal), request.seed)
        except HerError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success, response.message = True, "reset"
        response.object_position = [] if pose is None else [float(v) for v in pose[:3]]
        return response

    def tick(self) -> None:
        assert self.core is not None
        measurements = self.core.step()
        if self.clock_pub is not None:
            self.clock_pub.publish(mc.clock_msg(self.types, self.core.clock_ns))
        latency_ns = round(self.core.config.state_latency_s * 1e9)
        for m in measurements:
            # Stamped as a driver stamps: measurement time on the clock the other nodes use.
            stamp = m.stamp_ns if self.clock_pub is not None else self.get_clock().now().nanoseconds - latency_ns
            self.joint_pub.publish(
                mc.joint_state_msg(self.types, m.names, m.position, m.velocity, m.effort, stamp)
            )
            if m.object_pose is not None:
                pose, frame = self.core.published_pose(m.object_pose)
                self.pose_pub.publish(mc.pose_stamped_msg(self.types, pose, stamp, frame))

    def publish_diagnostics(self) -> None:
        values = self.core.status_values() if self.core is not None else {}
        stamp = self.get_clock().now().nanoseconds
        self.diag_pub.publish(mc.diagnostic_array_msg(self.types, stamp, [self.health.diagnostic(values)]))


def main(args: list[str] | None = None) -> None:
    run_node(BridgeNode, args)


if __name__ == "__main__":
    main()
