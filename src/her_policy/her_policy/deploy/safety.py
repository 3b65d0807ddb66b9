"""Safety monitor: the last check between the policy and the arm (ARCHITECTURE.md, "Safety").

Every tick :meth:`SafetyMonitor.check` takes the latest joint state (with its stamp),
the current time and the joint-position command the action limits and IK produced,
and returns a :class:`SafetyDecision`: the joint-position targets to send, whether it
intervened, every reason (``SafetyFlag`` bits, the ``safety_flags`` of Step.msg), a
safety cost and a ``diagnostic_msgs`` status level.

Hold
    "Hold" commands the *measured* joint position, never the last command (a
    ``forward_command_controller`` would otherwise keep driving towards a stale target).
    When the measured position is NaN/inf the hold uses the last finite measured
    position; when no finite position was ever measured the decision carries
    ``command=None``: send nothing (nothing of ours is held by the driver yet), and
    the status is ERROR. A measured position beyond a hard joint limit (MuJoCo's soft
    limits let joints penetrate slightly; a real encoder can read past a stop) is
    clamped into the hard limits before it is used as the reference; that is the only
    case in which the command can differ from the measured position by more than one
    joint step, by exactly the excess, and it is flagged ``JOINT_LIMIT`` (ERROR).

Invariant (proved by the property tests in tests/her_policy/test_safety_properties.py)
    For every state, time and command, including NaN, inf, 1e9 and stale or future
    stamps, whenever ``command`` is not None it is finite and, per joint, with
    ``r = clip(measured, low, high)`` (measured = the last finite measured position):

    * ``low <= command <= high``;
    * ``|command - r| <= joint step cap`` (``min(max_joint_step_rad, v_max * dt)``);
    * ``command`` lies in ``[low + margin, high - margin]``, or, for a joint whose
      ``r`` is already inside the margin band's complement, between ``r`` and the band
      (holding it or moving it back, never further out).

    (each to float rounding, 1e-12 rad). So when the measured position is inside the
    margin band, the command is inside the band and within one step of the measured
    position, as Servo's margins promise. For the tool: FK of a command that is not a
    hold is inside the workspace box (above the table floor), or, when the measured tool
    is already outside, no further out than it (tests/her_policy/test_control_loop.py
    checks this in closed loop on the MuJoCo arm).

Order of the checks per tick
    e-stop latch -> usable, finite measured state (positions and, when present,
    velocities; a measured speed above its limit is only flagged) -> stale stamp -> finite command ->
    joint step and velocity cap (whole delta scaled, direction kept) -> singularity
    (condition number of the Jacobian at the predicted position) -> joint-limit margin
    clamp (per joint) -> workspace box and table floor on the predicted tool position.
    Each later stage only shrinks the step towards the reference, so none can undo an
    earlier guarantee; a final clip re-asserts the invariant against rounding.

Safety cost
    ``safety_cost = max(cost_weights[f] for f in flags)`` (0 when no flag is raised),
    so a tick costs at most 1 and an episode's cost counts its ticks weighted by
    their worst reason (a constrained-RL style per-step cost). Default weights are in
    :data:`DEFAULT_COST_WEIGHTS`; ``cost_weights`` in the config overrides them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.checks import Fraction, NonNegativeFloat, PositiveFloat, Range, Size, check_fields
from her_goals.config import suggest
from her_goals.errors import ConfigError
from her_goals.extractors import RobotState
from her_goals.safety_flags import ALL_FLAGS, SafetyFlag, SafetyStatus, flag_names
from her_goals.sampling import GoalRegion
from her_goals.vector_ops import clip
from her_policy.deploy.limits import SCALE_TOLERANCE, all_finite

__all__ = [
    "DEFAULT_COST_WEIGHTS",
    "EpisodeCheck",
    "SafetyConfig",
    "SafetyDecision",
    "SafetyFlag",
    "SafetyMonitor",
    "SafetyStatus",
]

DEFAULT_COST_WEIGHTS: dict[str, float] = {
    "CLIPPED": 0.0,  # saturating the action range is routine, not a safety event
    "STEP_LIMITED": 0.1,
    "VELOCITY_LIMIT": 0.2,
    "SINGULARITY": 0.5,
    "JOINT_LIMIT": 0.5,
    "WORKSPACE": 1.0,
    "STALE_STATE": 1.0,
    "NON_FINITE": 1.0,
    "ESTOP": 1.0,
    "GOAL_OUT_OF_REGION": 1.0,
}

Vector = NDArray[np.float64]

# The bare LAPACK gufunc: np.linalg.eigvalsh's Python wrapper costs ~3x the 6x6 solve
# itself. Falls back to the public function on numpy layouts without it.
_eigvalsh: Any = getattr(getattr(np.linalg, "_umath_linalg", None), "eigvalsh_lo", None)
if _eigvalsh is None:  # pragma: no cover
    _eigvalsh = np.linalg.eigvalsh


@dataclass(frozen=True)
class SafetyConfig:
    """Thresholds of the safety monitor (units in the key names)."""

    joint_limit_margin_rad: NonNegativeFloat = 0.1
    """Keep commands this far inside every joint's position limits (MoveIt Servo: 0.1 rad)."""
    stale_state_timeout_s: PositiveFloat = 0.1
    """Hold when the joint state is older than this, or stamped this far in the future (Servo: 0.1 s)."""
    velocity_limit_scale: PositiveFloat = 1.0
    """Fraction of the arm's joint speed limits a command may use (step / dt)."""
    measured_velocity_tolerance: PositiveFloat = 1.2
    """Flag VELOCITY_LIMIT when a measured joint speed exceeds this multiple of its limit."""
    workspace_low_m: Annotated[tuple[float, float, float], Size(3, hint="x, y, z (m)")] = (0.25, -0.30, 0.0)
    """Lower corner of the box the tool centre point must stay in (m, base frame)."""
    workspace_high_m: Annotated[tuple[float, float, float], Size(3, hint="x, y, z (m)")] = (0.70, 0.30, 0.40)
    """Upper corner of the tool workspace box (m, base frame)."""
    table_top_z_m: float = 0.0
    """Height of the table top in the base frame (m)."""
    table_clearance_m: NonNegativeFloat = 0.01
    """Minimum height of the tool centre point above the table top (m)."""
    singularity_slowdown_condition: PositiveFloat = 17.0
    """Jacobian condition number from which motion towards a singularity is slowed (Servo: 17)."""
    singularity_halt_condition: PositiveFloat = 30.0
    """Condition number at which motion towards a singularity halts (Servo: 30)."""
    singularity_leaving_multiplier: Annotated[float, Range(ge=1)] = 2.0
    """Moving away, the slow-down band is this many times wider (Servo's leaving multiplier)."""
    singularity_leaving_min_scale: Annotated[float, Range(gt=0, le=1)] = 0.1
    """Moving away from a singularity is never slowed below this fraction (so the arm can escape)."""
    singularity_jacobian_rows: Literal["full", "position"] = "full"
    """Condition number of the full 6xN Jacobian (as Servo) or of its 3xN position rows."""
    goal_region_margin_m: NonNegativeFloat = 0.0
    """Accept desired goals up to this far outside the task's goal region (goal units)."""
    cost_weights: dict[str, Fraction] = field(default_factory=dict)
    """Per-reason safety cost in [0, 1], overriding DEFAULT_COST_WEIGHTS (keys: flag names)."""

    def __post_init__(self) -> None:
        valid = {f.name for f in ALL_FLAGS if f.name is not None}
        for key in self.cost_weights:
            if key not in valid:
                raise ConfigError(
                    f"safety: cost_weights has unknown reason {key!r}.{suggest(key, valid)} "
                    f"Valid: {', '.join(sorted(valid))}."
                )
        check_fields(self, where="safety")  # the ranges declared on the fields
        # What one field cannot say on its own:
        if not self.singularity_halt_condition > self.singularity_slowdown_condition:
            raise ConfigError(
                "safety: singularity_halt_condition must exceed singularity_slowdown_condition, got "
                f"{self.singularity_halt_condition} <= {self.singularity_slowdown_condition}"
            )
        lo, hi = np.asarray(self.workspace_low_m, float), np.asarray(self.workspace_high_m, float)
        floor = max(lo[2], self.table_top_z_m + self.table_clearance_m)
        if (hi <= lo).any() or floor >= hi[2]:
            raise ConfigError(
                f"safety: empty workspace box {self.workspace_low_m} .. {self.workspace_high_m} "
                f"with floor z = {floor} m"
            )

    @property
    def floor_z_m(self) -> float:
        """Lowest allowed tool height: the box floor or the table top plus clearance."""
        return max(self.workspace_low_m[2], self.table_top_z_m + self.table_clearance_m)

    def weight(self, flag: SafetyFlag) -> float:
        """Safety cost of one reason."""
        name = flag.name or ""
        return float(self.cost_weights.get(name, DEFAULT_COST_WEIGHTS[name]))


class SafetyDecision(NamedTuple):
    """What the monitor decided for one tick (a NamedTuple: 5x cheaper to build than a frozen dataclass)."""

    command: Vector | None
    """Joint-position targets to send (rad, arm joint order), or None: send nothing."""
    gripper_m: float | None
    """Gripper opening to command (m), or None: leave the gripper's goal unchanged (holds)."""
    intervened: bool
    """True when any reason was raised: what is sent is not exactly what the policy asked."""
    flags: int
    """Bitmask of :class:`SafetyFlag` (Step.msg ``safety_flags``)."""
    reasons: tuple[str, ...]
    """Names of the raised flags, lowest bit first (Step.msg ``safety_reasons``)."""
    safety_cost: float
    """max over raised reasons of their cost weight, in [0, 1]."""
    status: SafetyStatus
    """diagnostic_msgs level: OK, WARN (modified), ERROR (fault hold), STALE (stale state)."""
    hold: bool
    """True when the command is the (clamped) measured position."""
    scale: float
    """Fraction of the requested joint step that was kept (0 on hold, 1 when untouched)."""
    condition_number: float
    """Jacobian condition number at the predicted position (NaN when not computed)."""
    details: tuple[str, ...] = ()
    """Human-readable notes, one per intervention (for logs and /diagnostics)."""


@dataclass(frozen=True)
class EpisodeCheck:
    """Whether an episode's desired goal may be pursued at all."""

    accepted: bool
    flags: int
    reasons: tuple[str, ...]
    safety_cost: float
    detail: str = ""


class _Kin:
    """Adapter over the injected kinematics: fk(q) and pose+Jacobian in one pass when offered."""

    def __init__(
        self,
        fk: Callable[[Vector], ArrayLike],
        jacobian: Callable[[Vector], ArrayLike],
        fk_and_jacobian: Callable[[Vector], tuple[ArrayLike, ArrayLike]] | None,
        pose_and_jacobian: Callable[[Vector], tuple[ArrayLike, ArrayLike, ArrayLike]] | None = None,
    ) -> None:
        self.fk = fk
        self.jacobian = jacobian
        self.fk_and_jacobian = fk_and_jacobian
        self.pose_and_jacobian = pose_and_jacobian
        """A Kinematics-like ``pose_and_jacobian``, called directly (no adapter call per tick)."""

    def both(self, q: Vector) -> tuple[Vector, Vector]:
        if self.pose_and_jacobian is not None:
            p, _, jac = self.pose_and_jacobian(q)
            return np.asarray(p, dtype=np.float64), np.asarray(jac, dtype=np.float64)
        if self.fk_and_jacobian is not None:
            p, jac = self.fk_and_jacobian(q)
            return np.asarray(p, dtype=np.float64), np.asarray(jac, dtype=np.float64)
        return np.asarray(self.fk(q), dtype=np.float64), np.asarray(
            self.jacobian(q), dtype=np.float64
        )


class _Verdict:
    """What the checks of one tick have found so far: flags, severity, notes, whether to hold.

    Plain ints, not SafetyFlag: IntFlag arithmetic costs microseconds per operation.
    Severity: 0 OK, 1 WARN, 2 STALE, 3 ERROR (combined by maximum).
    """

    __slots__ = ("details", "flags", "hold", "severity")

    def __init__(self, upstream_flags: int, upstream_detail: str) -> None:
        self.flags = upstream_flags
        self.severity = 1 if upstream_flags & _WARN_UPSTREAM else 0
        self.details: list[str] = [upstream_detail] if upstream_detail else []
        self.hold = False

    def add(self, flag: int, severity: int, detail: str) -> None:
        self.flags |= flag
        if severity > self.severity:
            self.severity = severity
        if detail:
            self.details.append(detail)

    def at_least(self, severity: int) -> None:
        if severity > self.severity:
            self.severity = severity

    def at(self, severity: int) -> _Verdict:
        """Force the severity (a fault path that ends the tick)."""
        self.severity = severity
        return self

    def fault(self) -> None:
        """A NON_FINITE upstream or measured value: ERROR and hold."""
        self.severity = 3
        self.hold = True


class SafetyMonitor:
    """Checks every command against state, limits, workspace and singularity; see module docstring.

    Kinematics is injected: ``fk(q) -> (3,)`` tool position in m and ``jacobian(q) ->
    (6, n)`` (linear rows first), both in the base frame, plus optionally
    ``fk_and_jacobian(q) -> ((3,), (6, n))`` from one kinematics pass, or
    ``pose_and_jacobian(q) -> ((3,), (3, 3), (6, n))`` (a ``Kinematics``' own, called directly).
    :meth:`from_kinematics` wires a ``her_goals.robot.kinematics.Kinematics``-like object.
    """

    def __init__(
        self,
        config: SafetyConfig,
        *,
        joint_names: Sequence[str],
        joint_low_rad: ArrayLike,
        joint_high_rad: ArrayLike,
        velocity_limit_rad_s: ArrayLike,
        max_joint_step_rad: ArrayLike,
        control_period_s: float,
        fk: Callable[[Vector], ArrayLike],
        jacobian: Callable[[Vector], ArrayLike],
        fk_and_jacobian: Callable[[Vector], tuple[ArrayLike, ArrayLike]] | None = None,
        pose_and_jacobian: Callable[[Vector], tuple[ArrayLike, ArrayLike, ArrayLike]] | None = None,
        goal_region: GoalRegion | None = None,
    ) -> None:
        self.config = config
        self.joint_names = tuple(joint_names)
        n = len(self.joint_names)
        self.n_joints = n
        low = np.asarray(joint_low_rad, dtype=np.float64)
        high = np.asarray(joint_high_rad, dtype=np.float64)
        vmax = np.asarray(velocity_limit_rad_s, dtype=np.float64)
        step = np.broadcast_to(np.asarray(max_joint_step_rad, dtype=np.float64), (n,)).copy()
        for name, arr in (
            ("joint_low_rad", low),
            ("joint_high_rad", high),
            ("velocity_limit_rad_s", vmax),
        ):
            if arr.shape != (n,):
                raise ConfigError(f"safety monitor: {name} has shape {arr.shape}, need ({n},)")
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ConfigError(
                "safety monitor: every arm joint needs finite position limits (continuous joints "
                "are not supported: the margin check needs a bound)"
            )
        margin = config.joint_limit_margin_rad
        if (high - low <= 2 * margin).any():
            raise ConfigError(
                f"safety monitor: joint_limit_margin_rad {margin} leaves no room inside the limits "
                f"{low.tolist()} .. {high.tolist()}"
            )
        if not (
            np.isfinite(vmax).all()
            and (vmax > 0).all()
            and np.isfinite(step).all()
            and (step > 0).all()
        ):
            raise ConfigError(
                "safety monitor: velocity limits and joint step caps must be positive"
            )
        if not (math.isfinite(control_period_s) and control_period_s > 0):
            raise ConfigError(
                f"safety monitor: control_period_s must be positive, got {control_period_s}"
            )
        self.control_period_s = float(control_period_s)
        self.joint_low_rad, self.joint_high_rad = low, high
        self.band_low_rad, self.band_high_rad = low + margin, high - margin
        self.velocity_limit_rad_s = vmax * config.velocity_limit_scale
        self.max_joint_step_rad = step
        vel_step = self.velocity_limit_rad_s * self.control_period_s
        # The binding per-joint cap on |command - reference| and which limit it comes from.
        self.joint_step_cap_rad = np.minimum(step, vel_step)
        self._inv_cap = 1.0 / self.joint_step_cap_rad
        self._inv_step = 1.0 / step
        self._inv_vel_step = 1.0 / vel_step
        self._inv_vmax_measured = 1.0 / (vmax * config.measured_velocity_tolerance)
        self.workspace_low_m = np.array(
            [config.workspace_low_m[0], config.workspace_low_m[1], config.floor_z_m]
        )
        self.workspace_high_m = np.asarray(config.workspace_high_m, dtype=np.float64)
        self._box_lo = tuple(self.workspace_low_m.tolist())
        self._box_hi = tuple(self.workspace_high_m.tolist())
        self._kin = _Kin(fk, jacobian, fk_and_jacobian, pose_and_jacobian)
        self._rows = slice(0, 3) if config.singularity_jacobian_rows == "position" else slice(None)
        self._all_rows = config.singularity_jacobian_rows == "full"
        self._c_lo = config.singularity_slowdown_condition
        self._c_hi = config.singularity_halt_condition
        self._c_hi_leave = (
            self._c_lo + (self._c_hi - self._c_lo) * config.singularity_leaving_multiplier
        )
        self._leave_min = config.singularity_leaving_min_scale
        self._timeout_ns = round(config.stale_state_timeout_s * 1e9)
        self.goal_region = goal_region
        # Cost and reason names for every bitmask value, so a tick only does a lookup.
        n_masks = 1 << len(ALL_FLAGS)
        weights = [config.weight(f) for f in ALL_FLAGS]
        self._cost = [
            max((w for i, w in enumerate(weights) if m >> i & 1), default=0.0)
            for m in range(n_masks)
        ]
        self._names = [flag_names(m) for m in range(n_masks)]
        self._index_names: tuple[str, ...] | None = None
        self._index: NDArray[np.intp] | slice = slice(None)
        self._last_finite: Vector | None = None
        self._estop_latched = False
        # Scratch arrays of the per-tick checks (never handed out).
        self._bound = np.empty(n)
        self._bound2 = np.empty(n)
        self._gram: dict[int, Vector] = {}

    @classmethod
    def from_kinematics(
        cls,
        config: SafetyConfig,
        kinematics: Any,
        *,
        max_joint_step_rad: ArrayLike,
        control_period_s: float,
        goal_region: GoalRegion | None = None,
    ) -> SafetyMonitor:
        """Build a monitor from an object with ``joint_names``, ``joint_limits``,
        ``velocity_limits``, ``fk``, ``jacobian`` and optionally ``pose_and_jacobian``
        (``her_goals.robot.kinematics.Kinematics``)."""
        low, high = kinematics.joint_limits
        return cls(
            config,
            joint_names=kinematics.joint_names,
            joint_low_rad=low,
            joint_high_rad=high,
            velocity_limit_rad_s=kinematics.velocity_limits,
            max_joint_step_rad=max_joint_step_rad,
            control_period_s=control_period_s,
            fk=kinematics.fk,
            jacobian=kinematics.jacobian,
            pose_and_jacobian=getattr(kinematics, "pose_and_jacobian", None),
            goal_region=goal_region,
        )

    @property
    def fk(self) -> Callable[[Vector], ArrayLike]:
        """The monitor's forward kinematics: tool position (m, base frame) of joint positions."""
        return self._kin.fk

    # -- e-stop ---------------------------------------------------------------
    @property
    def estop_latched(self) -> bool:
        """True from the first tick that saw the stop signal until :meth:`reset_estop`."""
        return self._estop_latched

    def trigger_estop(self) -> None:
        """Latch the emergency stop (every following decision holds)."""
        self._estop_latched = True

    def reset_estop(self, *, signal_active: bool = False) -> bool:
        """Release the e-stop latch; refused (returns False) while the stop signal is still active."""
        if signal_active:
            return False
        self._estop_latched = False
        return True

    # -- episode gate -----------------------------------------------------------
    def check_episode(self, desired_goal: ArrayLike) -> EpisodeCheck:
        """Refuse an episode whose desired goal is non-finite or outside the task's goal region."""
        g = np.asarray(desired_goal, dtype=np.float64)
        region = self.goal_region
        flag = int(SafetyFlag.GOAL_OUT_OF_REGION)
        if g.ndim != 1 or not np.isfinite(g).all():
            detail = f"desired goal {g.tolist()} is not a finite vector"
            return EpisodeCheck(False, flag, self._names[flag], self._cost[flag], detail)
        if region is not None:
            if g.shape != (region.dim,):
                detail = f"desired goal has {g.size} values, the goal region {region.dim}"
                return EpisodeCheck(False, flag, self._names[flag], self._cost[flag], detail)
            if not bool(region.contains(g, margin=self.config.goal_region_margin_m)):
                detail = (
                    f"desired goal {np.round(g, 4).tolist()} outside the task region "
                    f"{list(region.low)} .. {list(region.high)} (margin {self.config.goal_region_margin_m})"
                )
                return EpisodeCheck(False, flag, self._names[flag], self._cost[flag], detail)
        return EpisodeCheck(True, 0, (), 0.0)

    # -- per tick -----------------------------------------------------------------
    def measured_position(self, state: RobotState) -> Vector | None:
        """Arm joint positions from ``state`` in arm order (may be NaN), or None if joints are missing."""
        names = state.joint_names
        if names is not self._index_names and names != self._index_names:
            self._index_names = names
            where = {n: i for i, n in enumerate(names)}
            if any(n not in where for n in self.joint_names):
                self._index_names = None
                return None
            idx = [where[n] for n in self.joint_names]
            first = idx[0]
            if idx == list(range(first, first + len(idx))):
                self._index = slice(first, first + len(idx))  # a view: no gather per tick
            else:
                self._index = np.array(idx, dtype=np.intp)
        return state.position[self._index]

    def hold(
        self, state: RobotState, now_ns: int, *, flags: int = 0, detail: str = ""
    ) -> SafetyDecision:
        """A hold decision at the measured position (what every fault path returns)."""
        return self.check(state, now_ns, None, upstream_flags=flags, upstream_detail=detail)

    def check(
        self,
        state: RobotState,
        now_ns: int,
        command: ArrayLike | None,
        *,
        gripper_m: float | None = None,
        upstream_flags: int = 0,
        estop: bool = False,
        upstream_detail: str = "",
    ) -> SafetyDecision:
        """Decide what to send this tick (see the module docstring for the rules and the invariant).

        ``command``: joint-position targets (rad, arm order) from limits + IK, or None
        when upstream had nothing to send (the decision then holds). ``upstream_flags``:
        reasons already raised by the action limits (CLIPPED, STEP_LIMITED, NON_FINITE,
        WORKSPACE); NON_FINITE there forces a hold. ``estop``: the stop signal this tick;
        once seen it latches until :meth:`reset_estop`.

        The checks run in the order of the module docstring, one method each; each later
        one only shrinks the step towards the reference.
        """
        v = _Verdict(int(upstream_flags), upstream_detail)
        if estop:
            self._estop_latched = True
        ref = self._reference_position(state, v)  # 1
        self._check_measured_velocity(state, v)
        self._check_stale(state, now_ns, v)  # 2
        self._check_estop(v)  # 3
        # 4. The command itself.
        if v.flags & _NON_FINITE:
            v.fault()
        if command is None:
            v.hold = True
        if v.hold or ref is None:
            return self._decide(ref, v, True, 0.0, math.nan)
        cmd = np.asarray(command, dtype=np.float64)
        if cmd.shape != (self.n_joints,) or not all_finite(cmd):
            v.add(_NON_FINITE, 3, "joint command is NaN/inf or misshapen")
            return self._decide(ref, v, True, 0.0, math.nan)
        cmd, scale = self._cap_joint_step(ref, cmd, v)  # 5
        # Margin band of step 7, widened to the reference for joints already outside it.
        lo = np.minimum(self.band_low_rad, ref)
        hi = np.maximum(self.band_high_rad, ref)
        try:
            p_next: Vector | None
            p_next, jac = self._kin.both(cmd)
            cond = self._condition(jac)
            stepped = self._check_singularity(ref, cmd, cond, v)  # 6
            if stepped is None:
                return self._decide(ref, v, True, 0.0, cond)
            cmd, sing = stepped
            if sing is not None:
                scale *= sing
                p_next = None  # the tool position must be recomputed at the scaled command
            clamped = self._clamp_to_joint_limits(cmd, lo, hi, v)  # 7
            if clamped is not cmd:
                cmd, p_next = clamped, None
            kept = self._keep_in_workspace(ref, cmd, p_next, v)  # 8
            if kept is None:
                return self._decide(ref, v, True, 0.0, cond)
            cmd, fraction = kept
            scale *= fraction
        except Exception as exc:  # kinematics raised on a finite command: do not move
            v.add(_NON_FINITE, 0, f"kinematics failed: {exc!r}")
            return self._decide(ref, v.at(3), True, 0.0, math.nan)

        # 9. Re-assert the invariant against rounding (no-ops in exact arithmetic). The clip
        # ufunc is maximum then minimum in one call: the same bits as the two.
        cap = self.joint_step_cap_rad
        out = clip(cmd, np.subtract(ref, cap, out=self._bound), np.add(ref, cap, out=self._bound2))
        clip(out, lo, hi, out=out)
        return self._decide(out, v, False, scale, cond, gripper_m)

    # -- the checks, in order ---------------------------------------------------------
    def _reference_position(self, state: RobotState, v: _Verdict) -> Vector | None:
        """1. The measured arm position (or the last finite one), clamped into the hard limits."""
        q = self.measured_position(state)
        if q is None or q.shape != (self.n_joints,):
            v.add(_NON_FINITE, 3, f"joint state lacks arm joints {list(self.joint_names)}")
            v.hold = True
            q_ref = self._last_finite
        elif not all_finite(q):
            v.add(_NON_FINITE, 3, "measured joint position is NaN/inf: holding the last finite one")
            v.hold = True
            q_ref = self._last_finite
        else:
            q_ref = q.copy()
            self._last_finite = q_ref
        if q_ref is None:
            v.details.append("no finite joint position measured yet: sending nothing")
            return None
        ref = clip(q_ref, self.joint_low_rad, self.joint_high_rad)
        if ref.tobytes() != q_ref.tobytes():
            v.add(_JOINT_LIMIT, 3, f"measured joints beyond hard limits: {self._beyond(q_ref)}")
        return ref

    def _check_measured_velocity(self, state: RobotState, v: _Verdict) -> None:
        """Measured speed above its limit: flagged; nothing to command differently."""
        vel = state.velocity
        if not (vel.size and vel.size == state.position.size):
            return
        ratios = (np.abs(vel[self._index]) * self._inv_vmax_measured).tolist()
        if not all(map(math.isfinite, ratios)):
            v.add(_NON_FINITE, 3, "measured joint velocity is NaN/inf")
            v.hold = True
        elif max(ratios) > 1.0:
            v.add(_VELOCITY_LIMIT, 1, "measured joint speed above its limit")

    def _check_stale(self, state: RobotState, now_ns: int, v: _Verdict) -> None:
        """2. A joint state older than the timeout (or stamped in the future): hold."""
        age_ns = now_ns - state.stamp_ns
        if age_ns > self._timeout_ns or age_ns < -self._timeout_ns:
            v.add(
                _STALE_STATE,
                2,
                f"joint state is {age_ns * 1e-9:.3f} s old (timeout {self._timeout_ns * 1e-9:g} s)",
            )
            v.hold = True

    def _check_estop(self, v: _Verdict) -> None:
        """3. A latched e-stop: hold until reset."""
        if self._estop_latched:
            v.add(_ESTOP, 3, "e-stop latched: holding until reset")
            v.hold = True

    def _cap_joint_step(self, ref: Vector, cmd: Vector, v: _Verdict) -> tuple[Vector, float]:
        """5. Joint step and commanded velocity caps: the whole delta is scaled, direction kept."""
        delta = cmd - ref
        abs_delta = np.abs(delta)
        if max(abs_delta.tolist()) > 1e6:
            # Absurd steps are clipped first so the products below cannot overflow;
            # the step ends up within one joint step of ref anyway.
            np.minimum(abs_delta, 1e6, out=abs_delta)
            delta = np.copysign(abs_delta, delta)
        worst = max((abs_delta * self._inv_cap).tolist())
        if worst <= _AT_CAP:  # within rounding of the cap: the final clip takes care of it
            return cmd, 1.0
        scale = 1.0 / worst
        if max((abs_delta * self._inv_step).tolist()) > _AT_CAP:
            v.flags |= _STEP_LIMITED
        if max((abs_delta * self._inv_vel_step).tolist()) > _AT_CAP:
            v.add(_VELOCITY_LIMIT, 0, f"commanded joint speed scaled to {scale:.3g} of the request")
        v.at_least(1)
        return ref + scale * delta, scale

    def _check_singularity(
        self, ref: Vector, cmd: Vector, cond: float, v: _Verdict
    ) -> tuple[Vector, float | None] | None:
        """6. Jacobian condition at the predicted position: slow down, or None to halt.

        Returns (command, speed scale), the scale None when the condition is in the free band.
        """
        if cond <= self._c_lo:  # False for NaN
            return cmd, None
        sing = self._singularity_scale(ref, cond)
        v.flags |= _SINGULARITY
        if sing <= 0.0:
            v.add(0, 3, f"Jacobian condition {cond:.1f}: halting (towards singularity)")
            return None
        v.add(0, 1, f"Jacobian condition {cond:.1f}: speed scaled by {sing:.3f}")
        return ref + sing * (cmd - ref), sing

    def _clamp_to_joint_limits(self, cmd: Vector, lo: Vector, hi: Vector, v: _Verdict) -> Vector:
        """7. Joint limits minus the margin, per joint; never further out than the reference.

        Returns ``cmd`` itself when nothing was clamped.
        """
        clamped = np.minimum(np.maximum(cmd, lo), hi)
        if clamped.tobytes() == cmd.tobytes():
            return cmd
        v.add(
            _JOINT_LIMIT,
            1,
            f"joint command clamped to the {self.config.joint_limit_margin_rad} rad margin",
        )
        return clamped

    def _keep_in_workspace(
        self, ref: Vector, cmd: Vector, p_next: Vector | None, v: _Verdict
    ) -> tuple[Vector, float] | None:
        """8. Workspace box and table floor on the predicted tool position; None to hold."""
        if p_next is None:
            p_next = np.asarray(self._kin.fk(cmd), dtype=np.float64)
        if self._inside(p_next):
            return cmd, 1.0
        cmd, t, note = self._workspace(ref, cmd, p_next)
        v.add(_WORKSPACE, 1, note)
        if t == 0.0:
            return None
        return cmd, t

    # -- helpers ------------------------------------------------------------------
    def _decide(
        self,
        command: Vector | None,
        v: _Verdict,
        hold: bool,
        scale: float,
        cond: float,
        gripper_m: float | None = None,
    ) -> SafetyDecision:
        flags = v.flags
        if flags & _STALE_STATE and v.severity < 3:
            status = SafetyStatus.STALE
        else:
            status = _STATUS_BY_SEVERITY[v.severity]
        return SafetyDecision(
            command=command,
            gripper_m=None if hold else gripper_m,
            intervened=flags != 0,
            flags=flags,
            reasons=self._names[flags],
            safety_cost=self._cost[flags],
            status=status,
            hold=hold,
            scale=scale,
            condition_number=cond,
            details=tuple(v.details),
        )

    def _condition(self, jac: Vector) -> float:
        """sigma_max / sigma_min of the Jacobian rows, from the eigenvalues of J J^T."""
        if jac.ndim != 2:
            return math.nan
        rows = jac if self._all_rows else jac[self._rows]
        # The smaller Gram matrix carries the singular values squared (J J^T for 6x7).
        if rows.shape[0] <= rows.shape[1]:
            gram = self._gram.get(rows.shape[0])
            if gram is None:
                gram = self._gram[rows.shape[0]] = np.empty((rows.shape[0], rows.shape[0]))
            np.matmul(rows, rows.T, out=gram)
        else:
            gram = rows.T @ rows
        eig = _eigvalsh(gram).tolist()  # ascending
        smallest = eig[0]
        if not smallest > 0.0:
            return math.nan if math.isnan(smallest) else math.inf
        return math.sqrt(eig[-1] / smallest)

    def _singularity_scale(self, ref: Vector, cond_next: float) -> float:
        """Servo's singularity scaling, with the direction measured along the actual step.

        Towards the singularity (condition at the predicted position above the one at
        the reference): ``1 - (c - lo) / (hi - lo)``, halt at ``hi``. Away from it: the
        band is ``leaving_multiplier`` times wider and the scale never drops below
        ``leaving_min_scale``, so an arm stopped near a singularity can always back out
        (Servo halts whatever the direction once past the hard stop).
        """
        if math.isnan(cond_next):
            return 0.0
        cond_now = self._condition(np.asarray(self._kin.jacobian(ref), dtype=np.float64))
        if math.isnan(cond_now):
            return 0.0
        if cond_next > cond_now:
            if cond_next >= self._c_hi:
                return 0.0
            return 1.0 - (cond_next - self._c_lo) / (self._c_hi - self._c_lo)
        if not math.isfinite(cond_now):
            return self._leave_min
        s = 1.0 - (cond_now - self._c_lo) / (self._c_hi_leave - self._c_lo)
        return min(1.0, max(self._leave_min, s))

    def _inside(self, p: Vector) -> bool:
        (lx, ly, lz), (hx, hy, hz) = self._box_lo, self._box_hi
        x, y, z = p.tolist()
        return lx <= x <= hx and ly <= y <= hy and lz <= z <= hz

    def _violation(self, p: Vector) -> float:
        excess = np.maximum(self.workspace_low_m - p, 0.0) + np.maximum(
            p - self.workspace_high_m, 0.0
        )
        return float(np.sqrt(excess @ excess))

    def _workspace(self, ref: Vector, cmd: Vector, p_next: Vector) -> tuple[Vector, float, str]:
        """Shrink the step so the tool stays in the box; returns (command, kept fraction, note)."""
        p_now = np.asarray(self._kin.fk(ref), dtype=np.float64)
        v_now = self._violation(p_now)
        if v_now > 0.0:
            # Already outside (tracking overshoot, a push, a start outside): allow only
            # steps that do not take the tool further out.
            if self._violation(p_next) <= v_now:
                return cmd, 1.0, f"tool {v_now * 1e3:.1f} mm outside the workspace, moving back"
            return ref, 0.0, f"tool {v_now * 1e3:.1f} mm outside the workspace: holding"
        # Inside now: cut the step where the straight tool path leaves the box, then
        # verify with FK (the joint path is not straight in Cartesian space).
        t = self._exit_fraction(p_now, p_next)
        for frac in (t, 0.5 * t):
            if frac <= 1e-9:
                break
            candidate = ref + frac * (cmd - ref)
            if self._inside(np.asarray(self._kin.fk(candidate), dtype=np.float64)):
                return candidate, frac, f"step cut to {frac:.3f} at the workspace boundary"
        return ref, 0.0, "step would leave the workspace: holding"

    def _exit_fraction(self, p0: Vector, p1: Vector) -> float:
        """Largest t in [0, 1] with p0 + t (p1 - p0) inside the box (p0 inside)."""
        d = p1 - p0
        t = 1.0
        for axis in range(3):
            da = float(d[axis])
            if da > 0.0:
                t = min(t, (float(self.workspace_high_m[axis]) - float(p0[axis])) / da)
            elif da < 0.0:
                t = min(t, (float(self.workspace_low_m[axis]) - float(p0[axis])) / da)
        return max(0.0, t)

    def _beyond(self, q: Vector) -> dict[str, float]:
        out = {}
        for name, v, lo, hi in zip(self.joint_names, q, self.joint_low_rad, self.joint_high_rad):
            if v < lo or v > hi:
                out[name] = round(float(v), 4)
        return out


_NON_FINITE = int(SafetyFlag.NON_FINITE)
_JOINT_LIMIT = int(SafetyFlag.JOINT_LIMIT)
_VELOCITY_LIMIT = int(SafetyFlag.VELOCITY_LIMIT)
_STEP_LIMITED = int(SafetyFlag.STEP_LIMITED)
_STALE_STATE = int(SafetyFlag.STALE_STATE)
_ESTOP = int(SafetyFlag.ESTOP)
_SINGULARITY = int(SafetyFlag.SINGULARITY)
_WORKSPACE = int(SafetyFlag.WORKSPACE)
_AT_CAP = 1.0 + SCALE_TOLERANCE
_WARN_UPSTREAM = int(SafetyFlag.STEP_LIMITED | SafetyFlag.WORKSPACE)

_STATUS_BY_SEVERITY = {
    0: SafetyStatus.OK,
    1: SafetyStatus.WARN,
    2: SafetyStatus.STALE,
    3: SafetyStatus.ERROR,
}
