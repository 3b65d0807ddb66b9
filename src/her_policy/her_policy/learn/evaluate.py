"""Requested-goal evaluation: a deterministic policy on held-out goals, with the task's tolerance.

This is the only success rate HER-ROS reports as "success". It takes a policy
(an artefact, a path to one, or any batch actor) and an env factory, never a
replay buffer and never a list of goals: the goals are the task's own held-out
requested goals (see :func:`her_policy.learn.envs.requested_resets`), so a relabelled
goal cannot be evaluated through this API. Success is the goal space's
``is_success`` of the final achieved goal against the requested goal, with the
env's own goal space and tolerance.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from her_goals.spaces import GoalSpace
from her_goals.stats import wilson_interval
from her_policy.artefact.store import load_artefact
from her_policy.errors import EnvContractError, GoalSpaceMismatchError, PolicyError
from her_policy.learn.envs import EnvFactory, goal_space_of, requested_resets


@runtime_checkable
class BatchPolicy(Protocol):
    """Anything that maps (N, obs) observations and (N, goal) goals to (N, action) env actions.

    A policy that also reads the achieved goal (as SB3's ``MultiInputPolicy`` does) sets
    ``needs_achieved_goal = True`` and takes it as a third argument.
    """

    def act_batch(
        self, observation: NDArray[Any], desired_goal: NDArray[Any]
    ) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class EvalResult:
    """Requested-goal success of a policy on held-out goals, with its 95% Wilson interval."""

    requested_success: float
    """Share of episodes whose final achieved goal is within tolerance of the requested goal."""
    ci_low: float
    ci_high: float
    successes: int
    n_episodes: int
    mean_final_distance: float
    """Mean final distance to the requested goal, in the goal space's units."""
    goal_space: str
    tolerance: float
    seconds: float
    kind: str = "requested"
    """Always "requested": relabelled goals are never evaluated."""

    def __str__(self) -> str:
        return (
            f"requested-goal success {self.requested_success:.3f} "
            f"[{self.ci_low:.3f}, {self.ci_high:.3f}] (Wilson 95%, n={self.n_episodes}, "
            f"{self.goal_space} tolerance {self.tolerance:g}; mean final distance "
            f"{self.mean_final_distance:.4f})"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_policy(policy: Any) -> BatchPolicy:
    if isinstance(policy, str | Path):
        return load_artefact(policy)
    if isinstance(policy, BatchPolicy):
        return policy
    raise PolicyError(
        f"evaluate() takes a policy artefact, a path to one, or an object with act_batch(); "
        f"got {type(policy).__name__}"
    )


def evaluate(
    policy: Any,
    env_factory: EnvFactory,
    n_episodes: int = 100,
    *,
    n_envs: int = 1,
    heldout_seed: int = 0,
    envs: Sequence[Any] | None = None,
) -> EvalResult:
    """Run the deterministic ``policy`` on ``n_episodes`` held-out requested goals.

    ``n_envs`` envs from ``env_factory`` are stepped in lockstep (one batched
    forward pass per step) and closed afterwards; ``envs`` instead lends already
    made envs of the same factory (left open). If the policy carries a goal space
    (an artefact), it must be the env's.
    """
    if n_episodes < 1:
        raise PolicyError(f"n_episodes must be >= 1, got {n_episodes}")
    actor = _as_policy(policy)
    start = time.perf_counter()
    owned = envs is None
    if envs is None:
        envs = [env_factory() for _ in range(max(1, min(n_envs, n_episodes)))]
    envs = list(envs)
    try:
        space = goal_space_of(envs[0])
        expected: GoalSpace | None = getattr(actor, "goal_space", None)
        if isinstance(expected, GoalSpace) and not expected.same_as(space):
            raise GoalSpaceMismatchError(
                f"the policy was trained for goal space {expected.spec()}, but the env's goal "
                f"space is {space.spec()}; evaluate it on its own task"
            )
        resets = requested_resets(envs[0], n_episodes, heldout_seed=heldout_seed)
        successes = 0
        distances: list[float] = []
        for first in range(0, n_episodes, len(envs)):
            chunk = resets[first : first + len(envs)]
            done_s, done_d = _run_chunk(envs[: len(chunk)], chunk, actor, space)
            successes += done_s
            distances.extend(done_d)
    finally:
        if owned:
            for env in envs:
                env.close()
    lo, hi = wilson_interval(successes, n_episodes)
    return EvalResult(
        requested_success=successes / n_episodes,
        ci_low=lo,
        ci_high=hi,
        successes=successes,
        n_episodes=n_episodes,
        mean_final_distance=float(np.mean(distances)),
        goal_space=space.name,
        tolerance=space.tolerance,
        seconds=time.perf_counter() - start,
    )


def _run_chunk(
    envs: list[Any], resets: list[dict[str, Any]], actor: BatchPolicy, space: GoalSpace
) -> tuple[int, list[float]]:
    """One episode in each env, in lockstep; returns (successes, final distances)."""
    obs = []
    for env, kw in zip(envs, resets):
        o, _ = env.reset(**kw)
        requested = kw.get("options", {}).get("desired_goal")
        if requested is not None and not np.allclose(o["desired_goal"], requested):
            raise EnvContractError(
                f"env ignored the requested goal {np.asarray(requested).tolist()} and set "
                f"{np.asarray(o['desired_goal']).tolist()}; it must honour "
                "reset(options={'desired_goal': g})"
            )
        obs.append(o)
    active = list(range(len(envs)))
    final_obs: list[Any] = list(obs)
    while active:
        o_batch = np.stack([obs[i]["observation"] for i in active])
        g_batch = np.stack([obs[i]["desired_goal"] for i in active])
        if getattr(actor, "needs_achieved_goal", False):  # e.g. SB3 MultiInputPolicy adapters
            a_batch = np.stack([obs[i]["achieved_goal"] for i in active])
            actions = actor.act_batch(o_batch, g_batch, a_batch)  # type: ignore[call-arg]
        else:
            actions = actor.act_batch(o_batch, g_batch)
        still = []
        for row, i in enumerate(active):
            o, _, terminated, truncated, _ = envs[i].step(actions[row])
            obs[i] = o
            if terminated or truncated:
                final_obs[i] = o
            else:
                still.append(i)
        active = still
    achieved = np.stack([o["achieved_goal"] for o in final_obs])
    desired = np.stack([o["desired_goal"] for o in final_obs])
    success = space.is_success(achieved, desired)
    return int(success.sum()), space.distance(achieved, desired).tolist()
