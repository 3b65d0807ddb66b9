"""recorder_node: HER topics and raw state into episode bags; the work is in her_recorder.recorder_core."""

from __future__ import annotations

from typing import Any

from her_interfaces.msg import EpisodeEvent, Step
from rclpy.node import Node
from rclpy.task import Future
from std_srvs.srv import Trigger

from her_goals.base_node import profile, publish_diagnostics, run_node, start_core
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics
from her_recorder.interfaces import TOPIC_TYPES
from her_recorder.recorder_core import RecorderConfig, RecorderCore

RELIABLE = profile(qos.RECORDER)
SENSOR = profile(qos.SENSOR)


def opened(config: RecorderConfig) -> RecorderCore:
    """The recorder core of ``config`` with its bag open."""
    core = RecorderCore(config)
    core.open()
    return core


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder_node")
        self.types = mc.MessageTypes.from_ros()
        self.core = core = start_core(self, self.types, RecorderConfig, opened, where="recorder_node",
                                      package="her_recorder", refused="not recording")
        if core is None:
            return  # a bad parameter or an unusable bag_dir: said, published on /diagnostics, nothing else done
        self.health, config = core.health, core.config
        core.on_written = self.get_logger().info  # one line per episode that reaches the bag
        self.finished = Future()  # done when num_episodes are written: run_node closes the bag, exits
        self.create_subscription(EpisodeEvent, topics.EPISODE,
                                 lambda m: core.on_event(mc.episode_event_data(m), self.now_ns()), RELIABLE)
        self.create_subscription(Step, topics.STEP, lambda m: core.on_step(mc.step_data(m), self.now_ns()), RELIABLE)
        for topic in config.raw_topics:  # the bag's topic names; subscribed to as the config says
            msgtype = TOPIC_TYPES[topic]
            self.create_subscription(
                self.types[msgtype], config.subscription(topic),
                lambda data, t=topic, m=msgtype: core.on_raw(t, m, data, self.now_ns()), SENSOR, raw=True,
            )
        for name, handler in (("pause", core.pause), ("resume", core.resume), ("discard", core.discard)):
            self.create_service(Trigger, f"~/{name}", lambda req, res, h=handler: self.on_service(h, res))
        self.create_timer(0.1, self.tick)
        publish_diagnostics(self, self.types, 1.0, self.diagnostic)
        self.get_logger().info(f"recording {config.task} episodes into {core.recorder.path}")

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def diagnostic(self) -> mc.Diagnostic:
        return self.health.diagnostic(self.core.status_values() if self.core is not None else {})

    def on_service(self, handler: Any, response: Any) -> Any:
        response.success, response.message = handler()
        self.get_logger().info(response.message)
        return response

    def tick(self) -> None:
        assert self.core is not None
        self.core.tick(self.now_ns())
        if self.core.done and not self.finished.done():
            self.get_logger().info(f"num_episodes {self.core.config.num_episodes} written: closing the bag, exiting")
            self.finished.set_result(True)

    def close(self) -> None:
        """Abort an open episode and close the bag (metadata.yaml written)."""
        if self.core is not None:
            self.core.close()
            self.get_logger().info(f"bags closed in {self.core.recorder.path}")
            self.core = None


def main(args: list[str] | None = None) -> None:
    # SIGINT/SIGTERM end here: the bag is closed cleanly.
    run_node(RecorderNode, args, close=lambda node: node.close())


if __name__ == "__main__":
    main()
