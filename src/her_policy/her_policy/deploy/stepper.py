"""One episode around the tick pipeline: start, tick, finish - the one piece of code both drivers run.

:class:`EpisodeStepper` owns what an episode is on the control path, whoever drives it:

* **start**: reset the pipeline and gate the desired goal through the safety monitor
  (:meth:`SafetyMonitor.check_episode`); a refused goal gets one hold, flagged, as its only step;
* **tick**: run :meth:`TickPipeline.tick` on the latest state; a step is complete one tick
  later, when its next observation exists, so each tick returns the *previous* tick's step;
* **the end**: after ``max_ticks`` ticks (a time limit: the last step is ``truncated``) or at
  an e-stop with ``abort_on_estop`` (the hold is the last step, the episode aborted), the
  next state read closes the last step (:meth:`finish`).

:class:`~her_policy.deploy.loop.ControlLoop` (``her demo``, ``her sim``: it reads the state,
sends the command and sleeps) and :class:`~her_policy.deploy.policy_core.PolicyCore` (the ROS
node: a state per timer tick) are two drivers of this stepper, so "the same loop runs without
ROS" is literally the same code. The reward and success of a step come from the goal space
(:meth:`EpisodeStepper.outcome`: ARCHITECTURE.md, rule 2).

Example: ``max_ticks = 2``; tick 1 returns no step; tick 2 returns step 0 (next observation: the
state of tick 2) and reaches the limit; :meth:`finish` on the next state returns step 1, truncated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from her_goals.errors import HerError
from her_goals.extractors import RobotState
from her_goals.safety_flags import SafetyFlag
from her_goals.spaces import GoalSpace
from her_policy.deploy.pipeline import Observed, TickPipeline, TickResult, Vector
from her_policy.deploy.safety import EpisodeCheck, SafetyDecision

_ESTOP = int(SafetyFlag.ESTOP)


@dataclass(frozen=True)
class CompletedStep:
    """One step whose next observation exists: what a Step record is made of."""

    index: int
    """Step number within the episode (0 first)."""
    result: TickResult
    """The tick that acted: observation, achieved goal, raw and applied action, safety decision."""
    stamp_ns: int
    """When that tick ran (the time base of the state stamps)."""
    after: Observed | TickResult
    """The next state's observation and achieved goal (None where the state gave none)."""
    truncated: bool
    """The episode's last step (a time limit, or a refused goal): not a terminal state."""


class EpisodeStepper:
    """Start / tick / finish of one episode at a time; see the module docstring."""

    def __init__(self, pipeline: TickPipeline, *, abort_on_estop: bool = True) -> None:
        self.pipeline = pipeline
        self.abort_on_estop = abort_on_estop
        self.goal: Vector = np.zeros(0)
        self.max_ticks = 0
        self.ticks = 0
        """Ticks run in this episode."""
        self.aborted = False
        """True once an e-stop ended the episode (``abort_on_estop``)."""
        self.refused = ""
        """Why the monitor refused the episode's goal ('' when it accepted it)."""
        self._pending: TickResult | None = None
        self._pending_ns = 0
        self._previous: RobotState | None = None
        self._published = 0

    # -- start -----------------------------------------------------------------------------
    def start(self, desired_goal: ArrayLike, max_ticks: int) -> EpisodeCheck:
        """A new episode towards ``desired_goal``: the monitor's verdict on the goal."""
        self.goal = np.asarray(desired_goal, dtype=np.float64)
        self.max_ticks = int(max_ticks)
        self.ticks, self.aborted, self._published = 0, False, 0
        self._pending, self._pending_ns, self._previous = None, 0, None
        self.pipeline.reset()
        gate = self.pipeline.monitor.check_episode(self.goal)
        self.refused = "" if gate.accepted else gate.detail
        return gate

    def refuse(self, state: RobotState, now_ns: int, gate: EpisodeCheck) -> tuple[SafetyDecision, CompletedStep]:
        """The refused episode's one step: a hold at the measured position, flagged with the gate's
        reasons (GOAL_OUT_OF_REGION), the episode's last step."""
        decision = self.pipeline.monitor.hold(state, now_ns, flags=gate.flags, detail=gate.detail)
        observed = self.pipeline.observe_only(state, None)
        nan = np.full(self.pipeline.limits.config.action_dim, np.nan)
        hold = TickResult(decision, observed.observation, observed.achieved_goal, nan,
                          self.pipeline.applied_action(nan, decision), (0, 0, 0, 0))
        self.max_ticks = 0
        return decision, self._complete(hold, now_ns, observed, truncated=True)

    # -- tick --------------------------------------------------------------------------------
    @property
    def finishing(self) -> bool:
        """True when no tick is left: the time limit is reached, an e-stop aborted, or the goal
        was refused; :meth:`finish` closes the last step."""
        return bool(self.refused) or self.aborted or self.ticks >= self.max_ticks

    def tick(self, state: RobotState, now_ns: int, *, estop: bool = False) -> tuple[TickResult, CompletedStep | None]:
        """One tick on ``state``: what it commands, and the previous tick's step (now complete)."""
        result = self.pipeline.tick(state, now_ns, self.goal, previous=self._previous, estop=estop)
        done = (self._complete(self._pending, self._pending_ns, result, truncated=False)
                if self._pending is not None else None)
        self._pending, self._pending_ns, self._previous = result, now_ns, state
        self.ticks += 1
        if result.decision.flags & _ESTOP and self.abort_on_estop:
            self.aborted = True
        return result, done

    @property
    def previous_state(self) -> RobotState | None:
        """The state of the last tick (None before the first)."""
        return self._previous

    # -- finish ------------------------------------------------------------------------------
    def finish(self, state: RobotState) -> CompletedStep | None:
        """The last step, its next observation from ``state`` (the arm has moved); None if no
        tick ran. Truncated unless an e-stop aborted the episode."""
        if self._pending is None:
            return None
        after = self.pipeline.observe_only(state, self._previous)
        pending, self._pending = self._pending, None
        return self._complete(pending, self._pending_ns, after, truncated=not self.aborted)

    def _complete(self, result: TickResult, stamp_ns: int, after: Observed | TickResult, *, truncated: bool) -> CompletedStep:
        index, self._published = self._published, self._published + 1
        return CompletedStep(index, result, stamp_ns, after, truncated)


def outcome(space: GoalSpace, next_achieved_goal: Vector | None, desired_goal: Vector) -> tuple[float, bool]:
    """(reward, success) of a step: the goal space's reward of the next achieved goal; a step
    without a usable achieved goal (none measured, NaN) is a failure, reward -1."""
    if next_achieved_goal is None:
        return -1.0, False
    try:
        reward = float(space.compute_reward(next_achieved_goal, desired_goal))
    except HerError:
        return -1.0, False
    return reward, reward == 0.0
