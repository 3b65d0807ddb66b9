"""What a recording promises about its goals: the evaluation plan every writer stores in its bags.

An evaluation is a claim the bags can prove (ARCHITECTURE.md, rules 3 and 6). Whoever records
episodes (``her demo``, ``her sim``, the recorder node on a robot) stores one
:class:`EvaluationPlan` in each bag's metadata, and each episode's START event names its
``split`` and its ``stream_index``; each Step names the ``policy`` that produced it. From
that, ``her audit`` re-derives every requested goal of an evaluation:

* ``split == "eval"``: the episode at ``stream_index`` i was asked for goal
  :meth:`EvaluationPlan.goal` (i), the i-th goal of the task's held-out stream with the
  plan's sampler settings and ``stream_seed`` - the same function for every writer and
  the audit, so a goal that did not come from the stream cannot pass as one;
* ``planned_episodes`` episodes with indices ``0 .. planned_episodes - 1`` were planned;
  each must be accounted for (ended, aborted or discarded, with its reason);
* ``policy`` is the artefact hash of the policy that acted (or ``scripted``, ``random``,
  ``hold``; ``learner`` for the policy being trained).

``split == "train"`` says the bag holds training (exploration) episodes: goals from the
training stream, never an evaluation result.

The held-out stream is prefix-stable: goal i does not depend on how many goals are drawn,
so a goals node that starts one episode at a time and ``her demo`` that draws them all at
once produce the same goals for the same plan.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.config import from_mapping, to_plain
from her_goals.errors import ConfigError
from her_goals.sampling import GoalRegion, GoalSampler, cell_split
from her_goals.spaces import GoalSpace
from her_goals.tasks import TaskSpec, get_task, task_goal_space

Vector = NDArray[np.float64]

PLAN_FORMAT = "her-ros-plan/1"
"""``format`` of a serialised plan; another value is not a plan this version can check."""

EVAL = "eval"
"""Split of evaluation episodes: requested goals from the task's held-out stream."""
TRAIN = "train"
"""Split of training (exploration) episodes: goals from the training stream."""
REQUESTED = "requested"
"""Split of an episode whose goal was asked for by hand (not from any stream)."""
SPLITS = (EVAL, TRAIN, REQUESTED)

NO_INDEX = -1
"""``EpisodeEvent.stream_index`` of an episode whose goal did not come from a planned stream."""

POLICY_SCRIPTED = "scripted"
POLICY_RANDOM = "random"
POLICY_HOLD = "hold"
POLICY_LEARNER = "learner"
"""The policy being trained (it changes every update; no artefact exists yet)."""
EXPLORING = "+explore"
"""Suffix of a policy id whose actions carry exploration noise: not the policy itself."""

DEFAULT_CELL_SIZE = GoalSampler.cell_size
DEFAULT_HELDOUT_EVERY = GoalSampler.heldout_every


def split_name(split: str) -> str:
    """The plan/event vocabulary for a sampler split (``heldout`` -> ``eval``)."""
    return EVAL if split in ("heldout", EVAL) else split


def policy_id(base: str, *, noise_std: float = 0.0, random_eps: float = 0.0) -> str:
    """The id recorded in every Step: ``base`` (an artefact hash or ``scripted``...), with
    :data:`EXPLORING` appended when exploration changes its actions."""
    return base + EXPLORING if (noise_std > 0 or random_eps > 0) and base else base


def registered_goal_space(task: TaskSpec | str) -> GoalSpace:
    """The goal space of ``task`` as registered: its goal space with the task's tolerance."""
    return task_goal_space(task)


HELDOUT_RESET_SEED_BASE = 10**12
"""Resets of held-out episodes use seeds from here up (training seeds are far below)."""


def heldout_reset_seed(stream_seed: int, index: int = 0) -> int:
    """The reset seed (object start, simulator noise) of episode ``index`` of held-out stream
    ``stream_seed``: the same for ``her eval``, ``her eval --record``, a trainer's evaluations
    and the arm's, so they all run the same episodes."""
    return HELDOUT_RESET_SEED_BASE + int(stream_seed) * 100_000 + int(index)


def stream_seed_of(stream_seed: int, index: int) -> int:
    """The held-out seed of goal ``index`` of stream ``stream_seed`` (a 64-bit integer)."""
    if index < 0:
        raise ConfigError(f"stream index must be >= 0, got {index}")
    words = np.random.SeedSequence([int(stream_seed) % (1 << 63), int(index), 0x48455252]).generate_state(
        2, np.uint32
    )
    return int(words[0]) << 32 | int(words[1])


@dataclass(frozen=True)
class EvaluationPlan:
    """What one recording promises; stored in each bag (see the module docstring)."""

    task: str
    """Registered task name (her_goals.tasks)."""
    split: Literal["eval", "train"]
    """``eval``: held-out requested goals, an evaluation; ``train``: training episodes."""
    goal_space: GoalSpace
    """The goal space the episodes were recorded in (name, units, frame, tolerance)."""
    goal_region: GoalRegion
    """Where the requested goals come from (the task's region, or the writer's override)."""
    stream_seed: int = 0
    """Seed of the goal stream (held-out for ``eval``)."""
    sampler_seed: int = 0
    """Construction seed of the writer's GoalSampler (its training stream)."""
    cell_size: float = DEFAULT_CELL_SIZE
    """GoalSampler cell edge that splits training from held-out goals (goal units)."""
    heldout_every: int = DEFAULT_HELDOUT_EVERY
    """GoalSampler: one cell in this many is held out."""
    planned_episodes: int = 0
    """Episodes planned, with stream indices 0 .. planned_episodes - 1; 0 = open-ended."""
    policy: str = ""
    """The acting policy: an artefact hash, ``scripted``, ``random``, ``hold`` or ``learner``."""

    def __post_init__(self) -> None:
        if self.split not in (EVAL, TRAIN):
            raise ConfigError(f"evaluation plan: split must be 'eval' or 'train', got {self.split!r}")
        if self.planned_episodes < 0:
            raise ConfigError(f"evaluation plan: planned_episodes must be >= 0, got {self.planned_episodes}")
        if self.goal_region.dim != self.goal_space.dim:
            raise ConfigError(
                f"evaluation plan: goal region has {self.goal_region.dim} dimensions, goal space "
                f"{self.goal_space.name!r} {self.goal_space.dim}"
            )
        if not (math.isfinite(self.cell_size) and self.cell_size > 0) or self.heldout_every < 2:
            raise ConfigError(
                f"evaluation plan: cell_size must be > 0 and heldout_every >= 2, got "
                f"{self.cell_size}, {self.heldout_every}"
            )

    # -- construction ---------------------------------------------------------------
    @classmethod
    def for_task(
        cls,
        task: str,
        split: str,
        *,
        planned_episodes: int = 0,
        policy: str = "",
        stream_seed: int = 0,
        sampler: GoalSampler | None = None,
        goal_space: GoalSpace | None = None,
        goal_region: GoalRegion | None = None,
    ) -> EvaluationPlan:
        """The plan of recording ``task``: the registry's goal space and region unless the writer
        uses others (``sampler`` gives its space, region, seed and cell settings)."""
        spec = get_task(task)
        if sampler is not None:
            goal_space = goal_space or sampler.space
            goal_region = goal_region or sampler.region
        return cls(
            task=spec.name,
            split=split_name(split),  # type: ignore[arg-type]
            goal_space=goal_space or registered_goal_space(spec),
            goal_region=goal_region or spec.goal_region,
            stream_seed=int(stream_seed),
            sampler_seed=int(sampler.seed) if sampler is not None else 0,
            cell_size=float(sampler.cell_size) if sampler is not None else DEFAULT_CELL_SIZE,
            heldout_every=int(sampler.heldout_every) if sampler is not None else DEFAULT_HELDOUT_EVERY,
            planned_episodes=int(planned_episodes),
            policy=str(policy),
        )

    # -- the goal stream --------------------------------------------------------------
    def sampler(self) -> GoalSampler:
        """A GoalSampler with the plan's space, region and cell settings."""
        return GoalSampler(
            self.goal_space,
            self.goal_region,
            seed=self.sampler_seed,
            cell_size=self.cell_size,
            heldout_every=self.heldout_every,
        )

    def goal(self, index: int, sampler: GoalSampler | None = None) -> Vector:
        """Goal ``index`` of the held-out stream (the same for every writer and the audit)."""
        sampler = sampler or self.sampler()
        return heldout_goal(sampler, self.stream_seed, index)

    def goals(self, n: int | None = None) -> NDArray[np.float64]:
        """The first ``n`` (default: the planned number of) held-out goals, shape (n, dim)."""
        count = self.planned_episodes if n is None else int(n)
        sampler = self.sampler()
        if count <= 0:
            return np.zeros((0, self.goal_space.dim))
        return np.stack([heldout_goal(sampler, self.stream_seed, i) for i in range(count)])

    def is_heldout(self, goals: ArrayLike) -> NDArray[np.bool_]:
        """True for goals in a held-out cell under the plan's cell settings."""
        return cell_split(np.asarray(goals, dtype=np.float64), self.cell_size, self.heldout_every)

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored as JSON in the bag metadata)."""
        return {"format": PLAN_FORMAT, **to_plain(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationPlan:
        """Parse :meth:`to_dict` output; raises :class:`ConfigError` naming what is wrong."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"evaluation plan: expected a mapping, got {type(data).__name__}")
        body = dict(data)
        fmt = body.pop("format", None)
        if fmt != PLAN_FORMAT:
            raise ConfigError(f"evaluation plan: format {fmt!r}, this version reads {PLAN_FORMAT!r}")
        try:
            space = GoalSpace.from_spec(body.pop("goal_space"))
            region = from_mapping(GoalRegion, body.pop("goal_region"), where="evaluation plan goal_region")
        except KeyError as exc:
            raise ConfigError(f"evaluation plan: missing {exc}") from None
        fields = {f.name for f in dataclasses.fields(cls)} - {"goal_space", "goal_region"}
        unknown = sorted(set(body) - fields)
        if unknown:
            raise ConfigError(f"evaluation plan: unknown key(s) {unknown}")
        try:
            return cls(goal_space=space, goal_region=region, **body)
        except TypeError as exc:
            raise ConfigError(f"evaluation plan: {exc}") from None

    def same_as(self, other: EvaluationPlan) -> bool:
        """True when both promise the same evaluation (every field equal)."""
        return self.to_dict() == other.to_dict()


def heldout_goal(sampler: GoalSampler, stream_seed: int, index: int) -> Vector:
    """Goal ``index`` of held-out stream ``stream_seed`` of ``sampler``: never a training goal."""
    return sampler.heldout(1, seed=stream_seed_of(stream_seed, index))[0]


# -- physical plausibility ----------------------------------------------------------------


@dataclass(frozen=True)
class UnitLimits:
    """What values are physically plausible for goals in one unit."""

    max_norm: float
    """Largest plausible goal vector norm (a goal farther away is not a goal of this arm)."""
    max_tolerance: float
    """Largest plausible success tolerance."""
    why: str


PLAUSIBLE: dict[str, UnitLimits] = {
    "m": UnitLimits(
        max_norm=1.0,
        max_tolerance=0.2,
        why="a tabletop arm reaches about 0.85 m (Panda); goals farther than 1 m from the base "
        "or a tolerance above 20 cm are not in metres (centimetres or millimetres?)",
    ),
    "rad": UnitLimits(
        max_norm=2.0 * math.pi + 1e-9,
        max_tolerance=math.pi / 4,
        why="angles beyond 2*pi rad or a tolerance above pi/4 are not in radians (degrees?)",
    ),
}
"""Plausible magnitudes per unit; units not listed are not checked."""


def implausible(space: GoalSpace, values: ArrayLike, tolerance: float | None = None) -> str:
    """Why ``values`` (goals in ``space``, any batch shape) or ``tolerance`` are implausible
    for the space's units, or ``""``."""
    limits = PLAUSIBLE.get(space.units)
    if limits is None:
        return ""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size and not np.isfinite(arr).all():
        return "goal values are not finite"
    if arr.size:
        norms = np.linalg.norm(arr.reshape(-1, arr.shape[-1]), axis=-1) if space.units == "m" else np.abs(arr)
        worst = float(np.max(norms))
        if worst > limits.max_norm:
            return f"a goal value of magnitude {worst:.4g} {space.units} (limit {limits.max_norm:.4g}): {limits.why}"
    if tolerance is not None and not (0 < tolerance <= limits.max_tolerance):
        return f"tolerance {tolerance:g} {space.units} (limit {limits.max_tolerance:.4g}): {limits.why}"
    return ""
