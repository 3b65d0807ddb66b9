"""policy_node: a managed (lifecycle) node running the control loop; the work is in her_policy.deploy.

Transitions (``ros2 lifecycle set /policy_node configure|activate|deactivate|cleanup``) do
what :mod:`her_policy.deploy.managed` says; the launch files drive configure and activate
(``autostart:=true``). The software e-stop (topic, any QoS, and ``~/estop``) and the
state inputs work in every state.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from her_interfaces.msg import EpisodeEvent, Step
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from her_goals.base_node import TfLookup, profile, run_node, subscribe_any_qos
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics
from her_goals.rosglue.health import log_to
from her_goals.rosglue.params import current_values, declare_config
from her_policy.deploy.managed import ManagedPolicy
from her_policy.deploy.policy_core import PolicyConfig

RELIABLE = profile(qos.RELIABLE)
SENSOR = profile(qos.SENSOR)
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class PolicyNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("policy_node")
        self.types = mc.MessageTypes.from_ros()
        values = declare_config(self, PolicyConfig, self.types)
        self.managed = ManagedPolicy(f"her_policy: {self.get_fully_qualified_name()}")
        self.managed.health.on_change = log_to(self.get_logger())
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        # Inputs live in every state: the state for configure's checks and the hold, and the e-stop.
        names = self.managed.input_topics(values, self.managed.health)
        self.tf = TfLookup(self)
        self.create_subscription(JointState, names["joint_states_topic"], self.managed.on_joint_state, SENSOR)
        self.create_subscription(PoseStamped, names["object_pose_topic"],
                                 lambda m: self.managed.on_object_pose(m, self.tf), SENSOR)
        # Any publisher QoS engages the stop (her_goals.rosglue.qos.ESTOP_SUBSCRIPTIONS); so does ~/estop.
        subscribe_any_qos(self, Bool, names["estop_topic"], self.on_estop, qos.ESTOP_SUBSCRIPTIONS)
        self.create_service(Trigger, "~/estop", self.on_estop_service)
        self.create_service(Trigger, "~/reset_estop", lambda req, res: self.answer(res, *self.managed.reset_estop()))
        rate = values["diagnostics_rate_hz"] if isinstance(values["diagnostics_rate_hz"], float) else 2.0
        self.create_timer(1.0 / max(rate, 0.1), self.publish_diagnostics)
        self.episode_sub: Any = None
        self.entities: list[Any] = []  # publishers and timer of a configured node

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_estop(self, msg: Bool) -> None:
        if self.managed.on_estop(msg.data):
            self.get_logger().error("e-stop: holding the arm until ~/reset_estop")

    def on_estop_service(self, request: Any, response: Any) -> Any:
        response.success, response.message = self.managed.engage_estop()
        self.get_logger().error(f"e-stop: {response.message}")
        return response

    def answer(self, response: Any, success: bool, message: str) -> Any:
        response.success, response.message = success, message
        if success:  # one call site per severity (rclpy's logger insists)
            self.get_logger().info(message)
        else:
            self.get_logger().warning(message)
        return response

    # -- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        ok, message = self.managed.configure(current_values(self, PolicyConfig))
        if not ok:
            return FAILURE  # logged by the health report; the node stays unconfigured
        self.get_logger().info(message)
        core = self.managed.core
        assert core is not None
        self.trajectory = core.config.command_interface == "trajectory"
        self.command_pub = self.create_lifecycle_publisher(
            JointTrajectory if self.trajectory else Float64MultiArray, core.config.topic, 10)
        self.gripper_pub = (self.create_lifecycle_publisher(Float64MultiArray, core.config.gripper_topic, 10)
                            if core.config.gripper_topic else None)
        self.step_pub = self.create_lifecycle_publisher(Step, topics.STEP, RELIABLE)
        self.entities = [p for p in (self.command_pub, self.gripper_pub, self.step_pub) if p is not None]
        self.tick_timer = self.create_timer(core.period_s, self.tick)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ok, message = self.managed.activate()
        if not ok:
            return FAILURE
        self.get_logger().info(message)
        # Listening to the episode topic is what lets the goals node start episodes (wait_for_nodes).
        self.episode_sub = self.create_subscription(EpisodeEvent, topics.EPISODE, self.on_event, RELIABLE)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_commanding()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_commanding()
        self.release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while leaving {state.label}: back to unconfigured")
        self.stop_commanding()
        self.release()
        return SUCCESS

    def stop_commanding(self) -> None:
        """Hold at the measured position (one last command), stop listening to episodes."""
        if self.episode_sub is not None:
            self.destroy_subscription(self.episode_sub)
            self.episode_sub = None
        if self.managed.active:
            out = self.managed.deactivate(self.now_ns())
            self.publish(out.command, None, [])
            self.get_logger().info("inactive: holding at the measured position, no further command")

    def release(self) -> None:
        for pub in self.entities:
            self.destroy_lifecycle_publisher(pub)
        if self.entities:
            self.destroy_timer(self.tick_timer)
        self.entities = []
        self.managed.cleanup()

    # -- running -----------------------------------------------------------------------------
    def on_event(self, msg: EpisodeEvent) -> None:
        if self.managed.core is not None:
            self.managed.core.on_event(mc.episode_event_data(msg))

    def tick(self) -> None:
        try:
            out = self.managed.tick(self.now_ns())
            self.publish(out.command, out.gripper_m, out.steps)
        except Exception as exc:  # a bug or broken input: stop commanding, visibly, recoverably
            self.get_logger().error(self.managed.fault("tick", exc))
            self.trigger_deactivate()

    def publish(self, command: Any, gripper_m: float | None, steps: list[Any]) -> None:
        core = self.managed.core
        if core is None:
            return
        if command is not None:
            self.command_pub.publish(
                mc.joint_trajectory_msg(self.types, core.joint_names, command, core.period_s) if self.trajectory
                else mc.float64_multi_array_msg(self.types, command))
        if gripper_m is not None and self.gripper_pub is not None:
            self.gripper_pub.publish(mc.float64_multi_array_msg(self.types, [gripper_m]))
        for step in steps:
            self.step_pub.publish(mc.step_msg(self.types, step))

    def publish_diagnostics(self) -> None:
        status = self.managed.diagnostic(self.managed.state_label)
        self.diag_pub.publish(mc.diagnostic_array_msg(self.types, self.now_ns(), [status]))


def main(args: list[str] | None = None) -> None:
    run_node(PolicyNode, args)


if __name__ == "__main__":
    main()
