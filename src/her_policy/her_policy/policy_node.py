"""policy_node: a managed (lifecycle) node running the control loop; the work is in her_policy.deploy.

What each transition (``ros2 lifecycle set /policy_node configure|activate|...``) does, what a
tick publishes and what is logged is decided in :mod:`her_policy.deploy.managed`; the launch
files drive configure and activate (``autostart:=true``).
"""

from __future__ import annotations

from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_srvs.srv import Trigger

from her_goals.base_node import TfLookup, profile, publish_diagnostics, run_node, subscribe_any_qos
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics
from her_goals.rosglue.health import log_to
from her_goals.rosglue.params import current_values, declare_config
from her_policy.deploy.managed import Answer, Log, ManagedPolicy
from her_policy.deploy.policy_core import PolicyConfig

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class PolicyNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("policy_node")
        self.types = t = mc.MessageTypes.from_ros()
        values = declare_config(self, PolicyConfig, t)
        self.managed = m = ManagedPolicy(f"her_policy: {self.get_fully_qualified_name()}")
        self.log = m.health.on_change = log_to(self.get_logger())
        publish_diagnostics(self, t, m.diagnostics_period_s(values), lambda: m.diagnostic(m.state_label))
        # Inputs live in every state: the state for configure's checks and the hold, and the e-stop.
        names, sensor, tf = m.input_topics(values, m.health), profile(qos.SENSOR), TfLookup(self)
        self.create_subscription(t[mc.JOINT_STATE], names["joint_states_topic"], m.on_joint_state, sensor)
        self.create_subscription(t[mc.POSE_STAMPED], names["object_pose_topic"],
                                 lambda msg: m.on_object_pose(msg, tf), sensor)
        # Any publisher QoS engages the stop (her_goals.rosglue.qos.ESTOP_SUBSCRIPTIONS); so does ~/estop.
        subscribe_any_qos(self, t[mc.BOOL], names["estop_topic"], lambda msg: self.emit([], m.estop_topic(msg.data)),
                          qos.ESTOP_SUBSCRIPTIONS)
        self.create_service(Trigger, "~/estop", lambda req, res: self.answer(res, m.estop_service()))
        self.create_service(Trigger, "~/reset_estop", lambda req, res: self.answer(res, m.reset_estop_service()))
        self.episode_sub: Any = None
        self.pubs: dict[str, Any] = {}  # publishers of a configured node, by Publication.key
        self.tick_timer: Any = None

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def emit(self, messages: list[tuple[str, Any]], logs: list[Log]) -> None:
        for key, msg in messages:
            self.pubs[key].publish(msg)
        for line in logs:
            self.log(*line)

    def answer(self, response: Any, answer: Answer) -> Any:
        response.success, response.message = answer.success, answer.message
        self.log(*answer.log)
        return response

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        ok, message = self.managed.configure(current_values(self, PolicyConfig))
        if not ok or self.managed.core is None:
            return FAILURE  # logged by the health report; the node stays unconfigured
        self.get_logger().info(message)
        self.pubs = {p.key: self.create_lifecycle_publisher(self.types[p.type_name], p.topic, profile(p.qos))
                     for p in self.managed.publications()}
        self.tick_timer = self.create_timer(self.managed.core.period_s, self.tick)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ok, message = self.managed.activate()
        if not ok:
            return FAILURE
        self.get_logger().info(message)
        # Listening to the episode topic is what lets the goals node start episodes (wait_for_nodes).
        self.episode_sub = self.create_subscription(self.types[mc.EPISODE_EVENT], topics.EPISODE,
                                                    self.managed.on_episode_event, profile(qos.RELIABLE))
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
        self.log(*self.managed.transition_error(state.label))
        self.stop_commanding()
        self.release()
        return SUCCESS

    def stop_commanding(self) -> None:
        """Stop listening to episodes; if active, hold the arm (publishers still active) and say so."""
        if self.episode_sub is not None:
            self.destroy_subscription(self.episode_sub)
            self.episode_sub = None
        self.emit(*self.managed.stop_commanding(self.types, self.now_ns()))

    def release(self) -> None:
        for pub in self.pubs.values():
            self.destroy_lifecycle_publisher(pub)
        if self.tick_timer is not None:
            self.destroy_timer(self.tick_timer)
        self.pubs, self.tick_timer = {}, None
        self.managed.cleanup()

    def tick(self) -> None:
        try:
            self.emit(self.managed.messages(self.types, self.managed.tick(self.now_ns())), [])
        except Exception as exc:  # a bug or broken input: stop commanding, visibly, recoverably
            self.get_logger().error(self.managed.fault("tick", exc))
            self.trigger_deactivate()


def main(args: list[str] | None = None) -> None:
    run_node(PolicyNode, args)


if __name__ == "__main__":
    main()
