"""One control tick, as a pure function of the latest state: observation -> actor -> limits -> IK -> safety.

Per tick (ARCHITECTURE.md, "Safety is in the loop": nothing reaches the arm any other way)::

    obs     = observe(state, previous_state)           NaN/inf or error -> NON_FINITE hold
    raw     = actor(obs, desired_goal)                 policy units, [-1, 1]
    limited = limits.limit_action(raw)                 clip, m per tick, gripper range
    step    = clip(tcp + step, workspace) - tcp        slide along the box (LeRobot-style bounds)
    q_tgt   = ik(q_measured, step)                     injected (her_goals.robot.ik.DifferentialIK)
    q_cmd   = limits.limit_joint_step(q_tgt, q_meas)   direction-preserving joint step cap
    decision = monitor.check(state, now, q_cmd, ...)   the last word; see safety.py

:func:`pipeline_for` wires a :class:`TickPipeline` for a task rig (``her_goals.robot.rig``) from
the settings: the ROS policy node, ``her demo`` and ``her sim`` all call it (:func:`build_pipeline`
is the same from loose parts, for arms that are not a MuJoCo model: the toy arm of the tests and
benchmarks). :class:`CachedKinematics` shares one kinematics pass per joint vector between
observation, IK and the monitor.

Where a tick's time goes (push task, 3x256 numpy actor, ``bench/bench_safety.py --ticks 20000
--profile 20000``, one 2-core machine shared with training runs at load 3.6-6.5; p50 per stage)::

    stage      before the speed work (4993b05)   now     what is in it
    observe    22.4-23.2 us                      15-17   kinematics pass at the measured joints
                                                         (~4 us, ~2 of it MuJoCo's), 23 floats
    actor      20.9-21.1                         19-20   4 float32 matmuls (~9 us of BLAS)
    limits_ik  33.3-34.7                         30-31   DLS: 5 matmuls, Cholesky, 2 MuJoCo quat
                                                         calls; the pass is the observation's
    safety     30.9-32.3                         27-28   a 2nd kinematics pass (at the command),
                                                         J J^T and its 6x6 eigenvalues
    whole      114-118 (p99 178-205 FIFO)        96-103 (p99 154-169 FIFO)

cProfile counts 178.5 Python-level calls per tick before and 174 now (it does not see numpy
ufunc calls, which were the cut: ~25 fewer of ~0.3-2 us each) and 2.11 kinematics passes per
tick: one at the measured joints, shared by the observation, the IK and the monitor's look at
the reference, and one at the predicted command, a different joint vector the monitor's
singularity and workspace checks are about (0.11: a singularity slow-down or a cut step,
checked again at the scaled command). What is left is mostly numpy's per-call cost on 3- to
7-vectors and 6x7 matrices; replacing the BLAS products by MuJoCo's ``mju_mul*`` would save
~3 us more but change the last bits of the joint targets, and the tick is kept bit for bit
(tests/her_policy/test_tick_regression.py on 5000 ticks; ``bench/tick_decisions.py --ticks
100000 --against FILE`` compares a 10^5-tick soak with one written by older code: identical).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import ConfigError
from her_goals.extractors import RobotState
from her_goals.robot.ik import DEFAULT_IK, DifferentialIK, IKSettings
from her_goals.robot.rig import TaskRig
from her_goals.safety_flags import SafetyFlag
from her_goals.sampling import GoalRegion
from her_goals.vector_ops import clip
from her_policy.deploy.limits import ActionLimits, all_finite
from her_policy.deploy.safety import SafetyDecision, SafetyMonitor
from her_policy.deploy.settings import SafetyStackConfig

Vector = NDArray[np.float64]

_NON_FINITE = int(SafetyFlag.NON_FINITE)
_WORKSPACE = int(SafetyFlag.WORKSPACE)
_STEP_LIMITED = int(SafetyFlag.STEP_LIMITED)
_ESTOP = int(SafetyFlag.ESTOP)

STAGES: tuple[str, ...] = ("observe", "actor", "limits_ik", "safety")
"""Timed stages of one tick, in order (the cadence report's per-stage breakdown)."""


# -- one tick ------------------------------------------------------------------------------


class Observed(NamedTuple):
    """Observation and achieved goal of a state (None where the state gave none)."""

    observation: Vector | None
    achieved_goal: Vector | None


class TickResult(NamedTuple):
    """Everything one tick produced (what the Step record and the cadence report need)."""

    decision: SafetyDecision
    observation: Vector | None
    """The policy observation, or None when it could not be built from the state."""
    achieved_goal: Vector | None
    raw_action: Vector
    """Policy output before limits (NaN when the actor did not run)."""
    applied_action: Vector
    """The action in policy units that was applied: limited, scaled by the monitor, 0 on hold."""
    stage_ns: tuple[int, int, int, int]
    """Time spent in observe, actor, limits+IK, safety (ns)."""


class TickPipeline:
    """One tick: observation -> actor -> action limits -> IK -> joint step -> safety monitor.

    ``observe(state, previous)`` builds the policy observation, ``actor(obs, goal)`` is
    a :class:`her_policy.deploy.runtime.RuntimeActor` (or any callable), ``ik(q, step_m)``
    turns a tool step into joint targets, ``achieved_goal(state)`` extracts the goal
    (for the Step record). ``tool_position`` (default: the monitor's FK) gives the
    current tool position for the workspace pre-clip; ``tcp_slice`` takes it from the
    observation instead when the observation carries it (saves one FK per tick).
    """

    def __init__(
        self,
        *,
        actor: Callable[[Vector, Vector], ArrayLike],
        observe: Callable[[RobotState, RobotState | None], ArrayLike],
        limits: ActionLimits,
        ik: Callable[[Vector, Vector], ArrayLike],
        monitor: SafetyMonitor,
        achieved_goal: Callable[[RobotState], ArrayLike] | None = None,
        tool_position: Callable[[Vector], ArrayLike] | None = None,
        tcp_slice: slice | None = None,
        clip_target_to_workspace: bool = True,
        hold_gripper_shut: bool = False,
    ) -> None:
        if limits.n_joints != monitor.n_joints:
            raise ConfigError(
                f"limits are for {limits.n_joints} joints, the safety monitor for {monitor.n_joints}"
            )
        self.actor = actor
        self.observe = observe
        self.limits = limits
        self.ik = ik
        self.monitor = monitor
        self.achieved_goal = achieved_goal
        self.tool_position = tool_position if tool_position is not None else monitor.fk
        self.tcp_slice = tcp_slice
        self.clip_target_to_workspace = clip_target_to_workspace
        self.hold_gripper_shut = hold_gripper_shut
        """Command the smallest opening whatever the actor asks (a task's ``block_gripper``)."""
        # The workspace box shrunk by 1 mm, so a clipped target is not on the monitor's boundary.
        self._box_lo = monitor.workspace_low_m + 1e-3
        self._box_hi = monitor.workspace_high_m - 1e-3
        self._nan_action = np.full(limits.config.action_dim, np.nan)
        self._max_ee = limits.config.max_ee_step_m
        self._gi = limits.config.gripper_index
        self._last_gripper_action = 0.0
        self._obs_dim = 0

    @property
    def obs_dim(self) -> int:
        """Length of the observations seen so far (0 before the first)."""
        return self._obs_dim

    def observe_only(self, state: RobotState, previous: RobotState | None) -> Observed:
        """Observation and achieved goal of a state without acting (the last step's next state)."""
        obs: Vector | None = None
        achieved: Vector | None = None
        try:
            obs = np.asarray(self.observe(state, previous), dtype=np.float64)
        except Exception:
            obs = None
        if self.achieved_goal is not None:
            try:
                achieved = np.asarray(self.achieved_goal(state), dtype=np.float64)
            except Exception:
                achieved = None
        return Observed(obs, achieved)

    def reset(self, gripper_action: float = 0.0) -> None:
        """Start of an episode: the gripper action recorded for holds (its goal is kept)."""
        self._last_gripper_action = float(gripper_action)

    @staticmethod
    def _finite(x: Vector) -> bool:
        return all_finite(x) if x.ndim == 1 else bool(np.isfinite(x).all())

    def tick(
        self,
        state: RobotState,
        now_ns: int,
        desired_goal: Vector,
        *,
        previous: RobotState | None = None,
        estop: bool = False,
    ) -> TickResult:
        """Run one tick; never raises on bad data (a failure anywhere is a NON_FINITE hold)."""
        clock = time.perf_counter_ns
        t0 = clock()
        flags = 0
        detail = ""
        obs: Vector | None = None
        try:
            obs = np.asarray(self.observe(state, previous), dtype=np.float64)
            self._obs_dim = obs.size
            if not self._finite(obs):
                flags = _NON_FINITE
                detail = "observation is NaN/inf"
        except Exception as exc:
            flags = _NON_FINITE
            detail = f"observation failed: {exc}"
        t1 = clock()
        raw = self._nan_action
        if not flags:
            try:
                raw = np.asarray(self.actor(obs, desired_goal), dtype=np.float64)  # type: ignore[arg-type]
            except Exception as exc:
                flags = _NON_FINITE
                detail = f"actor failed: {exc}"
        t2 = clock()
        command: Vector | None = None
        gripper_m: float | None = None
        limited_action = raw
        step_fraction = 1.0
        if not flags:
            limited = self.limits.limit_action(raw)
            flags = limited.flags
            limited_action = limited.action
            gripper_m = limited.gripper_m
            if self.hold_gripper_shut and gripper_m is not None:
                gripper_m = self.limits.config.gripper_range_m[0]
            if not flags & _NON_FINITE:
                try:
                    command, flags, step_fraction, detail = self._command(
                        state, obs, limited.ee_step_m, flags
                    )
                except Exception as exc:
                    flags |= _NON_FINITE
                    detail = f"IK failed: {exc}"
                    command = None
            else:
                detail = "policy output is NaN/inf"
        t3 = clock()
        decision = self.monitor.check(
            state,
            now_ns,
            command,
            gripper_m=gripper_m,
            upstream_flags=flags,
            estop=estop,
            upstream_detail=detail,
        )
        t4 = clock()
        applied = self.applied_action(limited_action, decision, step_fraction)
        achieved = None
        if self.achieved_goal is not None:
            try:
                achieved = np.asarray(self.achieved_goal(state), dtype=np.float64)
            except Exception:
                achieved = None
        return TickResult(
            decision, obs, achieved, raw, applied, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
        )

    def _command(
        self, state: RobotState, obs: Vector | None, step: Vector, flags: int
    ) -> tuple[Vector | None, int, float, str]:
        q = self.monitor.measured_position(state)
        if q is None or not self._finite(q):
            return None, flags | _NON_FINITE, 1.0, "measured joint position unusable for IK"
        fraction = 1.0
        detail = ""
        if self.clip_target_to_workspace:
            if self.tcp_slice is not None and obs is not None:
                tcp = obs[self.tcp_slice]
            else:
                tcp = np.asarray(self.tool_position(q), dtype=np.float64)
            target = tcp + step
            clipped = clip(target, self._box_lo, self._box_hi)
            if clipped.tobytes() != target.tobytes():
                flags |= _WORKSPACE
                new_step = clipped - tcp
                norm = math.sqrt(float(new_step @ new_step))
                if norm > self._max_ee:
                    new_step *= self._max_ee / norm
                    flags |= _STEP_LIMITED
                old = math.sqrt(float(step @ step))
                fraction = math.sqrt(float(new_step @ new_step)) / old if old > 0.0 else 0.0
                detail = "tool target clipped into the workspace box"
                step = new_step
        q_target = np.asarray(self.ik(q, step), dtype=np.float64)
        q_cmd, step_flags = self.limits.limit_joint_step(q_target, q)
        return q_cmd, flags | step_flags, fraction, detail

    def applied_action(self, limited_action: Vector, decision: SafetyDecision, fraction: float = 0.0) -> Vector:
        """The action in policy units that the arm was actually asked to do (zeros and the last
        gripper action on a hold)."""
        if decision.hold or not all_finite(limited_action):
            applied = np.zeros_like(self._nan_action)
            if self._gi >= 0:
                applied[self._gi] = self._last_gripper_action
            return applied
        applied = limited_action.copy()
        # Joint-space scaling maps (to first order) to the same scaling of the tool step.
        applied[:3] *= fraction * decision.scale
        if self._gi >= 0:
            self._last_gripper_action = float(applied[self._gi])
        return applied


class CachedKinematics:
    """Shares one kinematics pass per joint vector between observation, IK and safety monitor.

    Wraps a ``her_goals.robot.kinematics.Kinematics``-like object. ``pose_and_jacobian(q)``
    is memoised for the last two ``q``, and ``fk(q)`` computes the full pose and Jacobian
    on a miss: in a tick the observation's FK of the measured joints is followed by the
    IK's Jacobian at the same joints, so that pass is done once. Limits and the home
    posture are read once (the wrapped properties copy on every access). Returned
    arrays are read-only: they are shared between callers.

    ``copy=False`` trusts the wrapped ``pose_and_jacobian`` to return fresh arrays on
    every call (``Kinematics`` and ``ToyArm`` do) and only marks them read-only.
    """

    def __init__(self, kinematics: Any, *, copy: bool = True) -> None:
        self.kinematics = kinematics
        self._copy = copy
        self.joint_names: tuple[str, ...] = tuple(kinematics.joint_names)
        low, high = kinematics.joint_limits
        self._limits = (_frozen(low), _frozen(high))
        self._vmax = _frozen(kinematics.velocity_limits)
        home = getattr(kinematics, "home_qpos", None)
        self._home = None if home is None else _frozen(home)
        # The last two joint vectors (a tick visits the measured one, then the command,
        # then the measured one again when the monitor checks a singularity or the box).
        self._key = b""
        self._pose: tuple[Vector, Vector, Vector] | None = None
        self._key2 = b""
        self._pose2: tuple[Vector, Vector, Vector] | None = None
        self.hits = 0
        self.misses = 0

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def joint_limits(self) -> tuple[Vector, Vector]:
        return self._limits

    @property
    def velocity_limits(self) -> Vector:
        return self._vmax

    @property
    def home_qpos(self) -> Vector:
        if self._home is None:
            raise AttributeError("the wrapped kinematics has no home_qpos")
        return self._home

    def pose_and_jacobian(self, q: ArrayLike) -> tuple[Vector, Vector, Vector]:
        qa = np.asarray(q, dtype=np.float64)
        key = qa.tobytes()
        if key == self._key and self._pose is not None:
            self.hits += 1
            return self._pose
        if key == self._key2 and self._pose2 is not None:
            # The one before: the monitor's Jacobian (or FK) at the reference after its pass
            # at the predicted command.
            self.hits += 1
            self._key, self._key2 = self._key2, self._key
            self._pose, self._pose2 = self._pose2, self._pose
            return self._pose
        self.misses += 1
        p, rot, jac = self.kinematics.pose_and_jacobian(qa)
        if self._copy:
            pose = (_frozen(p), _frozen(rot), _frozen(jac))
        else:
            for arr in (p, rot, jac):
                arr.flags.writeable = False
            pose = (p, rot, jac)
        self._key2, self._pose2 = self._key, self._pose
        self._key, self._pose = key, pose
        return pose

    def fk(self, q: ArrayLike) -> Vector:
        return self.pose_and_jacobian(q)[0]

    def pose(self, q: ArrayLike) -> tuple[Vector, Vector]:
        p, rot, _ = self.pose_and_jacobian(q)
        return p, rot

    def jacobian(self, q: ArrayLike) -> Vector:
        return self.pose_and_jacobian(q)[2]


def _frozen(x: ArrayLike) -> Vector:
    arr = np.array(x, dtype=np.float64)  # a private copy
    arr.flags.writeable = False
    return arr


def build_pipeline(
    config: SafetyStackConfig,
    *,
    actor: Callable[[Vector, Vector], ArrayLike],
    observe: Callable[[RobotState, RobotState | None], ArrayLike],
    kinematics: Any,
    ik: Callable[[Vector, Vector], ArrayLike],
    achieved_goal: Callable[[RobotState], ArrayLike] | None = None,
    goal_region: GoalRegion | None = None,
    tcp_slice: slice | None = None,
    hold_gripper_shut: bool = False,
) -> TickPipeline:
    """Wire limits, monitor and pipeline from one :class:`SafetyStackConfig`.

    ``kinematics`` has ``joint_names``, ``joint_limits``, ``velocity_limits``, ``fk``,
    ``jacobian`` (and optionally ``pose_and_jacobian``), like
    ``her_goals.robot.kinematics.Kinematics`` or :class:`her_policy.deploy.toy_arm.ToyArm`.
    ``hold_gripper_shut``: the task's ``block_gripper`` (push: trained with the fingers shut).
    """
    vel_step = (
        np.asarray(kinematics.velocity_limits, dtype=np.float64)
        * config.safety.velocity_limit_scale
        * config.loop.period_s
    )
    limits = ActionLimits(
        config.limits, len(kinematics.joint_names), velocity_step_cap_rad=vel_step
    )
    monitor = SafetyMonitor.from_kinematics(
        config.safety,
        kinematics,
        max_joint_step_rad=config.limits.joint_step_caps_rad(len(kinematics.joint_names)),
        control_period_s=config.loop.period_s,
        goal_region=goal_region,
    )
    return TickPipeline(
        actor=actor,
        observe=observe,
        limits=limits,
        ik=ik,
        monitor=monitor,
        achieved_goal=achieved_goal,
        tcp_slice=tcp_slice,
        clip_target_to_workspace=config.loop.clip_target_to_workspace,
        hold_gripper_shut=hold_gripper_shut,
    )


def pipeline_for(
    rig: TaskRig,
    config: SafetyStackConfig,
    actor: Callable[[Vector, Vector], ArrayLike],
    *,
    ik_settings: IKSettings = DEFAULT_IK,
) -> TickPipeline:
    """The control pipeline of a task on an arm: the one way the policy node and the ROS-free
    loop (``her demo``, ``her sim``) wire it.

    The rig gives the observation (its ``control_period_s`` is the velocities' and the IK's
    period), the achieved goal, the goal region the monitor gates episodes with, the tool slice
    and the held-shut gripper; ``config`` the loop, limits and monitor. One kinematics pass per
    tick is shared by the observation, the IK and the monitor (:class:`CachedKinematics`).
    """
    # Typed Any: CachedKinematics has Kinematics' interface without being its subclass.
    kin: Any = CachedKinematics(rig.kinematics, copy=False)
    period_s = rig.control_period_s
    observe = rig.observation_builder(kin)

    ik = DifferentialIK(kin, period_s, settings=ik_settings)  # cartesian_step, buffers kept
    return build_pipeline(
        config,
        actor=actor,
        observe=observe,
        kinematics=kin,
        ik=ik,
        achieved_goal=rig.achieved_goal_extractor(kin),
        goal_region=rig.goal_region,
        tcp_slice=rig.tcp_slice,
        hold_gripper_shut=rig.hold_gripper_shut,
    )
