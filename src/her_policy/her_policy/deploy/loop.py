"""Control-loop runner without ROS: state -> actor -> limits -> IK -> safety -> command, at a fixed rate.

:class:`TickPipeline` is one tick of the policy node, as a pure function of the latest
state and the time; :class:`ControlLoop` runs it at ``rate_hz`` against injected I/O
(``read_state``, ``send_command``, ``read_estop``), records every step (with its
safety flags, cost and reasons) through a :class:`StepSink` and reports its cadence
like LeRobot's control loop: achieved rate, ticks over the budget, p50/p99 tick time
and where the time went.

The ROS ``policy_node`` wires the same objects to ``/joint_states``, the command
topic, ``/her/estop`` and ``/her/step``; ``her demo`` wires them to ``ArmSim``.

Per tick (DESIGN.md rule 5: nothing reaches the arm any other way)::

    obs     = observe(state, previous_state)           NaN/inf or error -> NON_FINITE hold
    raw     = actor(obs, desired_goal)                 policy units, [-1, 1]
    limited = limits.limit_action(raw)                 clip, m per tick, gripper range
    step    = clip(tcp + step, workspace) - tcp        slide along the box (LeRobot-style bounds)
    q_tgt   = ik(q_measured, step)                     injected (her_goals.robot.ik.cartesian_step)
    q_cmd   = limits.limit_joint_step(q_tgt, q_meas)   direction-preserving joint step cap
    decision = monitor.check(state, now, q_cmd, ...)   the last word; see safety.py
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.config import load_dataclass
from her_goals.errors import ConfigError
from her_goals.extractors import RobotState
from her_goals.safety_flags import ALL_FLAGS, SafetyFlag, SafetyStatus, worse
from her_goals.sampling import GoalRegion
from her_goals.spaces import GoalSpace
from her_policy.deploy.limits import ActionLimits, ActionLimitsConfig, all_finite
from her_policy.deploy.safety import SafetyConfig, SafetyDecision, SafetyMonitor

Vector = NDArray[np.float64]
log = logging.getLogger("her_policy.deploy.loop")

_NON_FINITE = int(SafetyFlag.NON_FINITE)
_WORKSPACE = int(SafetyFlag.WORKSPACE)
_STEP_LIMITED = int(SafetyFlag.STEP_LIMITED)
_ESTOP = int(SafetyFlag.ESTOP)

STAGES: tuple[str, ...] = ("observe", "actor", "limits_ik", "safety")
"""Timed stages of one tick, in order (the cadence report's per-stage breakdown)."""


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlLoopConfig:
    """How the loop runs (units in the key names)."""

    rate_hz: float = 25.0
    """Tick rate; one tick is one policy step (the task's control rate)."""
    max_ticks_per_episode: int = 0
    """Episode length in ticks (a time limit: the last step is truncated, not terminal);
    0 = the task's episode length (her_goals.tasks)."""
    clip_target_to_workspace: bool = True
    """Clip the tool target into the workspace box before IK, so the arm slides along it."""
    abort_on_estop: bool = True
    """End the episode (ABORT, reason 'estop') once the e-stop latches; the hold is sent first."""
    thread_priority: int = 0
    """SCHED_FIFO priority of the loop thread when running in real time (MoveIt Servo: 40);
    0 leaves the scheduler alone. Needs CAP_SYS_NICE; without it a warning is logged."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ConfigError(f"loop: rate_hz must be a positive number, got {self.rate_hz}")
        if not 0 <= self.thread_priority <= 99:
            raise ConfigError(f"loop: thread_priority must be in 0..99, got {self.thread_priority}")
        if self.max_ticks_per_episode < 0:
            raise ConfigError(
                f"loop: max_ticks_per_episode must be >= 0 (0 = the task's episode length), "
                f"got {self.max_ticks_per_episode}"
            )

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


@dataclass(frozen=True)
class SafetyStackConfig:
    """``config/safety.yaml``: the loop, the action limits and the safety monitor."""

    loop: ControlLoopConfig = field(default_factory=ControlLoopConfig)
    limits: ActionLimitsConfig = field(default_factory=ActionLimitsConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)


def set_realtime_priority(priority: int) -> bool:
    """Run the calling thread under SCHED_FIFO at ``priority`` (1..99); False if not permitted.

    What MoveIt Servo does for its loop thread (``thread_priority: 40``): the tick is no
    longer preempted by ordinary processes, which is what bounds its p99 on a busy machine.
    """
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError) as exc:
        log.warning("could not set SCHED_FIFO priority %d for the control loop: %s", priority, exc)
        return False
    return True


def default_config_path() -> Path:
    """``config/safety.yaml`` of the repository (when run from a source checkout)."""
    return Path(__file__).resolve().parents[4] / "config" / "safety.yaml"


def load_safety_config(path: str | Path | None = None) -> SafetyStackConfig:
    """Load :class:`SafetyStackConfig` strictly (unknown keys are errors with a suggestion)."""
    return load_dataclass(SafetyStackConfig, default_config_path() if path is None else path)


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
        self.tool_position = tool_position if tool_position is not None else monitor._kin.fk
        self.tcp_slice = tcp_slice
        self.clip_target_to_workspace = clip_target_to_workspace
        # The workspace box shrunk by 1 mm, so a clipped target is not on the monitor's boundary.
        self._box_lo = monitor.workspace_low_m + 1e-3
        self._box_hi = monitor.workspace_high_m - 1e-3
        self._nan_action = np.full(limits.config.action_dim, np.nan)
        self._max_ee = limits.config.max_ee_step_m
        self._per_action = limits.config.ee_step_per_action_m
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
        applied = self._applied(limited_action, decision, step_fraction)
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
            clipped = np.minimum(np.maximum(target, self._box_lo), self._box_hi)
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

    def _applied(self, limited_action: Vector, decision: SafetyDecision, fraction: float) -> Vector:
        """The action in policy units that the arm was actually asked to do."""
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


# -- recording ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
    """One step as ``her_interfaces/Step`` records it (plus the command, for debugging)."""

    stamp_ns: int
    observation: Vector
    next_observation: Vector
    action_raw: Vector
    action_applied: Vector
    achieved_goal: Vector
    next_achieved_goal: Vector
    safety_flags: int
    safety_cost: float
    safety_reasons: tuple[str, ...]
    status: SafetyStatus
    command: Vector | None
    truncated: bool = False


class StepSink(Protocol):
    """Where steps go: the her_recorder EpisodeRecorder (via :class:`RecorderSink`) or a list."""

    def start_episode(self, desired_goal: Vector, *, stamp_ns: int) -> Any: ...

    def record_step(self, record: StepRecord) -> Any: ...

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> Any: ...


class ListSink:
    """Keeps every step in memory (tests, short runs)."""

    def __init__(self) -> None:
        self.episodes: list[dict[str, Any]] = []

    def start_episode(self, desired_goal: Vector, *, stamp_ns: int) -> None:
        self.episodes.append({"desired_goal": desired_goal, "steps": [], "end": None})

    def record_step(self, record: StepRecord) -> None:
        self.episodes[-1]["steps"].append(record)

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> None:
        self.episodes[-1]["end"] = ("ABORT" if aborted else "END", reason)

    @property
    def steps(self) -> list[StepRecord]:
        return [s for e in self.episodes for s in e["steps"]]


class CallableSink:
    """Adapts a plain ``step_sink(record)`` callable to :class:`StepSink`."""

    def __init__(self, fn: Callable[[StepRecord], Any]) -> None:
        self.fn = fn

    def start_episode(self, desired_goal: Vector, *, stamp_ns: int) -> None:
        pass

    def record_step(self, record: StepRecord) -> None:
        self.fn(record)

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> None:
        pass


class RecorderSink:
    """Sends steps to a ``her_recorder.EpisodeRecorder`` (an open one), flags and cost included.

    Stamps must be >= 0 ns (bag time); reward and success are left to the recorder, which
    computes them with the goal space's own function (DESIGN.md rule 2).
    """

    def __init__(self, recorder: Any, *, split: str = "") -> None:
        self.recorder = recorder
        self.split = split
        """Recorded as the START reason ("eval" or "train") so the audit can tell them apart."""

    def start_episode(self, desired_goal: Vector, *, stamp_ns: int) -> Any:
        return self.recorder.start_episode(desired_goal, stamp_ns=stamp_ns, reason=self.split)

    def record_step(self, record: StepRecord) -> Any:
        return self.recorder.record_step(
            observation=record.observation,
            next_observation=record.next_observation,
            action_raw=record.action_raw,
            action_applied=record.action_applied,
            achieved_goal=record.achieved_goal,
            next_achieved_goal=record.next_achieved_goal,
            truncated=record.truncated,
            safety_flags=record.safety_flags,
            safety_cost=record.safety_cost,
            safety_reasons=record.safety_reasons,
            stamp_ns=record.stamp_ns,
        )

    def end_episode(self, *, stamp_ns: int, aborted: bool, reason: str) -> Any:
        if aborted:
            return self.recorder.abort_episode(reason, stamp_ns=stamp_ns)
        return self.recorder.end_episode(stamp_ns=stamp_ns)


# -- cadence -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CadenceReport:
    """How well the loop held its rate (LeRobot's cadence summary, plus tick percentiles)."""

    ticks: int
    target_hz: float
    achieved_hz: float
    """Ticks per second of wall time between the first and last tick start (NaN if < 2 ticks)."""
    over_budget: int
    """Ticks whose work (everything but the pacing sleep) exceeded 1 / rate_hz."""
    tick_p50_us: float
    tick_p99_us: float
    tick_max_us: float
    stage_mean_us: dict[str, float]
    """Mean time per stage of the tick (observe, actor, limits_ik, safety, io)."""
    sleep_mean_us: float
    """Pacing headroom: mean sleep per tick (near zero means the loop is saturated)."""

    def summary(self) -> str:
        """One line for logs."""
        stages = ", ".join(f"{k} {v:.0f}" for k, v in self.stage_mean_us.items())
        return (
            f"{self.achieved_hz:.2f} Hz vs {self.target_hz:g} Hz target, {self.ticks} ticks, "
            f"{self.over_budget} over the {1e3 / self.target_hz:.1f} ms budget; tick p50 "
            f"{self.tick_p50_us:.0f} us, p99 {self.tick_p99_us:.0f} us, max {self.tick_max_us:.0f} us "
            f"(mean us: {stages}); slept {self.sleep_mean_us / 1e3:.1f} ms/tick"
        )


class CadenceMeter:
    """Accumulates per-tick work time, stage times and tick start times."""

    def __init__(self, rate_hz: float, capacity: int = 1 << 16) -> None:
        self.rate_hz = rate_hz
        self.budget_ns = round(1e9 / rate_hz)
        self._work = np.zeros(capacity, dtype=np.int64)
        self._n = 0
        self._over = 0
        self._stages = np.zeros(len(STAGES) + 1, dtype=np.int64)
        self._first_start = 0
        self._last_start = 0
        self._sleep_ns = 0

    def add(
        self, start_ns: int, work_ns: int, stage_ns: Sequence[int], io_ns: int, sleep_ns: int
    ) -> None:
        if self._n == 0:
            self._first_start = start_ns
        self._last_start = start_ns
        if self._n >= self._work.size:
            self._work = np.concatenate((self._work, np.zeros_like(self._work)))
        self._work[self._n] = work_ns
        self._n += 1
        if work_ns > self.budget_ns:
            self._over += 1
        for i, v in enumerate(stage_ns):
            self._stages[i] += v
        self._stages[-1] += io_ns
        self._sleep_ns += sleep_ns

    def report(self) -> CadenceReport:
        n = self._n
        work = self._work[:n] * 1e-3
        span = (self._last_start - self._first_start) * 1e-9
        hz = (n - 1) / span if n > 1 and span > 0 else math.nan
        p50, p99, mx = (
            (float(np.percentile(work, 50)), float(np.percentile(work, 99)), float(work.max()))
            if n
            else (math.nan,) * 3
        )
        names = (*STAGES, "io")
        stage = {k: float(v) * 1e-3 / n if n else math.nan for k, v in zip(names, self._stages)}
        return CadenceReport(
            ticks=n,
            target_hz=self.rate_hz,
            achieved_hz=hz,
            over_budget=self._over,
            tick_p50_us=p50,
            tick_p99_us=p99,
            tick_max_us=mx,
            stage_mean_us=stage,
            sleep_mean_us=self._sleep_ns * 1e-3 / n if n else math.nan,
        )


# -- the loop ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeResult:
    """Outcome of one episode run by :meth:`ControlLoop.run_episode`."""

    ticks: int
    refused: bool
    aborted: bool
    reason: str
    safety_cost: float
    """Sum of the per-tick safety costs (what the audit adds up)."""
    interventions: int
    """Ticks with at least one safety flag."""
    flag_counts: dict[str, int]
    worst_status: SafetyStatus
    success: bool | None
    """Requested-goal success at the end (None without a goal space or achieved goal)."""
    cadence: CadenceReport


class ControlLoop:
    """Runs :class:`TickPipeline` at a fixed rate against injected I/O, recording every step.

    ``read_state()`` returns the latest :class:`RobotState`; ``send_command(decision)``
    forwards ``decision.command`` (joint targets, rad; None = send nothing) and
    ``decision.gripper_m``; ``now_ns()`` is the time base of the state stamps (ROS time on
    the robot, simulated time in MuJoCo). With ``realtime=True`` the loop sleeps to hold
    ``rate_hz`` on the wall clock (deadline-based: a late tick does not shift the ones
    after it); with ``realtime=False`` it runs as fast as the I/O allows (a simulator that
    advances one control period in ``send_command``).
    """

    def __init__(
        self,
        pipeline: TickPipeline,
        config: ControlLoopConfig,
        *,
        read_state: Callable[[], RobotState],
        send_command: Callable[[SafetyDecision], Any],
        now_ns: Callable[[], int] = time.monotonic_ns,
        read_estop: Callable[[], bool] | None = None,
        sink: StepSink | Callable[[StepRecord], Any] | None = None,
        goal_space: GoalSpace | None = None,
        realtime: bool = True,
        sleep: Callable[[float], Any] = time.sleep,
        episode_ticks: int = 50,
    ) -> None:
        self.pipeline = pipeline
        self.episode_ticks = config.max_ticks_per_episode or episode_ticks
        """Ticks per episode: the config's, or the task's (``episode_ticks``) when it says 0."""
        self.config = config
        self.read_state = read_state
        self.send_command = send_command
        self.now_ns = now_ns
        self.read_estop = read_estop
        self.sink: StepSink | None
        if sink is not None and not hasattr(sink, "record_step"):
            self.sink = CallableSink(sink)  # a bare step_sink(record) callable
        else:
            self.sink = sink  # type: ignore[assignment]
        self.goal_space = goal_space
        self.realtime = realtime
        self.sleep = sleep
        self.meter = CadenceMeter(config.rate_hz)
        self._goal_dim = 0
        self.read_errors = 0
        """Ticks on which read_state() raised and the previous state was used instead."""
        self._priority_set = False

    def cadence(self) -> CadenceReport:
        """Cadence over every tick this loop has run."""
        return self.meter.report()

    def run_episode(
        self, desired_goal: ArrayLike, *, max_ticks: int | None = None
    ) -> EpisodeResult:
        """Run one episode towards ``desired_goal`` (refused when the monitor rejects the goal)."""
        goal = np.asarray(desired_goal, dtype=np.float64)
        self._goal_dim = goal.size
        n_ticks = self.episode_ticks if max_ticks is None else int(max_ticks)
        monitor = self.pipeline.monitor
        meter = CadenceMeter(self.config.rate_hz)
        counts = dict.fromkeys((f.name or "" for f in ALL_FLAGS), 0)
        total_cost = 0.0
        interventions = 0
        worst_status = SafetyStatus.OK
        self.pipeline.reset()

        gate = monitor.check_episode(goal)
        if not gate.accepted:
            return self._refuse(
                goal, gate.flags, gate.reasons, gate.safety_cost, gate.detail, meter
            )

        if self.realtime and self.config.thread_priority and not self._priority_set:
            self._priority_set = set_realtime_priority(self.config.thread_priority)
        sink = self.sink
        if sink is not None:
            sink.start_episode(goal, stamp_ns=max(0, self.now_ns()))
        pending: TickResult | None = None
        pending_stamp = 0
        previous: RobotState | None = None
        aborted = False
        reason = "time_limit"
        period_ns = round(1e9 / self.config.rate_hz)
        clock = time.perf_counter_ns
        deadline = clock()
        ticks = 0
        for _ in range(n_ticks):
            start = clock()
            try:
                state = self.read_state()
            except Exception:
                if previous is None:
                    raise
                # No new measurement: act on the last one, as a ROS subscription would;
                # it turns stale after the timeout and the monitor holds.
                self.read_errors += 1
                state = previous
            estop = bool(self.read_estop()) if self.read_estop is not None else False
            stamp = self.now_ns()
            result = self.pipeline.tick(state, stamp, goal, previous=previous, estop=estop)
            t_io = clock()
            self.send_command(result.decision)
            if pending is not None and sink is not None:
                sink.record_step(self._record(pending, pending_stamp, result))
            pending, pending_stamp = result, stamp
            previous = state
            d = result.decision
            ticks += 1
            total_cost += d.safety_cost
            if d.flags:
                interventions += 1
                for name in d.reasons:
                    counts[name] += 1
            worst_status = worse(worst_status, d.status)
            end = clock()
            sleep_ns = 0
            if self.realtime:
                deadline += period_ns
                remaining = deadline - clock()
                if remaining > 0:
                    self.sleep(remaining * 1e-9)
                    sleep_ns = remaining
                elif remaining < -period_ns:
                    deadline = clock()  # far behind: re-anchor instead of bursting
            work = end - start
            io_ns = end - t_io
            meter.add(start, work, result.stage_ns, io_ns, sleep_ns)
            self.meter.add(start, work, result.stage_ns, io_ns, sleep_ns)
            if d.flags & _ESTOP and self.config.abort_on_estop:
                aborted, reason = True, "estop"
                break

        # The last step's next observation: one more state read (the arm has moved).
        success: bool | None = None
        if pending is not None:
            try:
                final_state = self.read_state()
            except Exception:
                self.read_errors += 1
                assert previous is not None  # set on every tick
                final_state = previous
            final = self.pipeline.observe_only(final_state, previous)
            if sink is not None:
                sink.record_step(self._record(pending, pending_stamp, final, truncated=not aborted))
            if self.goal_space is not None and final.achieved_goal is not None:
                try:
                    success = bool(self.goal_space.is_success(final.achieved_goal, goal))
                except ValueError:
                    success = False
        if sink is not None:
            sink.end_episode(stamp_ns=max(0, self.now_ns()), aborted=aborted, reason=reason)
        return EpisodeResult(
            ticks=ticks,
            refused=False,
            aborted=aborted,
            reason=reason,
            safety_cost=total_cost,
            interventions=interventions,
            flag_counts={k: v for k, v in counts.items() if v},
            worst_status=worst_status,
            success=success,
            cadence=meter.report(),
        )

    def _refuse(
        self,
        goal: Vector,
        flags: int,
        reasons: tuple[str, ...],
        cost: float,
        detail: str,
        meter: CadenceMeter,
    ) -> EpisodeResult:
        """Send one hold, record it (flagged GOAL_OUT_OF_REGION) and abort the episode."""
        state = self.read_state()
        stamp = self.now_ns()
        decision = self.pipeline.monitor.hold(state, stamp, flags=flags, detail=detail)
        self.send_command(decision)
        sink = self.sink
        if sink is not None and np.isfinite(goal).all():
            observed = self.pipeline.observe_only(state, None)
            sink.start_episode(goal, stamp_ns=max(0, stamp))
            hold = TickResult(
                decision,
                observed.observation,
                observed.achieved_goal,
                self.pipeline._nan_action.copy(),
                self.pipeline._applied(self.pipeline._nan_action, decision, 0.0),
                (0, 0, 0, 0),
            )
            sink.record_step(self._record(hold, stamp, observed))
            sink.end_episode(stamp_ns=max(0, stamp), aborted=True, reason=f"refused: {detail}")
        return EpisodeResult(
            ticks=0,
            refused=True,
            aborted=True,
            reason=detail,
            safety_cost=decision.safety_cost,
            interventions=1,
            flag_counts=dict.fromkeys(decision.reasons, 1),
            worst_status=decision.status,
            success=None,
            cadence=meter.report(),
        )

    def _record(
        self,
        step: TickResult,
        stamp_ns: int,
        after: Observed | TickResult,
        *,
        truncated: bool = False,
    ) -> StepRecord:
        d = step.decision
        n_obs, n_goal = self.pipeline.obs_dim, self._goal_dim
        return StepRecord(
            stamp_ns=max(0, stamp_ns),
            observation=_vec_or_nan(step.observation, n_obs),
            next_observation=_vec_or_nan(after.observation, n_obs),
            action_raw=step.raw_action,
            action_applied=step.applied_action,
            achieved_goal=_vec_or_nan(step.achieved_goal, n_goal),
            next_achieved_goal=_vec_or_nan(after.achieved_goal, n_goal),
            safety_flags=d.flags,
            safety_cost=d.safety_cost,
            safety_reasons=d.reasons,
            status=d.status,
            command=d.command,
            truncated=truncated,
        )


def _vec_or_nan(x: Vector | None, n: int) -> Vector:
    """``x``, or NaN of length ``n`` when the state gave nothing (recorded as such, never invented)."""
    return x if x is not None else np.full(n, np.nan)


class CachedKinematics:
    """Shares one kinematics pass per joint vector between observation, IK and safety monitor.

    Wraps a ``her_goals.robot.kinematics.Kinematics``-like object. ``pose_and_jacobian(q)``
    is memoised for the last ``q``, and ``fk(q)`` computes the full pose and Jacobian
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
        self._key = b""
        self._pose: tuple[Vector, Vector, Vector] | None = None
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
        self.misses += 1
        p, rot, jac = self.kinematics.pose_and_jacobian(qa)
        if self._copy:
            self._pose = (_frozen(p), _frozen(rot), _frozen(jac))
        else:
            for arr in (p, rot, jac):
                arr.flags.writeable = False
            self._pose = (p, rot, jac)
        self._key = key
        return self._pose

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
) -> TickPipeline:
    """Wire limits, monitor and pipeline from one :class:`SafetyStackConfig`.

    ``kinematics`` has ``joint_names``, ``joint_limits``, ``velocity_limits``, ``fk``,
    ``jacobian`` (and optionally ``pose_and_jacobian``), like
    ``her_goals.robot.kinematics.Kinematics`` or :class:`her_policy.deploy.toy_arm.ToyArm`.
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
    )
