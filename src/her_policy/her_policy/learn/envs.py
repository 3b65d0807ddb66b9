"""Goal environments as the learner sees them: factory, goal space, layout, held-out goals.

Two kinds of env are supported through one path:

* her_mujoco tasks (``reach``, ``push``, ``pick_and_place``) carry their own
  :class:`~her_goals.GoalSpace` and :class:`~her_goals.GoalSampler`; requested
  goals for evaluation are ``goal_sampler.heldout(n)``, asked for with
  ``reset(options={"desired_goal": g})``.
* Any other Gymnasium goal env (Gymnasium-Robotics Fetch, ...) gets a goal space
  built from the env (name = env id, dim from the observation space, units m,
  frame world, tolerance = ``distance_threshold``), checked at start-up against
  the env's own ``compute_reward`` on sampled pairs. Requested goals for
  evaluation come from resets with seeds in a held-out range
  (:data:`HELDOUT_SEED_BASE` and up) that no training env ever uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from her_goals.evaluation import HELDOUT_RESET_SEED_BASE, heldout_goal, heldout_reset_seed
from her_goals.spaces import GoalSpace
from her_policy.artefact.layout import PolicyLayout
from her_policy.errors import EnvContractError, PolicyError
from her_policy.learn.safety_layer import TrainingSafetyLayer

HELDOUT_SEED_BASE = HELDOUT_RESET_SEED_BASE
"""Evaluation resets use seeds from here up; training seeds are below (seed * 1000 + env index)."""

EnvFactory = Callable[[], Any]


def training_seed(seed: int, env_index: int) -> int:
    """Reset seed of training env ``env_index`` for run seed ``seed`` (always < HELDOUT_SEED_BASE)."""
    if not (0 <= seed < 10**9 and 0 <= env_index < 1000):
        raise PolicyError(
            f"training seeds need 0 <= seed < 1e9 and env_index < 1000, got {seed}, {env_index}"
        )
    return seed * 1000 + env_index


@dataclass(frozen=True)
class EnvSource:
    """A picklable env factory: an her_mujoco task name or a Gymnasium env id."""

    env_id: str | None = None
    task: str | None = None
    kwargs: tuple[tuple[str, Any], ...] = field(default=())
    safety_layer: bool = False
    """A task env steps through the robot's limits and monitor (``learn.safety_layer``)."""

    def __post_init__(self) -> None:
        if (self.env_id is None) == (self.task is None):
            raise PolicyError("EnvSource needs exactly one of env_id or task")

    @property
    def name(self) -> str:
        return self.env_id if self.env_id is not None else f"task:{self.task}"

    def __call__(self) -> Any:
        import gymnasium as gym  # heavy: only when an env is made

        kwargs = dict(self.kwargs)
        if self.task is not None:
            try:
                import her_mujoco  # loads MuJoCo: only when a task env is made
            except ImportError as exc:
                raise PolicyError(
                    f"task {self.task!r} needs the her_mujoco package, which failed to import: {exc}"
                ) from exc
            env = her_mujoco.make_task(self.task, **kwargs)
            return TrainingSafetyLayer.install(env) if self.safety_layer else env
        assert self.env_id is not None
        if self.env_id not in gym.registry and ":" not in self.env_id:
            try:  # the Fetch, Hand and Maze goal envs register on import
                import gymnasium_robotics  # heavy: only for its env ids

                gym.register_envs(gymnasium_robotics)
            except ImportError:
                pass
        if self.env_id.startswith("Her") and self.env_id not in gym.registry:
            import her_mujoco  # loads MuJoCo: registers the Her* env ids
        try:
            return gym.make(self.env_id, **kwargs)
        except gym.error.Error as exc:
            raise PolicyError(f"cannot make env {self.env_id!r}: {exc}") from exc


def episode_length(env: Any) -> int:
    """Steps per episode from the env's time limit (50 for Fetch and our tasks)."""
    steps = getattr(getattr(env, "spec", None), "max_episode_steps", None)
    if not steps:
        raise EnvContractError(
            "the env has no time limit (spec.max_episode_steps); goal envs need one, "
            "e.g. gym.register(..., max_episode_steps=50)"
        )
    return int(steps)


def goal_space_of(env: Any, name: str | None = None, *, check: bool = True) -> GoalSpace:
    """The env's goal space: its own, or one built from a Gymnasium-Robotics env and checked."""
    base = env.unwrapped
    own = getattr(base, "goal_space", None)
    if isinstance(own, GoalSpace):
        return own
    spaces: Any = getattr(env, "observation_space", None)
    try:
        dim = int(spaces["desired_goal"].shape[0])
    except (KeyError, TypeError, IndexError) as exc:
        raise EnvContractError(
            "not a goal env: the observation space needs 'observation', 'achieved_goal' and "
            f"'desired_goal' entries ({exc})"
        ) from exc
    threshold = getattr(base, "distance_threshold", None)
    if threshold is None:
        raise EnvContractError(
            f"env {name or type(base).__name__} has neither a goal_space nor a distance_threshold; "
            "cannot tell what success means"
        )
    env_id = name or getattr(getattr(env, "spec", None), "id", None) or type(base).__name__
    space = GoalSpace(
        name=str(env_id),
        dim=dim,
        units="m",
        frame="world",
        tolerance=float(threshold),
        description=f"desired_goal of {env_id} (Gymnasium goal env)",
    )
    if check:
        check_reward_agreement(env, space)
    return space


def check_reward_agreement(env: Any, space: GoalSpace, n: int = 256, seed: int = 0) -> None:
    """Raise unless ``space.compute_reward`` equals the env's ``compute_reward`` on sampled pairs.

    Pairs are a real achieved goal and points at distances spread over [0, 2 * tolerance]
    (avoiding a hair's breadth around the tolerance, where ``<`` and ``<=`` may differ),
    so both successes and failures are compared, batched as (n, dim).
    """
    obs, _ = env.reset(seed=HELDOUT_SEED_BASE - 1)
    rng = np.random.default_rng(seed)
    achieved = np.repeat(np.asarray(obs["achieved_goal"], np.float64)[None], n, axis=0)
    direction = rng.normal(size=achieved.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    frac = rng.uniform(0.0, 2.0, n)
    frac = np.where(np.abs(frac - 1.0) < 1e-3, 0.5, frac)
    desired = achieved + direction * (frac * space.tolerance)[:, None]
    ours = space.compute_reward(achieved, desired)
    try:
        theirs = np.asarray(env.unwrapped.compute_reward(achieved, desired, None), np.float64)
    except Exception as exc:
        raise EnvContractError(
            f"env compute_reward failed on a batch of {n} goal pairs ({exc}); a goal env's "
            "compute_reward must be vectorised over a leading batch axis"
        ) from exc
    if theirs.shape != (n,):
        raise EnvContractError(
            f"env compute_reward returned shape {theirs.shape} for a batch of {n}; expected ({n},)"
        )
    bad = np.flatnonzero(theirs != ours)
    if bad.size:
        i = int(bad[0])
        raise EnvContractError(
            f"goal space {space.name!r} (tolerance {space.tolerance} {space.units}) disagrees "
            f"with the env's compute_reward on {bad.size} of {n} pairs, e.g. achieved "
            f"{achieved[i].tolist()} desired {desired[i].tolist()}: ours {ours[i]}, env "
            f"{theirs[i]}. The env's reward is not the sparse 'distance < tolerance' reward."
        )


def layout_of(env: Any) -> PolicyLayout:
    """Observation/goal/action sizes and action range of a goal env."""
    spaces = env.observation_space
    action_space = env.action_space
    low = np.asarray(action_space.low, np.float64).reshape(-1)
    high = np.asarray(action_space.high, np.float64).reshape(-1)
    obs_layout = getattr(env.unwrapped, "observation_layout", None)
    fields: tuple[tuple[str, int, int], ...] = ()
    if obs_layout is not None and hasattr(obs_layout, "fields"):
        fields = tuple((str(f.name), int(f.start), int(f.stop)) for f in obs_layout.fields)
    return PolicyLayout(
        observation_dim=int(spaces["observation"].shape[0]),
        goal_dim=int(spaces["desired_goal"].shape[0]),
        action_dim=int(low.shape[0]),
        action_low=tuple(low.tolist()),
        action_high=tuple(high.tolist()),
        observation_fields=fields,
    )


def has_goal_sampler(env: Any) -> bool:
    return getattr(env.unwrapped, "goal_sampler", None) is not None


def requested_resets(env: Any, n: int, *, heldout_seed: int = 0) -> list[dict[str, Any]]:
    """``n`` reset keyword sets that each ask for one held-out requested goal.

    her_mujoco-style envs: ``options={"desired_goal": g}`` for goal ``i`` of held-out stream
    ``heldout_seed`` (:func:`her_goals.evaluation.heldout_goal`, the stream an evaluation plan
    names, so ``her eval``, ``her eval --record`` and the audit use the same goals); other goal
    envs: ``seed`` from the held-out range. The reset seed of episode ``i`` is
    :func:`~her_goals.evaluation.heldout_reset_seed`: everything else about the episode (the
    object's start) is the same wherever it is run.
    """
    sampler = getattr(env.unwrapped, "goal_sampler", None)
    if sampler is not None:
        return [
            {"seed": heldout_reset_seed(heldout_seed, i),
             "options": {"desired_goal": np.asarray(heldout_goal(sampler, heldout_seed, i))}}
            for i in range(n)
        ]  # fmt: skip
    return [{"seed": heldout_reset_seed(heldout_seed, i)} for i in range(n)]
