"""Poses between frames, without rclpy: what the nodes do with tf2's transforms.

A perception node publishes the object pose in its camera's frame; goals live in the
arm's base frame. The node asks tf2 for the transform (``her_goals.base_node.TfLookup``,
the only place tf2 is imported) and hands it to :func:`pose_in_frame`, which applies it
and decides whether it may be used: a transform that is missing, or whose stamp is more
than ``max_age_s`` away from the pose's, is refused (:class:`StateError`), and the pose is
then treated like a stale pose (dropped; the arm holds once the last good one ages out).

Poses are ``[x y z qw qx qy qz]`` (msgconv's layout); quaternions ``[w x y z]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from transforms3d.euler import euler2quat
from transforms3d.quaternions import qconjugate, qmult, quat2mat

from her_goals.errors import StateError
from her_goals.rosglue.health import ERROR, WARN, Health
from her_goals.rosglue.msgconv import header_msg, pose_fields

Vector = NDArray[np.float64]


class Transform(NamedTuple):
    """``parent <- child``: a point in ``child`` maps to ``rotation * p + translation`` in ``parent``."""

    parent: str
    child: str
    translation: Vector
    rotation: Vector
    """Unit quaternion ``[w x y z]``."""
    stamp_ns: int = 0


Lookup = Callable[[str, str, int], Transform]
"""``lookup(target, source, stamp_ns)``: the transform ``target <- source`` near ``stamp_ns``;
raises :class:`StateError` when tf2 has none."""


def from_xyz_rpy(parent: str, child: str, xyz: Sequence[float], rpy: Sequence[float],
                 stamp_ns: int = 0) -> Transform:
    """A transform from a translation (m) and roll-pitch-yaw (rad, fixed axes x-y-z, as URDF)."""
    if len(xyz) != 3 or len(rpy) != 3:
        raise StateError(f"a transform needs 3 translation and 3 rotation values, got {list(xyz)}, {list(rpy)}")
    quat = euler2quat(*(float(a) for a in rpy), axes="sxyz")
    return Transform(parent, child, np.asarray(xyz, dtype=np.float64), np.asarray(quat, dtype=np.float64), stamp_ns)


def invert(tf: Transform) -> Transform:
    """``child <- parent`` from ``parent <- child``."""
    rot = quat2mat(tf.rotation)
    conj = qconjugate(tf.rotation)
    return Transform(tf.child, tf.parent, -rot.T @ tf.translation, np.asarray(conj, dtype=np.float64), tf.stamp_ns)


def transform_pose(tf: Transform, pose: ArrayLike) -> Vector:
    """``pose`` (in ``tf.child``) expressed in ``tf.parent``."""
    p = np.asarray(pose, dtype=np.float64).reshape(-1)
    rot = quat2mat(tf.rotation)
    position = rot @ p[:3] + tf.translation
    quat = qmult(tf.rotation, p[3:7])
    quat = quat / np.linalg.norm(quat)
    return np.concatenate([position, quat])


def pose_in_frame(pose: ArrayLike, stamp_ns: int, frame: str, target: str, lookup: Lookup | None,
                  max_age_s: float) -> Vector:
    """``pose`` (stamped ``stamp_ns`` in ``frame``) in ``target``, through ``lookup``.

    Raises :class:`StateError` when ``frame`` differs from ``target`` and there is no lookup,
    no transform, or only one stamped more than ``max_age_s`` from the pose (stale).
    """
    if frame == target:
        return np.asarray(pose, dtype=np.float64)
    if lookup is None:
        raise StateError(f"pose in frame {frame!r}, goals are in {target!r}, and no tf2 lookup is available")
    tf = lookup(target, frame, stamp_ns)
    age_s = abs(stamp_ns - tf.stamp_ns) * 1e-9
    if age_s > max_age_s:
        raise StateError(f"transform {target} <- {frame} is stale: stamped {age_s:.3f} s from the pose "
                         f"(limit {max_age_s:g} s)")
    return transform_pose(tf, pose)


def receive_object_pose(msg: Any, last: tuple[Vector, int] | None, target: str, lookup: Lookup | None,
                        max_age_s: float, health: Health) -> tuple[Vector, int] | None:
    """A ``/object_pose`` message as a core keeps it: (pose in ``target``, stamp_ns), through ``lookup``.

    None when it is dropped, reported on ``health`` and counted: no usable transform
    (:func:`pose_in_frame`), or stamped before ``last``, the pose kept so far. The goals and
    the policy node cores both take their object poses through this.
    """
    pose, stamp, frame = pose_fields(msg)
    try:
        pose = pose_in_frame(pose, stamp, frame, target, lookup, max_age_s)
    except StateError as exc:
        health.count("object_poses_without_transform")
        health.report("object_pose", ERROR, f"/object_pose dropped: {exc}")
        return None
    if last is not None and stamp < last[1]:
        health.count("out_of_order_object_poses")
        health.report("pose_order", WARN, "/object_pose stamp went backwards; dropped")
        return None
    health.clear("object_pose")
    return pose, stamp


def transform_fields(msg: Any) -> Transform:
    """A :class:`Transform` from a ``geometry_msgs/TransformStamped`` (duck-typed)."""
    t, q = msg.transform.translation, msg.transform.rotation
    stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
    return Transform(str(msg.header.frame_id), str(msg.child_frame_id),
                     np.array([t.x, t.y, t.z], dtype=np.float64), np.array([q.w, q.x, q.y, q.z], dtype=np.float64),
                     stamp)


def transform_stamped_msg(types: Any, tf: Transform) -> Any:
    """A ``geometry_msgs/TransformStamped`` (``types``: a msgconv.MessageTypes)."""
    x, y, z = (float(v) for v in tf.translation)
    qw, qx, qy, qz = (float(v) for v in tf.rotation)
    return types["geometry_msgs/msg/TransformStamped"](
        header=header_msg(types, tf.stamp_ns, tf.parent),
        child_frame_id=tf.child,
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
            rotation=types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
        ),
    )
