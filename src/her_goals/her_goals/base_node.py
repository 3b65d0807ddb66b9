"""What every HER-ROS node shares with rclpy: QoS profiles and one ``main()``.

Only ``*_node.py`` files import rclpy (ARCHITECTURE.md, rule 1); this one holds the
pieces the four nodes would otherwise repeat.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from her_goals.rosglue.qos import QosSpec

N = TypeVar("N", bound=Node)


def profile(spec: QosSpec) -> QoSProfile:
    """The rclpy QoS profile of a topic's :class:`QosSpec`."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if spec.latched else DurabilityPolicy.VOLATILE,
    )


def subscribe_any_qos(
    node: Node, msg_type: Any, topic: str, callback: Callable[[Any], None], specs: tuple[QosSpec, ...]
) -> list[Any]:
    """One subscription per QoS in ``specs``, same topic and callback (``qos.ESTOP_SUBSCRIPTIONS``)."""
    return [node.create_subscription(msg_type, topic, callback, profile(spec)) for spec in specs]


def run_node(
    factory: Callable[[], N], args: list[str] | None = None, *, close: Callable[[N], Any] | None = None
) -> None:
    """Init rclpy, spin the node, and clean up on Ctrl-C, SIGTERM or an external shutdown.

    A node with a ``finished`` future (the recorder after ``num_episodes``) is spun until it
    completes, then cleaned up the same way: the process exits 0. ``close(node)`` runs before
    the node is destroyed (the recorder closes its bag there), with a second Ctrl-C ignored so
    it cannot cut the cleanup short.
    """
    rclpy.init(args=args)
    node: N | None = None
    try:
        node = factory()
        finished = getattr(node, "finished", None)
        if finished is None:
            rclpy.spin(node)
        else:
            rclpy.spin_until_future_complete(node, finished)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            if close is not None:
                close(node)
            node.destroy_node()
        rclpy.try_shutdown()
