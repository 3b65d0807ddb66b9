"""Episode bookkeeping: when an episode starts and why it ends.

The goals node owns one :class:`EpisodeBook`. It starts an episode with a
desired goal, counts the policy's steps of that episode, and ends it:

* END ``time_limit`` after ``max_steps`` steps, or when the policy marks a step
  truncated (its own tick limit) - a time limit is not a terminal state;
* END ``terminated`` when the policy marks a step terminated;
* END ``success`` on the first successful step when ``end_on_success``
  (off by default: the training tasks run their full length);
* ABORT ``estop`` / ``refused`` when a step carries the ESTOP or
  GOAL_OUT_OF_REGION safety flag (the policy held the arm);
* ABORT ``timeout`` when no end came within ``timeout_s`` (a dead policy);
* ABORT on request (operator).

Requested-goal success at END is ``is_success(last next_achieved_goal,
desired_goal)``: the same rule the recorder and the reader apply, so the END
event, the bag and the audit agree. Steps of other episodes are ignored and
counted (they arrive late, after an abort).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import ConfigError, GoalError
from her_goals.spaces import GoalSpace

Vector = NDArray[np.float64]

ESTOP_FLAG = 128
"""``Step.ESTOP``: the policy held the arm for the emergency stop."""
GOAL_OUT_OF_REGION_FLAG = 512
"""``Step.GOAL_OUT_OF_REGION``: the policy refused the episode's goal."""


class EventKind(enum.IntEnum):
    """``EpisodeEvent.event`` values."""

    START = 0
    END = 1
    ABORT = 2
    DISCARD = 3


@dataclass(frozen=True)
class Event:
    """One episode event to publish."""

    kind: EventKind
    episode_id: int
    desired_goal: Vector
    num_steps: int
    success: bool
    reason: str
    stamp_ns: int
    split: str = ""
    """Goal stream of the requested goal (``eval``, ``train``, ``requested``; her_goals.evaluation)."""
    stream_index: int = -1
    """Index of the goal in the planned stream; -1 when it did not come from one."""


@dataclass
class _Running:
    episode_id: int
    desired_goal: Vector
    start_ns: int
    split: str = ""
    stream_index: int = -1
    num_steps: int = 0
    last_next_achieved: Vector | None = None


@dataclass
class EpisodeBook:
    """Start/step/end bookkeeping of goal-conditioned episodes (see the module docstring)."""

    space: GoalSpace
    max_steps: int = 50
    """Steps per episode before END ``time_limit``."""
    timeout_s: float = 30.0
    """ABORT ``timeout`` when an episode has not ended this long after its start."""
    end_on_success: bool = False
    """END ``success`` at the first successful step instead of running to the time limit."""
    first_episode_id: int = 0
    ignored_steps: int = field(default=0, init=False)
    """Steps received for an episode other than the running one (late or unknown)."""
    _running: _Running | None = field(default=None, init=False)
    _next_id: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ConfigError(f"episode: max_steps must be >= 1, got {self.max_steps}")
        if not self.timeout_s > 0:
            raise ConfigError(f"episode: timeout_s must be > 0 s, got {self.timeout_s}")
        self._next_id = int(self.first_episode_id)

    @property
    def running(self) -> bool:
        return self._running is not None

    @property
    def episode_id(self) -> int | None:
        """Id of the running episode, or None."""
        return None if self._running is None else self._running.episode_id

    @property
    def next_episode_id(self) -> int:
        """Id the next :meth:`start` will give."""
        return self._next_id

    @property
    def desired_goal(self) -> Vector | None:
        return None if self._running is None else self._running.desired_goal.copy()

    @property
    def num_steps(self) -> int:
        return 0 if self._running is None else self._running.num_steps

    def start(
        self,
        desired_goal: ArrayLike,
        now_ns: int,
        reason: str = "",
        *,
        split: str = "",
        stream_index: int = -1,
    ) -> Event:
        """Start an episode towards ``desired_goal`` (checked by the goal space); ``split`` and
        ``stream_index`` say where the goal came from (her_goals.evaluation)."""
        if self._running is not None:
            raise GoalError(
                f"episode {self._running.episode_id} is still running; abort it first"
            )
        goal = self.space.check(desired_goal, "desired_goal").astype(np.float64).reshape(-1)
        if goal.shape != (self.space.dim,):
            raise GoalError(f"desired_goal must be one goal of {self.space.dim} values")
        self._running = _Running(self._next_id, goal, int(now_ns), str(split), int(stream_index))
        self._next_id += 1
        return self._event(EventKind.START, False, reason, now_ns)

    def on_step(
        self,
        episode_id: int,
        next_achieved_goal: ArrayLike,
        *,
        now_ns: int,
        terminated: bool = False,
        truncated: bool = False,
        safety_flags: int = 0,
    ) -> Event | None:
        """Count one policy step; returns the END/ABORT event it causes, if any."""
        run = self._running
        if run is None or episode_id != run.episode_id:
            self.ignored_steps += 1
            return None
        run.num_steps += 1
        achieved = np.asarray(next_achieved_goal, dtype=np.float64).reshape(-1)
        run.last_next_achieved = achieved
        if safety_flags & ESTOP_FLAG:
            return self._end(EventKind.ABORT, False, "estop", now_ns)
        if safety_flags & GOAL_OUT_OF_REGION_FLAG:
            return self._end(EventKind.ABORT, False, "refused: goal outside the task region", now_ns)
        success = self._success(achieved, run.desired_goal)
        if terminated:
            return self._end(EventKind.END, success, "terminated", now_ns)
        if success and self.end_on_success:
            return self._end(EventKind.END, True, "success", now_ns)
        if truncated or run.num_steps >= self.max_steps:
            return self._end(EventKind.END, success, "success" if success else "time_limit", now_ns)
        return None

    def on_time(self, now_ns: int) -> Event | None:
        """ABORT ``timeout`` once the running episode is older than ``timeout_s``."""
        run = self._running
        if run is not None and (now_ns - run.start_ns) * 1e-9 > self.timeout_s:
            return self._end(
                EventKind.ABORT, False, f"timeout: no end after {self.timeout_s:g} s", now_ns
            )
        return None

    def abort(self, reason: str, now_ns: int) -> Event | None:
        """ABORT the running episode (None when none is running)."""
        if self._running is None:
            return None
        return self._end(EventKind.ABORT, False, reason, now_ns)

    # -- internals -------------------------------------------------------------------
    def _success(self, achieved: Vector, desired: Vector) -> bool:
        try:
            return bool(self.space.is_success(achieved, desired))
        except GoalError:  # NaN or wrong length: not a success, the reader reports it
            return False

    def _end(self, kind: EventKind, success: bool, reason: str, now_ns: int) -> Event:
        event = self._event(kind, success, reason, now_ns)
        self._running = None
        return event

    def _event(self, kind: EventKind, success: bool, reason: str, now_ns: int) -> Event:
        run = self._running
        assert run is not None
        return Event(
            kind,
            run.episode_id,
            run.desired_goal.copy(),
            run.num_steps,
            success,
            reason,
            int(now_ns),
            run.split,
            run.stream_index,
        )
