"""Action limits: what the policy may ask for in one tick, before the safety monitor sees it.

The policy outputs a tool (TCP) Cartesian delta and a gripper command, each in
``[-1, 1]``. Per tick this module

1. clips every action dimension into its range (``CLIPPED``),
2. maps the Cartesian part to metres and caps its Euclidean norm at
   ``max_ee_step_m``, scaling the whole vector so the direction is kept
   (``STEP_LIMITED``; LeRobot's ``max_ee_step_m`` does the same),
3. maps the gripper part into ``gripper_range_m``,

and, after inverse kinematics has turned the Cartesian step into joint targets,

4. caps the joint step ``|q_target - q_measured|`` at ``max_joint_step_rad`` per joint
   by scaling the whole joint delta with the smallest per-joint ratio, so every joint
   keeps its direction and the motion stays on its line (MoveIt Servo's velocity
   scaling; LeRobot's ``max_relative_target`` clamps per joint and bends the path).

A non-finite or misshapen policy output is never "repaired": it is reported as
``NON_FINITE`` and the safety monitor holds the arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.checks import PositiveFloat, Range, Size, check_fields
from her_goals.errors import ConfigError
from her_goals.safety_flags import SafetyFlag
from her_goals.vector_ops import clip

_NAN3 = np.full(3, np.nan)
_NAN3.flags.writeable = False
# Plain ints: IntFlag arithmetic costs microseconds per operation on the tick's path.
_CLIPPED = int(SafetyFlag.CLIPPED)
_NON_FINITE = int(SafetyFlag.NON_FINITE)
_STEP_LIMITED = int(SafetyFlag.STEP_LIMITED)
_VELOCITY_LIMIT = int(SafetyFlag.VELOCITY_LIMIT)


@dataclass(frozen=True)
class ActionLimitsConfig:
    """Per-tick limits on the policy's action (units in the key names)."""

    action_low: Annotated[tuple[float, ...], Size(at_least=3, hint="dx, dy, dz (and the gripper)")] = (-1.0, -1.0, -1.0, -1.0)
    """Lower bound of every action dimension (policy units, [dx, dy, dz, gripper])."""
    action_high: Annotated[tuple[float, ...], Size(at_least=3, hint="dx, dy, dz (and the gripper)")] = (1.0, 1.0, 1.0, 1.0)
    """Upper bound of every action dimension (policy units)."""
    ee_step_per_action_m: PositiveFloat = 0.05
    """Tool motion per unit of action on each Cartesian axis, in m (the task's own mapping)."""
    max_ee_step_m: PositiveFloat = 0.05
    """Cap on the Euclidean norm of the tool step per tick, in m (direction kept)."""
    max_joint_step_rad: PositiveFloat = 0.1
    """Cap on every joint's step per tick, in rad (whole delta scaled, direction kept)."""
    max_joint_step_rad_per_joint: tuple[PositiveFloat, ...] = ()
    """Optional per-joint caps in rad overriding ``max_joint_step_rad`` (empty = use it)."""
    gripper_index: Annotated[int, Range(ge=-1)] = 3
    """Index of the gripper dimension in the action, or -1 for no gripper."""
    gripper_range_m: tuple[float, float] = (0.0, 0.08)
    """Total finger opening commanded for gripper action -1 and +1, in m."""

    def __post_init__(self) -> None:
        check_fields(self, where="limits")  # the ranges declared on the fields
        # What one field cannot say on its own:
        lo, hi = self.action_low, self.action_high
        if len(lo) != len(hi) or any(h < low for low, h in zip(lo, hi)):
            raise ConfigError(
                f"limits: action_low {lo} and action_high {hi} must have the same length and "
                "action_low <= action_high in every dimension"
            )
        if self.gripper_index >= len(lo) or self.gripper_index in (0, 1, 2):
            raise ConfigError(
                f"limits: gripper_index {self.gripper_index} must be -1 or an index >= 3 "
                f"of the {len(lo)}-D action"
            )
        if self.gripper_range_m[1] < self.gripper_range_m[0]:
            raise ConfigError(f"limits: gripper_range_m must be [low, high], got {self.gripper_range_m}")

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    def joint_step_caps_rad(self, n_joints: int) -> NDArray[np.float64]:
        """Per-joint step cap in rad for an arm with ``n_joints`` joints."""
        if self.max_joint_step_rad_per_joint:
            if len(self.max_joint_step_rad_per_joint) != n_joints:
                raise ConfigError(
                    f"limits: max_joint_step_rad_per_joint has {len(self.max_joint_step_rad_per_joint)} "
                    f"values for an arm with {n_joints} joints"
                )
            return np.asarray(self.max_joint_step_rad_per_joint, dtype=np.float64)
        return np.full(n_joints, self.max_joint_step_rad)


class LimitedAction(NamedTuple):
    """The policy action after the action limits, in physical units."""

    ee_step_m: NDArray[np.float64]
    """Tool step for this tick, shape (3,), in m; NaN when the action was non-finite."""
    gripper_m: float | None
    """Commanded total finger opening in m, or None (no gripper, or non-finite action)."""
    action: NDArray[np.float64]
    """The limited action in policy units (clipped, Cartesian part scaled like the step)."""
    flags: int
    """``SafetyFlag`` bits raised here (CLIPPED, STEP_LIMITED, NON_FINITE)."""


SCALE_TOLERANCE = 1e-9
"""Relative excess over a cap that counts as "at the cap" (float rounding of an upstream
scaling to exactly the cap, e.g. the IK's own speed scaling), not as a limit hit."""


def direction_preserving_scale(delta: NDArray[np.float64], inv_cap: NDArray[np.float64]) -> float:
    """Largest ``s`` in (0, 1] with ``|s * delta| <= cap`` for every component.

    ``inv_cap`` is ``1 / cap``; scaling the whole vector by ``s`` keeps its direction
    (MoveIt Servo's "smallest per-joint ratio"). Returns 1.0 within SCALE_TOLERANCE.
    """
    ratios = (np.abs(delta) * inv_cap).tolist()
    worst = max(ratios)
    if not all(map(math.isfinite, ratios)):
        return math.nan  # NaN/inf step: the caller's command is non-finite; the monitor holds
    return 1.0 if worst <= 1.0 + SCALE_TOLERANCE else 1.0 / worst


def all_finite(x: NDArray[np.float64]) -> bool:
    """True when no entry of the 1-D array ``x`` is NaN or inf.

    On the 4- to 25-vectors of a tick this is 2-3x cheaper than
    ``np.isfinite(x).all()`` and raises no floating-point warnings.
    """
    return all(map(math.isfinite, x.tolist()))


class ActionLimits:
    """Applies :class:`ActionLimitsConfig` to one tick's action and joint step."""

    def __init__(
        self,
        config: ActionLimitsConfig,
        n_joints: int,
        *,
        velocity_step_cap_rad: ArrayLike | None = None,
    ) -> None:
        """``velocity_step_cap_rad``: joint speed limits times the control period; when
        given, the joint step cap is the smaller of it and ``max_joint_step_rad``, and a
        step cut by it is flagged VELOCITY_LIMIT rather than STEP_LIMITED."""
        self.config = config
        self.n_joints = int(n_joints)
        self._low = np.asarray(config.action_low, dtype=np.float64)
        self._high = np.asarray(config.action_high, dtype=np.float64)
        self._dim = config.action_dim
        self._scale = config.ee_step_per_action_m
        self._max_ee = config.max_ee_step_m
        self._gi = config.gripper_index
        g_lo, g_hi = config.gripper_range_m
        self._g_mid, self._g_half = 0.5 * (g_lo + g_hi), 0.5 * (g_hi - g_lo)
        step_cap = config.joint_step_caps_rad(self.n_joints)
        self._inv_step_cap = 1.0 / step_cap
        self._inv_vel_cap: NDArray[np.float64] | None = None
        if velocity_step_cap_rad is not None:
            vel_cap = np.broadcast_to(
                np.asarray(velocity_step_cap_rad, dtype=np.float64), step_cap.shape
            )
            if not (np.isfinite(vel_cap).all() and (vel_cap > 0).all()):
                raise ConfigError(f"limits: velocity step caps must be positive, got {vel_cap}")
            self._inv_vel_cap = 1.0 / vel_cap
            step_cap = np.minimum(step_cap, vel_cap)
        self.joint_step_cap_rad = step_cap
        """Binding cap on each joint's step per tick (rad)."""
        self._inv_joint_cap = 1.0 / step_cap

    def limit_action(self, action: ArrayLike) -> LimitedAction:
        """Clip ``action``, map it to metres and cap the tool step (see module docstring)."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self._dim,) or not all_finite(a):
            return LimitedAction(_NAN3, None, a, _NON_FINITE)
        flags = 0
        clipped = clip(a, self._low, self._high)
        if clipped.tobytes() != a.tobytes():
            flags |= _CLIPPED
        step = clipped[:3] * self._scale
        norm = math.sqrt(float(step @ step))
        if norm > self._max_ee:
            ratio = self._max_ee / norm
            step *= ratio
            clipped[:3] *= ratio
            flags |= _STEP_LIMITED
        gripper = None
        if self._gi >= 0:
            g = float(clipped[self._gi])
            gripper = self._g_mid + self._g_half * max(-1.0, min(1.0, g))
        return LimitedAction(step, gripper, clipped, flags)

    def limit_joint_step(
        self, q_target: NDArray[np.float64], q_measured: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], int]:
        """Scale ``q_target - q_measured`` so no joint moves more than its cap; returns (q, flags)."""
        delta = q_target - q_measured
        s = direction_preserving_scale(delta, self._inv_joint_cap)
        if s == 1.0:
            return q_target, 0
        flags = 0
        if direction_preserving_scale(delta, self._inv_step_cap) < 1.0:
            flags |= _STEP_LIMITED
        if (
            self._inv_vel_cap is not None
            and direction_preserving_scale(delta, self._inv_vel_cap) < 1.0
        ):
            flags |= _VELOCITY_LIMIT
        return q_measured + s * delta, flags
