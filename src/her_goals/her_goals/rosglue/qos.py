"""The quality-of-service of every HER-ROS topic, declared once and without rclpy.

The nodes turn these into ``rclpy.qos.QoSProfile`` (``her_goals.base_node.profile``);
the recorder writes the same into each bag's connections, so a replayed bag offers
what the live topic offered.

* ``LATCHED`` (reliable, transient local, depth 1): the last desired goal; a late
  subscriber still receives it.
* ``RELIABLE`` (reliable, volatile, depth 100): episode events and steps; nothing may be
  dropped between the policy and the recorder.
* ``RECORDER`` (reliable, volatile, depth 1000): what the recorder subscribes with, deep
  enough to ride out a slow disk.
* ``DEFAULT`` (reliable, volatile, depth 10): rclpy's default (a depth given as a number),
  for commands to the arm's controllers and ``/diagnostics``.
* ``SENSOR`` (best effort, volatile, depth 5): ``/joint_states`` and ``/object_pose``, as
  drivers publish them (rclpy's ``qos_profile_sensor_data``).
* ``ESTOP_SUBSCRIPTIONS``: the software e-stop listens with three subscriptions at once, so
  that no publisher a user or a safety PLC bridge is likely to use goes unmatched (see
  :func:`compatible` for the rule and the table there).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QosSpec:
    """One topic's QoS: history depth, reliability and durability."""

    depth: int
    reliable: bool = True
    latched: bool = False
    """Transient local: the publisher keeps the last ``depth`` messages for late subscribers."""


LATCHED = QosSpec(depth=1, reliable=True, latched=True)
RELIABLE = QosSpec(depth=100)
RECORDER = QosSpec(depth=1000)
SENSOR = QosSpec(depth=5, reliable=False)
DEFAULT = QosSpec(depth=10)


def compatible(offered: QosSpec, requested: QosSpec) -> bool:
    """Whether a publisher offering ``offered`` matches a subscription requesting ``requested``.

    DDS's request-vs-offered rule for the two policies we set: a RELIABLE subscription
    matches only RELIABLE publishers, a TRANSIENT_LOCAL subscription only TRANSIENT_LOCAL
    publishers; a BEST_EFFORT or VOLATILE subscription matches either. An unmatched
    publisher's messages are silently never delivered (``ros2 topic pub --once`` then waits
    forever for a subscriber), which is why the e-stop subscribes three ways.
    """
    return (offered.reliable or not requested.reliable) and (offered.latched or not requested.latched)


ESTOP_SUBSCRIPTIONS = (
    QosSpec(depth=10, reliable=True, latched=True),
    QosSpec(depth=10, reliable=True, latched=False),
    QosSpec(depth=10, reliable=False, latched=False),
)
"""The e-stop's subscriptions, all on the same topic and callback:

=========================================  ==========================================
publisher (what a user or bridge offers)    matched by
=========================================  ==========================================
reliable + volatile (``ros2 topic pub``)    reliable volatile (and best effort)
reliable + transient local (latched)        all three; the latched one also delivers a
                                            stop published before the node started
best effort + volatile (sensor-style)       best effort
best effort + transient local               best effort
=========================================  ==========================================

A reliable publisher is always matched by a reliable subscription (no silent loss on a
lossy link). The same message may arrive twice (once per matching subscription); engaging
is idempotent, so that is harmless.
"""
