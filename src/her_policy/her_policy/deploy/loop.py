"""The control loop without ROS: drives the episode stepper at a fixed rate against injected I/O.

:class:`ControlLoop` drives the episode stepper (:mod:`her_policy.deploy.stepper`, around
:class:`~her_policy.deploy.pipeline.TickPipeline`) at ``rate_hz`` against injected I/O
(``read_state``, ``send_command``, ``read_estop``), records every step (with its safety flags,
cost and reasons) through a :class:`~her_policy.deploy.sinks.StepSink` and reports its cadence
(:mod:`her_policy.deploy.cadence`): achieved rate, ticks over the budget, p50/p99 tick time and
where the time went.

The ROS ``policy_node`` drives the same stepper and pipeline from ``/joint_states``, the command
topic, ``/her/estop`` and ``/her/step`` (:mod:`her_policy.deploy.policy_core`); ``her demo`` and
``her sim`` wire it to the MuJoCo arm (:mod:`her_policy.app.sim`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from her_goals.extractors import RobotState
from her_goals.safety_flags import ALL_FLAGS, SafetyStatus, worse
from her_goals.spaces import GoalSpace
from her_policy.deploy.cadence import CadenceMeter, CadenceReport
from her_policy.deploy.pipeline import TickPipeline, Vector
from her_policy.deploy.safety import EpisodeCheck, SafetyDecision
from her_policy.deploy.settings import ControlLoopConfig
from her_policy.deploy.sinks import CallableSink, StepRecord, StepSink
from her_policy.deploy.stepper import CompletedStep, EpisodeStepper, outcome

log = logging.getLogger("her_policy.deploy.loop")


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
    policy_version: str = ""
    """The policy version that acted (a FollowingPolicy's; '' for a fixed actor)."""


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
        self.stepper = EpisodeStepper(pipeline, abort_on_estop=config.abort_on_estop)
        """The episode stepper this loop drives (the policy node drives the same one)."""

    def cadence(self) -> CadenceReport:
        """Cadence over every tick this loop has run."""
        return self.meter.report()

    def run_episode(
        self, desired_goal: ArrayLike, *, max_ticks: int | None = None
    ) -> EpisodeResult:
        """Run one episode towards ``desired_goal`` (refused when the monitor rejects the goal).

        The episode itself (the gate, the pending step, the time limit, the e-stop abort, the
        last step's next observation) is the :class:`EpisodeStepper`'s, as on the policy node;
        this driver reads the state, sends the command, keeps the rate and adds up the costs.
        A policy that follows published versions (``between_episodes``) may swap here, before
        the first tick, and only here: never mid-episode.
        """
        actor = self.pipeline.actor
        swap = getattr(actor, "between_episodes", None)
        if callable(swap):
            swap()
        version = str(getattr(actor, "version", ""))
        goal = np.asarray(desired_goal, dtype=np.float64)
        self._goal_dim = goal.size
        n_ticks = self.episode_ticks if max_ticks is None else int(max_ticks)
        stepper = self.stepper
        meter = CadenceMeter(self.config.rate_hz)
        counts = dict.fromkeys((f.name or "" for f in ALL_FLAGS), 0)
        total_cost = 0.0
        interventions = 0
        worst_status = SafetyStatus.OK

        gate = stepper.start(goal, n_ticks)
        if not gate.accepted:
            return self._refuse(goal, gate, meter)

        if self.realtime and self.config.thread_priority and not self._priority_set:
            self._priority_set = set_realtime_priority(self.config.thread_priority)
        sink = self.sink
        if sink is not None:
            sink.start_episode(goal, stamp_ns=max(0, self.now_ns()))
        previous: RobotState | None = None
        period_ns = round(1e9 / self.config.rate_hz)
        clock = time.perf_counter_ns
        deadline = clock()
        while not stepper.finishing:
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
            result, done = stepper.tick(state, stamp, estop=estop)
            t_io = clock()
            self.send_command(result.decision)
            if done is not None and sink is not None:
                sink.record_step(self._record(done))
            previous = state
            d = result.decision
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

        # The last step's next observation: one more state read (the arm has moved).
        success: bool | None = None
        if previous is not None:
            try:
                final_state = self.read_state()
            except Exception:
                self.read_errors += 1
                final_state = previous
            last = stepper.finish(final_state)
            if last is not None:
                if sink is not None:
                    sink.record_step(self._record(last))
                if self.goal_space is not None and last.after.achieved_goal is not None:
                    success = outcome(self.goal_space, last.after.achieved_goal, goal)[1]
        aborted = stepper.aborted
        reason = "estop" if aborted else "time_limit"
        if sink is not None:
            sink.end_episode(stamp_ns=max(0, self.now_ns()), aborted=aborted, reason=reason)
        return EpisodeResult(
            ticks=stepper.ticks,
            refused=False,
            aborted=aborted,
            reason=reason,
            safety_cost=total_cost,
            interventions=interventions,
            flag_counts={k: v for k, v in counts.items() if v},
            worst_status=worst_status,
            success=success,
            cadence=meter.report(),
            policy_version=version,
        )

    def _refuse(self, goal: Vector, gate: EpisodeCheck, meter: CadenceMeter) -> EpisodeResult:
        """Send one hold, record it (flagged GOAL_OUT_OF_REGION) and abort the episode."""
        state = self.read_state()
        stamp = self.now_ns()
        decision, step = self.stepper.refuse(state, stamp, gate)
        self.send_command(decision)
        sink = self.sink
        if sink is not None and np.isfinite(goal).all():
            sink.start_episode(goal, stamp_ns=max(0, stamp))
            sink.record_step(self._record(step))
            sink.end_episode(stamp_ns=max(0, stamp), aborted=True, reason=f"refused: {gate.detail}")
        return EpisodeResult(
            ticks=0,
            refused=True,
            aborted=True,
            reason=gate.detail,
            safety_cost=decision.safety_cost,
            interventions=1,
            flag_counts=dict.fromkeys(decision.reasons, 1),
            worst_status=decision.status,
            success=None,
            cadence=meter.report(),
        )

    def _record(self, step: CompletedStep) -> StepRecord:
        result, after = step.result, step.after
        d = result.decision
        n_obs, n_goal = self.pipeline.obs_dim, self._goal_dim
        return StepRecord(
            stamp_ns=max(0, step.stamp_ns),
            observation=_vec_or_nan(result.observation, n_obs),
            next_observation=_vec_or_nan(after.observation, n_obs),
            action_raw=result.raw_action,
            action_applied=result.applied_action,
            achieved_goal=_vec_or_nan(result.achieved_goal, n_goal),
            next_achieved_goal=_vec_or_nan(after.achieved_goal, n_goal),
            safety_flags=d.flags,
            safety_cost=d.safety_cost,
            safety_reasons=d.reasons,
            status=d.status,
            command=d.command,
            truncated=step.truncated,
        )


def _vec_or_nan(x: Vector | None, n: int) -> Vector:
    """``x``, or NaN of length ``n`` when the state gave nothing (recorded as such, never invented)."""
    return x if x is not None else np.full(n, np.nan)


