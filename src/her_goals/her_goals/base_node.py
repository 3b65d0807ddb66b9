"""What every HER-ROS node shares with rclpy: QoS profiles, tf2 lookups and one ``main()``.

Only ``*_node.py`` files import rclpy (ARCHITECTURE.md, rule 1); this one holds the
pieces the four nodes would otherwise repeat.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from tf2_ros import Buffer, ExtrapolationException, TransformException, TransformListener

from her_goals.errors import HerError, StateError
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos, topics
from her_goals.rosglue.frames import Transform, transform_fields
from her_goals.rosglue.health import ERROR, Health, log_to
from her_goals.rosglue.params import config_from_parameters, declare_config
from her_goals.rosglue.qos import QosSpec

N = TypeVar("N", bound=Node)


class _Core(Protocol):
    health: Health


C = TypeVar("C", bound=_Core)


def profile(spec: QosSpec) -> QoSProfile:
    """The rclpy QoS profile of a topic's :class:`QosSpec`."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if spec.latched else DurabilityPolicy.VOLATILE,
    )


class TfLookup:
    """tf2 for :func:`her_goals.rosglue.frames.pose_in_frame`: ``lookup(target, source, stamp_ns)``.

    The transform at the pose's stamp (interpolated; static transforms at any stamp), else the
    latest one (its stamp then says how stale it is); :class:`StateError` when tf2 has none.
    Subscribes to ``/tf`` and ``/tf_static`` (her_bringup remaps them into the namespace).
    """

    def __init__(self, node: Node) -> None:
        self.buffer = Buffer()
        self.listener = TransformListener(self.buffer, node)

    def __call__(self, target: str, source: str, stamp_ns: int) -> Transform:
        try:
            try:
                found = self.buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns))
            except ExtrapolationException:
                found = self.buffer.lookup_transform(target, source, Time())
        except TransformException as exc:
            raise StateError(f"no transform {target} <- {source}: {exc}") from None
        return transform_fields(found)


def subscribe_any_qos(
    node: Node, msg_type: Any, topic: str, callback: Callable[[Any], None], specs: tuple[QosSpec, ...]
) -> list[Any]:
    """One subscription per QoS in ``specs``, same topic and callback (``qos.ESTOP_SUBSCRIPTIONS``).

    Some of them are incompatible with any given publisher by design (another one matches it),
    so rclpy's "incompatible QoS" warning is not logged for them.
    """
    quiet = SubscriptionEventCallbacks(incompatible_qos=lambda info: None)
    return [node.create_subscription(msg_type, topic, callback, profile(spec), event_callbacks=quiet)
            for spec in specs]


def publish_diagnostics(node: Node, types: mc.MessageTypes, period_s: float, status: Callable[[], mc.Diagnostic]) -> Any:
    """Publish the node's ``status()`` on ``/diagnostics`` every ``period_s``; returns the timer."""
    pub = node.create_publisher(types[mc.DIAGNOSTIC_ARRAY], topics.DIAGNOSTICS, profile(qos.DEFAULT))
    return node.create_timer(
        period_s, lambda: pub.publish(mc.diagnostic_array_msg(types, node.get_clock().now().nanoseconds, [status()])))


def start_core(node: Node, types: mc.MessageTypes, config_cls: type[Any], build: Callable[[Any], C], *,
               where: str, package: str, refused: str = "not running") -> C | None:
    """Declare ``config_cls``'s parameters and ``build`` the node's core from their values.

    The core's health logs to the node's logger as ``"<package>: <node name>"``. A bad parameter
    (or a file it names that cannot be read) is reported as ``"<refused>: why"`` on the log and
    on ``/diagnostics`` (once a second) and gives None: the node then does nothing else.
    """
    values = declare_config(node, config_cls, types)
    name = f"{package}: {node.get_fully_qualified_name()}"
    try:
        core = build(config_from_parameters(config_cls, values, where=where))
    except (HerError, OSError) as exc:
        health = Health(name, on_change=log_to(node.get_logger()))
        health.report("config", ERROR, f"{refused}: {exc}")
        publish_diagnostics(node, types, 1.0, lambda: health.diagnostic({}))
        return None
    core.health.name, core.health.on_change = name, log_to(node.get_logger())
    return core


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
