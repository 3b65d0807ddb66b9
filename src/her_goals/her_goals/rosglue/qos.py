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
* ``SENSOR`` (best effort, volatile, depth 5): ``/joint_states`` and ``/object_pose``, as
  drivers publish them (rclpy's ``qos_profile_sensor_data``).
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
