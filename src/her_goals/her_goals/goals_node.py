"""goals_node: desired and achieved goals and episode events; the work is in her_goals.goals_core."""

from __future__ import annotations

from typing import Any

from her_interfaces.msg import EpisodeEvent, Goal, Step
from her_interfaces.srv import ResetSim, StartEpisode
from rclpy.node import Node
from std_srvs.srv import Trigger

from her_goals.base_node import TfLookup, profile, publish_diagnostics, run_node, start_core
from her_goals.goals_core import GoalsConfig, GoalsCore
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics

# Latched (reliable + transient local): a late subscriber still gets the last goal / e-stop.
LATCHED = profile(qos.LATCHED)
RELIABLE = profile(qos.RELIABLE)
SENSOR = profile(qos.SENSOR)


class GoalsNode(Node):
    def __init__(self) -> None:
        super().__init__("goals_node")
        self.types = mc.MessageTypes.from_ros()
        self.reset_service = str(self.declare_parameter("reset_service", "").value)
        core = start_core(self, self.types, GoalsConfig, GoalsCore, where="goals_node", package="her_goals")
        if core is None:
            return  # a bad parameter: said, published on /diagnostics, nothing else done
        self.core, self.health = core, core.health
        self.pubs = {"desired": self.create_publisher(Goal, topics.DESIRED_GOAL, LATCHED),
                     "achieved": self.create_publisher(Goal, topics.ACHIEVED_GOAL, RELIABLE),
                     "event": self.create_publisher(EpisodeEvent, topics.EPISODE, RELIABLE)}
        self.tf = TfLookup(self)  # an object pose in a camera frame is transformed to the goal frame
        self.create_subscription(self.types[mc.JOINT_STATE], core.config.joint_states_topic, core.on_joint_state, SENSOR)
        self.create_subscription(self.types[mc.POSE_STAMPED], core.config.object_pose_topic,
                                 lambda m: core.on_object_pose(m, self.tf), SENSOR)
        self.create_subscription(Step, topics.STEP, lambda m: self.publish_event(core.on_step(mc.step_data(m), self.now_ns())),
                                 RELIABLE)
        self.create_service(StartEpisode, "~/start_episode", self.on_start)
        self.create_service(Trigger, "~/abort_episode", self.on_abort)
        self.reset_client = self.create_client(ResetSim, self.reset_service) if self.reset_service else None
        self.create_timer(1.0 / core.config.achieved_rate_hz, self.tick)
        publish_diagnostics(self, self.types, 1.0, lambda: self.health.diagnostic(core.status_values()))
        self.get_logger().info(f"task {core.config.task}: goal space {core.space.spec()}")

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def publish_event(self, event: Any) -> None:
        messages, lines = self.core.event_messages(self.types, event)
        for key, msg in messages:
            self.pubs[key].publish(msg)
        for line in lines:
            self.get_logger().info(line)

    def begin(self, goal: Any, reason: str) -> None:
        """Start now, or after the simulator reset when a reset service is configured."""
        if self.reset_client is None:
            self.publish_event(self.core.start(goal, self.now_ns(), reason))
        elif not self.reset_client.service_is_ready():
            self.core.start_failed(f"reset service {self.reset_service} is not available", self.now_ns())
        else:
            self.core.starting()
            future = self.reset_client.call_async(ResetSim.Request(desired_goal=[float(v) for v in goal], seed=-1))
            future.add_done_callback(
                lambda f: self.publish_event(self.core.after_reset(f.result(), goal, self.now_ns(), reason)))

    def on_start(self, request: Any, response: Any) -> Any:
        goal, reply = self.core.start_request(request.desired_goal, request.split)
        response.success, response.message = reply.success, reply.message
        response.episode_id, response.desired_goal = reply.episode_id, list(reply.desired_goal)
        if goal is not None:
            self.begin(goal, "operator")
        return response

    def on_abort(self, request: Any, response: Any) -> Any:
        event, response.success, response.message = self.core.abort_request(self.now_ns())
        self.publish_event(event)
        return response

    def tick(self) -> None:
        now, episode_topic = self.now_ns(), self.pubs["event"].topic_name  # resolved in this node's namespace
        event, goal = self.core.tick(now, lambda: {i.node_name for i in self.get_subscriptions_info_by_topic(episode_topic)})
        self.publish_event(event)
        if goal is not None:
            self.begin(goal, "auto")
        achieved = self.core.achieved_msg(self.types, now)
        if achieved is not None:
            self.pubs["achieved"].publish(achieved)


def main(args: list[str] | None = None) -> None:
    run_node(GoalsNode, args)


if __name__ == "__main__":
    main()
