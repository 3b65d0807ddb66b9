"""Differential inverse kinematics: a Cartesian tool step to joint position targets.

Damped least squares on MuJoCo's site Jacobian, with the tool orientation held
(gripper pointing down) and a null-space pull toward the home posture; joints
that would cross their (margin-shrunk) limits are clamped and the rest re-solved,
then the step is scaled to the joint speed limits. It is a pure function of a :class:`Kinematics` and
the measured joint positions, so it runs the same against the simulator and a
real arm.

Why not ``mink`` (QP-based differential IK on MuJoCo, measured side by side on
200 chained random targets over and beyond our workspace, 40 steps each, same
speed limits): this clamped DLS got within 1 mm of 192/200 targets (median
0.30 mm), mink 1.3.0 with daqp 172/200 (median 0.57 mm), and mink cost about
3.5x more per step (roughly 1 ms against 0.3 ms on a loaded 2-core machine). Both
kept the gripper pointing down. Plain DLS that clipped its result missed 37 of
the 200, most of them wedged with the elbow stretched against its limit and the
gripper turned over: clamping (fix a joint at its bound and re-solve) plus a
0.1 rad limit margin is what closes that gap.
mink's strengths (weighted task stacks, collision avoidance) are not needed for
this per-step servo, so it is not a dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.robot.kinematics import Kinematics
from her_goals.vector_ops import clip

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
    limit_margin_rad: float = 0.1
    """Distance kept from every joint limit (rad), as MoveIt Servo does."""


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
    and the redundant degree of freedom drifts toward home. A one-off
    :class:`DifferentialIK`; a control loop keeps one and calls it every tick.
    """
    return DifferentialIK(kin, dt_s, orientation=orientation, settings=settings)(q, delta_m)


class DifferentialIK:
    """:func:`cartesian_step` for one arm, period and settings, with its buffers allocated once.

    The control tick calls it (``her_policy.deploy.pipeline.pipeline_for``): the bounds, the
    home pull's constants and every intermediate array are made once, so a tick pays for the
    arithmetic and not for ~25 small numpy allocations. The operations and their order are
    those of the plain function, so the joint targets are bit for bit the same
    (tests/her_policy/test_tick_regression.py replays a recorded soak through it).
    Measured on the push arm (bench/bench_safety.py, stage ``limits_ik`` p50, one run against
    the plain function on a loaded 2-core machine): 34.0 us against 49.1 us; with the
    crossing and speed tests on Python floats and ``y @ jac`` for the transposed products,
    30-31 us against 33-35 us for the version before, alternating runs at load ~6.
    """

    def __init__(
        self,
        kin: Kinematics,
        dt_s: float,
        *,
        orientation: NDArray[np.float64] = POINTING_DOWN,
        settings: IKSettings = DEFAULT_IK,
    ) -> None:
        self.kin = kin
        self.dt_s = float(dt_s)
        self.settings = settings
        self._desired = np.ascontiguousarray(orientation, dtype=np.float64)
        low, high = kin.joint_limits
        n = len(low)
        self._low_band = low + settings.limit_margin_rad
        self._high_band = high - settings.limit_margin_rad
        self._home = np.array(kin.home_qpos, dtype=np.float64)
        self._vmax = np.array(kin.velocity_limits, dtype=np.float64)
        self._gain = settings.nullspace_gain
        self._damping2 = settings.damping**2
        self._n = n
        self._err = np.empty(6)
        self._err_pos, self._err_rot = self._err[:3], self._err[3:]
        self._rel = np.empty((3, 3))
        self._rel_flat = self._rel.reshape(-1)
        self._quat = np.empty(4)
        self._pull = np.empty(n)
        self._chol = np.empty((6, 6))
        self._diag = self._chol.reshape(-1)[::7]
        self._y = np.empty(6)
        self._jp = np.empty(6)
        self._dq = np.empty(n)
        self._tmp = np.empty(n)
        self._qdq = np.empty(n)

    def __call__(self, q: ArrayLike, delta_m: ArrayLike) -> NDArray[np.float64]:
        """Joint targets (rad) moving the tool by ``delta_m`` (m) from measured joints ``q``."""
        q = np.asarray(q, dtype=np.float64)
        settings = self.settings
        _, rot, jac = self.kin.pose_and_jacobian(q)
        err = self._err
        self._err_pos[:] = delta_m
        # orientation_error(desired, rot), into the preallocated buffers (views made once).
        np.matmul(self._desired, rot.T, out=self._rel)
        mujoco.mju_mat2Quat(self._quat, self._rel_flat)
        mujoco.mju_quat2Vel(self._err_rot, self._quat, 1.0)
        if settings.orientation_gain != 1.0:
            self._err_rot *= settings.orientation_gain
        # Keep a margin from the limits (MoveIt Servo keeps 0.1 rad): at the elbow's upper
        # limit the arm is stretched straight, a singularity DLS cannot steer out of.
        # A joint already inside the margin may stay where it is but not go deeper.
        lo = np.minimum(self._low_band, q)
        hi = np.maximum(self._high_band, q)
        pull = self._pull
        np.subtract(self._home, q, out=pull)
        np.multiply(self._gain, pull, out=pull)
        dq = self._dq
        self._solve(jac, err, pull, dq)
        qdq = self._qdq
        np.add(q, dq, out=qdq)
        # Clamping: a joint whose step would cross its bound is fixed at the bound and the
        # task is re-solved with the others, instead of clipping afterwards, which would
        # silently give up part of the task (and can trap the arm at its limits).
        # (The test on Python floats: one pass instead of three ufuncs and a reduction.)
        moved = False  # whether dq changed after qdq = q + dq
        if any(map(_crosses, qdq.tolist(), lo.tolist(), hi.tolist())):  # usually none does
            moved = True
            dq = dq.copy()
            free = np.ones(self._n, dtype=bool)
            for _ in range(self._n):
                crossing = free & ((q + dq < lo) | (q + dq > hi))
                if not crossing.any():
                    break
                dq[crossing] = np.minimum(np.maximum(q + dq, lo), hi)[crossing] - q[crossing]
                free &= ~crossing
                rest = err - jac[:, ~free] @ dq[~free]
                dq[free] = _dls(jac * free, rest, pull * free, settings.damping)[free]
        # Scale the whole step (not joint by joint) so the tool keeps its direction; the
        # scaled step stays inside the bounds because q and q + dq both are.
        tmp = self._tmp
        np.abs(dq, out=tmp)
        np.divide(tmp, self._vmax, out=tmp)
        speeds = tmp.tolist()
        # max() of floats is ndarray.max() unless a NaN is in it (numpy propagates it).
        worst = max(speeds) if all(map(math.isfinite, speeds)) else float(tmp.max())
        ratio = worst / self.dt_s
        if ratio > 1.0:
            dq /= ratio
            moved = True
        if moved:
            np.add(q, dq, out=qdq)
        # The clip ufunc is maximum then minimum in one call (the same bits); its output is new.
        out: NDArray[np.float64] = clip(qdq, lo, hi)
        return out

    def _solve(
        self,
        jac: NDArray[np.float64],
        err: NDArray[np.float64],
        pull: NDArray[np.float64],
        dq: NDArray[np.float64],
    ) -> None:
        """:func:`_dls` into ``dq``, with the preallocated 6x6 system."""
        chol, y, tmp = self._chol, self._y, self._tmp
        np.matmul(jac, jac.T, out=chol)
        self._diag += self._damping2
        mujoco.mju_cholFactor(chol, 0.0)
        mujoco.mju_cholSolve(y, chol, err)
        # y @ jac is jac.T @ y (the same BLAS call, the same bits) without the transposed view.
        np.matmul(y, jac, out=dq)
        np.matmul(jac, pull, out=self._jp)
        mujoco.mju_cholSolve(y, chol, self._jp)
        np.matmul(y, jac, out=tmp)
        np.subtract(pull, tmp, out=tmp)
        dq += tmp


def _crosses(x: float, lo: float, hi: float) -> bool:
    """``(x < lo) | (x > hi)`` on floats (False for NaN, as numpy's)."""
    return x < lo or x > hi


def _dls(
    jac: NDArray[np.float64], err: NDArray[np.float64], pull: NDArray[np.float64], damping: float
) -> NDArray[np.float64]:
    """J+ err + (I - J+ J) pull with the damped pseudo-inverse J+ = J^T (J J^T + d^2 I)^-1."""
    # MuJoCo's Cholesky on the 6x6 system is several times cheaper than numpy.linalg
    # for matrices this small.
    chol = jac @ jac.T
    chol.flat[:: chol.shape[0] + 1] += damping**2
    mujoco.mju_cholFactor(chol, 0.0)
    y = np.empty(chol.shape[0])
    mujoco.mju_cholSolve(y, chol, err)
    dq = jac.T @ y
    mujoco.mju_cholSolve(y, chol, jac @ pull)
    dq += pull - jac.T @ y
    return dq
