"""Differential inverse kinematics: a Cartesian tool step to joint position targets.

Damped least squares on MuJoCo's site Jacobian, with the tool orientation held
(gripper pointing down) and a null-space pull toward the home posture; the
joint step is then scaled to the joint speed limits and the targets clipped to
the joint position limits. It is a pure function of a :class:`Kinematics` and
the measured joint positions, so it runs the same against the simulator and a
real arm.

Why not ``mink`` (QP-based differential IK on MuJoCo): for one 6-D task on a
7-DoF arm with steps of at most 5 cm, DLS is one 6x6 Cholesky solve (about
40 us here, most of it numpy call overhead) and tracks the tool to 0.1 mm; mink
adds a QP solve per call, its own Configuration/MjData and the qpsolvers
dependency. Its strengths (limits as inequality constraints, weighted task
stacks, collision avoidance) pay off for whole-body motion, not for this
per-step servo, whose limits are handled by scaling and clipping.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_mujoco.kinematics import Kinematics

# Tool pointing down (tool z = -base z) with the fingers opening along base y:
# the orientation of the packaged arm's tcp at home.
POINTING_DOWN: NDArray[np.float64] = np.diag([1.0, -1.0, -1.0])
POINTING_DOWN.flags.writeable = False


@dataclass(frozen=True)
class IKSettings:
    """Gains of the differential IK."""

    damping: float = 0.02
    """DLS damping lambda (m); larger is smoother near singularities but less exact."""
    orientation_gain: float = 1.0
    """Fraction of the orientation error corrected per step."""
    nullspace_gain: float = 0.1
    """Fraction of the home-posture error removed per step in the Jacobian's null space."""


DEFAULT_IK = IKSettings()


def orientation_error(desired: NDArray[np.float64], current: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation vector (rad, base frame) that turns ``current`` into ``desired``."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, (desired @ current.T).ravel())
    err = np.empty(3)
    mujoco.mju_quat2Vel(err, quat, 1.0)
    return err


def cartesian_step(
    kin: Kinematics,
    q: ArrayLike,
    delta_m: ArrayLike,
    dt_s: float,
    *,
    orientation: NDArray[np.float64] = POINTING_DOWN,
    settings: IKSettings = DEFAULT_IK,
) -> NDArray[np.float64]:
    """Joint targets (rad) that move the tool by ``delta_m`` (m, base frame) in one period.

    ``q`` is the measured arm joint positions; ``dt_s`` the control period the joint
    speed limits apply to. The tool turns toward ``orientation`` at the same time,
    and the redundant degree of freedom drifts toward home.
    """
    q = np.asarray(q, dtype=np.float64)
    _, rot, jac = kin.pose_and_jacobian(q)
    err = np.empty(6)
    err[:3] = delta_m
    err[3:] = orientation_error(orientation, rot)
    if settings.orientation_gain != 1.0:
        err[3:] *= settings.orientation_gain
    # dq = J^T (J J^T + lambda^2 I)^-1 err. MuJoCo's Cholesky on the 6x6 system is
    # several times cheaper than numpy.linalg for matrices this small.
    chol = jac @ jac.T
    chol.flat[::7] += settings.damping**2
    mujoco.mju_cholFactor(chol, 0.0)
    y = np.empty(6)
    mujoco.mju_cholSolve(y, chol, err)
    dq = jac.T @ y
    if settings.nullspace_gain > 0:
        # (I - J+ J) pull: the part of the pull that does not move the tool.
        pull = settings.nullspace_gain * (kin.home_qpos - q)
        mujoco.mju_cholSolve(y, chol, jac @ pull)
        dq += pull - jac.T @ y
    # Scale the whole step (not joint by joint) so the tool keeps its direction.
    ratio = float(np.max(np.abs(dq) / kin.velocity_limits)) / dt_s
    if ratio > 1.0:
        dq /= ratio
    low, high = kin.joint_limits
    return np.minimum(np.maximum(q + dq, low), high)
