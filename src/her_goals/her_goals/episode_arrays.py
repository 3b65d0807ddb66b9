"""One episode as arrays: what collectors produce, bags hold, replay buffers store and the audit reads.

An episode of ``T`` steps has one row per step in every array. Step ``t`` goes from
``observation[t]`` (achieved goal ``achieved_goal[t]``) through ``action[t]`` to
``next_observation[t]`` (``next_achieved_goal[t]``); in a contiguous episode
``next_observation[t] == observation[t + 1]``. ``action`` is what the arm executed (after
the action limits and the safety monitor): the action a replay buffer learns from;
``action_raw`` is the policy's output before them, where a recorder kept it.

``desired_goal[t]`` is the goal step ``t`` was asked for: the requested goal, the same on
every row of a recorded episode (a relabelled goal never appears here; relabelling
happens inside the replay sampler, ARCHITECTURE.md, rule 3).

The reader's ``Episode`` and the audit's ``AuditedEpisode`` extend this type with where
the episode came from; the collector produces it with :meth:`EpisodeArrays.from_rollout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import GoalShapeError


@dataclass(frozen=True, kw_only=True)
class EpisodeArrays:
    """The arrays of one episode of ``T`` steps (see the module docstring)."""

    observation: NDArray[np.float64]
    """(T, obs_dim): the policy observation before each step."""
    next_observation: NDArray[np.float64]
    """(T, obs_dim): after each step."""
    action: NDArray[np.float64]
    """(T, act_dim): the action executed, in the env's units (after limits and safety)."""
    achieved_goal: NDArray[np.float64]
    """(T, goal_dim): before each step."""
    next_achieved_goal: NDArray[np.float64]
    """(T, goal_dim): after each step."""
    desired_goal: NDArray[np.float64]
    """(T, goal_dim): the requested goal of each step."""
    terminated: NDArray[np.bool_]
    """(T,): the episode ended in a terminal state at this step (only the last may be set)."""
    truncated: NDArray[np.bool_]
    """(T,): the episode was cut here (a time limit; only the last may be set)."""
    success: float
    """Requested-goal success at the end (1.0 or 0.0; never hindsight success)."""
    reward: NDArray[np.float32] | None = None
    """(T,): the recorded reward, where one was recorded."""
    action_raw: NDArray[np.float64] | None = None
    """(T, act_dim): the policy output before limits and safety, where recorded."""
    is_success: NDArray[np.bool_] | None = None
    """(T,): recorded per-step success against the requested goal."""
    safety_flags: NDArray[np.uint32] | None = None
    """(T,): ``SafetyFlag`` bits of each step."""
    safety_cost: NDArray[np.float32] | None = None
    """(T,): safety cost of each step."""
    safety_reasons: tuple[tuple[str, ...], ...] | None = None
    """Per step, the names of the safety flags raised."""
    stamp_ns: NDArray[np.int64] | None = None
    """(T,): time of each step (ns)."""
    true_next_achieved_goal: NDArray[np.float64] | None = None
    """(T, goal_dim), simulation only: the achieved goal of the *true* state after each step,
    beside the measured ``next_achieved_goal`` (they differ under sensing noise)."""
    sim_params: dict[str, Any] | None = None
    """Simulation only: the episode's physics and sensing parameters (domain randomisation)."""

    def __post_init__(self) -> None:
        n = self.observation.shape[0] if self.observation.ndim == 2 else -1
        for name in ("next_observation", "action", "achieved_goal", "next_achieved_goal", "desired_goal"):
            arr = getattr(self, name)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise GoalShapeError(
                    f"episode arrays: {name} has shape {arr.shape}; every array needs one row "
                    f"per step ({n} steps, from observation {self.observation.shape})"
                )
        for name in ("terminated", "truncated"):
            if getattr(self, name).shape != (n,):
                raise GoalShapeError(f"episode arrays: {name} must have shape ({n},)")

    def __len__(self) -> int:
        return int(self.action.shape[0])

    @property
    def n_steps(self) -> int:
        """Number of steps ``T``."""
        return len(self)

    @classmethod
    def from_rollout(
        cls,
        observations: ArrayLike,
        actions: ArrayLike,
        achieved_goals: ArrayLike,
        desired_goals: ArrayLike,
        *,
        terminated: bool,
        truncated: bool,
        success: float,
        sim_params: dict[str, Any] | None = None,
        safety_cost: ArrayLike | None = None,
        safety_flags: ArrayLike | None = None,
    ) -> EpisodeArrays:
        """An episode from a rollout's ``T + 1`` observations and achieved goals (views, no copy);
        ``sim_params``: the simulated episode's randomised physics and sensing, if any;
        ``safety_cost`` and ``safety_flags``: (T,) per step, from a training env's safety layer."""
        obs = np.asarray(observations, dtype=np.float64)
        ag = np.asarray(achieved_goals, dtype=np.float64)
        act = np.asarray(actions, dtype=np.float64)
        n = act.shape[0]
        if obs.shape[0] != n + 1 or ag.shape[0] != n + 1:
            raise GoalShapeError(
                f"a rollout of {n} actions needs {n + 1} observations and achieved goals, got "
                f"{obs.shape[0]} and {ag.shape[0]}"
            )
        last = np.zeros(n, dtype=bool)
        end_terminated, end_truncated = last.copy(), last.copy()
        if n:
            end_terminated[-1], end_truncated[-1] = bool(terminated), bool(truncated)
        return cls(
            observation=obs[:-1],
            next_observation=obs[1:],
            action=act,
            achieved_goal=ag[:-1],
            next_achieved_goal=ag[1:],
            desired_goal=np.asarray(desired_goals, dtype=np.float64).reshape(n, -1),
            terminated=end_terminated,
            truncated=end_truncated,
            success=float(success),
            sim_params=sim_params,
            safety_cost=None if safety_cost is None else np.asarray(safety_cost, np.float32).reshape(n),
            safety_flags=None if safety_flags is None else np.asarray(safety_flags, np.uint32).reshape(n),
        )
