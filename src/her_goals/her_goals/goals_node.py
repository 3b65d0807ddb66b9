"""goals_node: desired and achieved goals and episode events; the work is in her_goals.goals_core."""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from her_interfaces.msg import EpisodeEvent, Goal, Step
from her_interfaces.srv import ResetSim, StartEpisode
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from her_goals.base_node import TfLookup, profile, run_node
from her_goals.errors import HerError
from her_goals.goals_core import GoalsConfig, GoalsCore
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics
from her_goals.rosglue.health import ERROR, Health, log_to
from her_goals.rosglue.params import config_from_parameters, declare_config

# Latched (reliable + transient local): a late subscriber still gets the last goal / e-stop.
LATCHED = profile(qos.LATCHED)
RELIABLE = profile(qos.RELIABLE)
SENSOR = profile(qos.SENSOR)


class GoalsNode(Node):
    def __init__(self) -> None:
        super().__init__("goals_node")
        self.types = mc.MessageTypes.from_ros()
        values = declare_config(self, GoalsConfig, self.types)
        self.reset_service = str(self.declare_parameter("reset_service", "").value)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        name = f"her_goals: {self.get_fully_qualified_name()}"
        self.health = Health(name, on_change=log_to(self.get_logger()))
        self.core: GoalsCore | None = None
        try:
            self.core = GoalsCore(config_from_parameters(GoalsConfig, values, where="goals_node"))
        except (HerError, OSError) as exc:  # a bad parameter: say so, publish it, do nothing else
            self.health.report("config", ERROR, f"not running: {exc}")
            self.create_timer(1.0, self.publish_diagnostics)
            return
        self.health = self.core.health
        self.health.name, self.health.on_change = name, log_to(self.get_logger())
        config = self.core.config
        self.desired_pub = self.create_publisher(Goal, topics.DESIRED_GOAL, LATCHED)
        self.achieved_pub = self.create_publisher(Goal, topics.ACHIEVED_GOAL, RELIABLE)
        self.event_pub = self.create_publisher(EpisodeEvent, topics.EPISODE, RELIABLE)
        self.tf = TfLookup(self)  # an object pose in a camera frame is transformed to the goal frame
        self.create_subscription(JointState, config.joint_states_topic, self.core.on_joint_state, SENSOR)
        core = self.core
        self.create_subscription(PoseStamped, config.object_pose_topic, lambda m: core.on_object_pose(m, self.tf), SENSOR)
        self.create_subscription(Step, topics.STEP, self.on_step, RELIABLE)
        self.create_service(StartEpisode, "~/start_episode", self.on_start)
        self.create_service(Trigger, "~/abort_episode", self.on_abort)
        self.reset_client = self.create_client(ResetSim, self.reset_service) if self.reset_service else None
        self.create_timer(1.0 / self.core.config.achieved_rate_hz, self.tick)
        self.create_timer(1.0, self.publish_diagnostics)
        self.get_logger().info(f"task {self.core.config.task}: goal space {self.core.space.spec()}")

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def publish_event(self, event: Any) -> None:
        if event is None or self.core is None:
            return
        data = self.core.event_data(event)
        if data.event == EpisodeEvent.START:
            goal = mc.goal_msg(self.types, self.core.space, data.desired_goal, data.stamp_ns, data.episode_id)
            self.desired_pub.publish(goal)
        self.event_pub.publish(mc.episode_event_msg(self.types, data))
        self.get_logger().info(self.core.describe(data))

    def on_step(self, msg: Step) -> None:
        assert self.core is not None
        self.publish_event(self.core.on_step(mc.step_data(msg), self.now_ns()))

    def begin(self, goal: Any, reason: str) -> None:
        """Start now, or after the simulator reset when a reset service is configured."""
        assert self.core is not None
        if self.reset_client is None:
            self.publish_event(self.core.start(goal, self.now_ns(), reason))
        elif not self.reset_client.service_is_ready():
            self.core.start_failed(f"reset service {self.reset_service} is not available", self.now_ns())
        else:
            self.core.starting()
            request = ResetSim.Request(desired_goal=[float(v) for v in goal], seed=-1)
            future = self.reset_client.call_async(request)
            future.add_done_callback(lambda f: self.after_reset(f.result(), goal, reason))

    def after_reset(self, result: Any, goal: Any, reason: str) -> None:
        assert self.core is not None  # (set: begin() ran)
        if result is None or not result.success:
            why = "no response" if result is None else result.message
            self.core.start_failed(f"simulator reset failed: {why}", self.now_ns())
        else:
            self.publish_event(self.core.start(goal, self.now_ns(), reason))

    def on_start(self, request: Any, response: Any) -> Any:
        assert self.core is not None
        try:
            goal = self.core.choose_goal(list(request.desired_goal), request.split)
        except HerError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.episode_id, response.desired_goal = self.core.next_episode_id, [float(v) for v in goal]
        response.success, response.message = True, "starting"
        self.begin(goal, "operator")
        return response

    def on_abort(self, request: Any, response: Any) -> Any:
        assert self.core is not None
        event = self.core.abort("operator", self.now_ns())
        self.publish_event(event)
        response.success, response.message = event is not None, "aborted" if event else "no episode is running"
        return response

    def tick(self) -> None:
        assert self.core is not None
        now = self.now_ns()
        episode_topic = self.event_pub.topic_name  # resolved in this node's namespace
        event, goal = self.core.tick(now, lambda: {i.node_name for i in self.get_subscriptions_info_by_topic(episode_topic)})
        self.publish_event(event)
        if goal is not None:
            self.begin(goal, "auto")
        achieved = self.core.achieved(now)
        if achieved is not None:  # episode_id 0 between episodes
            self.achieved_pub.publish(mc.goal_msg(self.types, self.core.space, *achieved, self.core.book.episode_id or 0))

    def publish_diagnostics(self) -> None:
        status = self.health.diagnostic(self.core.status_values() if self.core is not None else {})
        self.diag_pub.publish(mc.diagnostic_array_msg(self.types, self.now_ns(), [status]))


def main(args: list[str] | None = None) -> None:
    run_node(GoalsNode, args)


if __name__ == "__main__":
    main()
