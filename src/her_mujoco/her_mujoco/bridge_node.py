"""bridge_node: the MuJoCo arm as a drop-in for the arm driver; the work is in her_mujoco.bridge_core."""

from __future__ import annotations

from typing import Any

from geometry_msgs.msg import PoseStamped
from her_interfaces.srv import ResetSim
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from tf2_ros import StaticTransformBroadcaster
from trajectory_msgs.msg import JointTrajectory

from her_goals.base_node import profile, publish_diagnostics, run_node, start_core
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics
from her_goals.rosglue.frames import transform_stamped_msg
from her_mujoco.bridge_core import BridgeConfig, BridgeCore

SENSOR = profile(qos.SENSOR)
DEFAULT = profile(qos.DEFAULT)


class BridgeNode(Node):
    def __init__(self) -> None:
        super().__init__("bridge_node")
        self.types = mc.MessageTypes.from_ros()
        commands = {
            name: str(self.declare_parameter(name, default).value)
            for name, default in (
                ("command_topic", topics.FORWARD_COMMANDS),
                ("trajectory_topic", topics.TRAJECTORY_COMMANDS),
                ("gripper_topic", topics.GRIPPER_COMMANDS),
            )
        }
        self.core = core = start_core(self, self.types, BridgeConfig, BridgeCore, where="bridge_node", package="her_mujoco")
        if core is None:
            return  # a bad parameter: said, published on /diagnostics, nothing else done
        self.health, config = core.health, core.config
        self.pubs = {"joint_states": self.create_publisher(JointState, config.joint_states_topic, SENSOR),
                     "object_pose": self.create_publisher(PoseStamped, config.object_pose_topic, SENSOR)}
        if config.publish_clock:
            self.pubs["clock"] = self.create_publisher(Clock, topics.CLOCK, DEFAULT)
        self.tf_static = StaticTransformBroadcaster(self)  # like a robot: the camera's calibrated pose
        if core.static_transforms():
            self.tf_static.sendTransform([transform_stamped_msg(self.types, t) for t in core.static_transforms()])
        self.create_subscription(Float64MultiArray, commands["command_topic"],
                                 lambda m: core.command(mc.float64_multi_array_values(m)), DEFAULT)
        self.create_subscription(JointTrajectory, commands["trajectory_topic"], core.trajectory_msg, DEFAULT)
        if commands["gripper_topic"]:
            self.create_subscription(Float64MultiArray, commands["gripper_topic"],
                                     lambda m: core.gripper(mc.float64_multi_array_values(m)), DEFAULT)
        self.create_service(ResetSim, "~/reset", self.on_reset)
        self.create_timer(config.wall_period_s, self.tick)
        publish_diagnostics(self, self.types, 1.0, lambda: self.health.diagnostic(core.status_values()))
        self.get_logger().info(
            f"MuJoCo arm ({config.task}) at {config.rate_hz:g} Hz; commands on "
            f"{commands['command_topic']} or {commands['trajectory_topic']}; object pose in {core.object_frame}"
        )

    def on_reset(self, request: Any, response: Any) -> Any:
        assert self.core is not None
        response.success, response.message, response.object_position = self.core.reset_request(
            request.object_position, request.desired_goal, request.seed)
        return response

    def tick(self) -> None:
        assert self.core is not None
        measurements = self.core.step()
        for key, msg in self.core.messages(self.types, measurements, self.get_clock().now().nanoseconds):
            self.pubs[key].publish(msg)


def main(args: list[str] | None = None) -> None:
    run_node(BridgeNode, args)


if __name__ == "__main__":
    main()
