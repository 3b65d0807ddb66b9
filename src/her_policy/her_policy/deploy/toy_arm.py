"""A toy 3-joint arm with analytic kinematics, for testing the limits and the safety monitor.

It has the interface :class:`her_policy.deploy.safety.SafetyMonitor.from_kinematics` expects
(the shape of ``her_goals.robot.kinematics.Kinematics``) without MuJoCo: a base yaw joint
and two pitch joints (shoulder, elbow) in a vertical plane. Its position Jacobian is
singular with the elbow straight (``q[2] == 0``, inside the joint range on purpose)
and with the tool above the base axis, so singularity handling can be exercised.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

Vector = NDArray[np.float64]


class ToyArm:
    """Yaw-pitch-pitch arm: shoulder at ``base_height_m``, links ``l1_m`` and ``l2_m``."""

    joint_names: tuple[str, ...] = ("yaw", "shoulder", "elbow")

    def __init__(self, base_height_m: float = 0.3, l1_m: float = 0.4, l2_m: float = 0.35) -> None:
        self.h = base_height_m
        self.l1 = l1_m
        self.l2 = l2_m
        self._low = np.array([-2.5, -0.6, -2.6])
        self._high = np.array([2.5, 1.8, 0.4])
        self._vmax = np.array([2.0, 2.0, 2.5])
        self.home_qpos = np.array([0.0, 0.5, -1.3])

    @property
    def n_joints(self) -> int:
        return 3

    @property
    def joint_limits(self) -> tuple[Vector, Vector]:
        return self._low.copy(), self._high.copy()

    @property
    def velocity_limits(self) -> Vector:
        return self._vmax.copy()

    def fk(self, q: ArrayLike) -> Vector:
        """Tool position (3,) in m."""
        q0, q1, q2 = (float(v) for v in np.asarray(q, dtype=np.float64))
        r = self.l1 * math.cos(q1) + self.l2 * math.cos(q1 + q2)
        z = self.h + self.l1 * math.sin(q1) + self.l2 * math.sin(q1 + q2)
        return np.array([r * math.cos(q0), r * math.sin(q0), z])

    def jacobian(self, q: ArrayLike) -> Vector:
        """(6, 3) Jacobian: linear rows (m/rad), then angular rows."""
        q0, q1, q2 = (float(v) for v in np.asarray(q, dtype=np.float64))
        c0, s0 = math.cos(q0), math.sin(q0)
        r = self.l1 * math.cos(q1) + self.l2 * math.cos(q1 + q2)
        dr1 = -self.l1 * math.sin(q1) - self.l2 * math.sin(q1 + q2)
        dr2 = -self.l2 * math.sin(q1 + q2)
        dz1 = self.l1 * math.cos(q1) + self.l2 * math.cos(q1 + q2)
        dz2 = self.l2 * math.cos(q1 + q2)
        return np.array(
            [
                [-r * s0, dr1 * c0, dr2 * c0],
                [r * c0, dr1 * s0, dr2 * s0],
                [0.0, dz1, dz2],
                [0.0, s0, s0],
                [0.0, -c0, -c0],
                [1.0, 0.0, 0.0],
            ]
        )

    def pose_and_jacobian(self, q: ArrayLike) -> tuple[Vector, Vector, Vector]:
        """Position, a placeholder rotation (identity) and the Jacobian, like Kinematics."""
        return self.fk(q), np.eye(3), self.jacobian(q)

    def ik(self, q: ArrayLike, ee_step_m: ArrayLike, damping: float = 0.05) -> Vector:
        """Joint targets for a tool step by one damped-least-squares step on the position rows."""
        qa = np.asarray(q, dtype=np.float64)
        jp = self.jacobian(qa)[:3]
        dx = np.asarray(ee_step_m, dtype=np.float64)
        dq = jp.T @ np.linalg.solve(jp @ jp.T + damping**2 * np.eye(3), dx)
        return qa + dq
