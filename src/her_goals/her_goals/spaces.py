"""Goal spaces: the one place that decides what "reached the goal" means.

A goal space is data (name, dimension, units, frame, success tolerance) plus the
pure reward function every other component calls: the simulator, the HER
relabeller, the recorder, the trainer, evaluation and the audit. Following
Gymnasium-Robotics, the contract is::

    reward == goal_space.compute_reward(achieved_goal, desired_goal)

for a single step as for a relabelled batch, because every function here works
over the last axis and any leading batch shape. Nothing here looks at an env or
at training history.

Success is ``distance < tolerance`` and the sparse reward is ``0`` on success
and ``-1`` otherwise, so ``reward == is_success - 1`` always holds (including at
the boundary ``distance == tolerance``, which is a failure for both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.config import from_mapping, suggest
from her_goals.errors import GoalError, GoalShapeError, NonFiniteGoalError, UnknownGoalSpaceError


@dataclass(frozen=True)
class GoalSpace:
    """What a goal is and when it counts as reached."""

    name: str
    """Registry name, e.g. ``object_position``."""
    dim: int
    """Number of components of one goal vector."""
    units: str
    """Units of every component and of ``tolerance`` (``m`` or ``rad``)."""
    frame: str
    """Frame the goal is expressed in (e.g. ``base_link``)."""
    tolerance: float
    """Success threshold on the Euclidean distance, in ``units``."""
    description: str = ""
    """One line for reports."""
    periodic: bool = False
    """True for angles that wrap at 2*pi (distance uses the shortest arc)."""

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise GoalShapeError(f"goal space {self.name!r}: dim must be >= 1, got {self.dim}")
        if not np.isfinite(self.tolerance) or self.tolerance <= 0:
            raise NonFiniteGoalError(
                f"goal space {self.name!r}: tolerance must be a positive number of "
                f"{self.units}, got {self.tolerance}"
            )

    # -- validation ---------------------------------------------------------
    def check(self, goal: ArrayLike, what: str = "goal") -> NDArray[np.float64]:
        """Return ``goal`` as a float array after checking its last axis and finiteness."""
        arr = np.asarray(goal, dtype=np.float64)
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise GoalShapeError(
                f"{what} has shape {arr.shape}, but goal space {self.name!r} needs "
                f"(..., {self.dim}) [{self.units} in {self.frame}]. Pass one goal as a "
                f"vector of {self.dim} or a batch as (N, {self.dim})."
            )
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0].tolist()
            raise NonFiniteGoalError(
                f"{what} contains NaN or inf (first at index {bad}) for goal space "
                f"{self.name!r}; check the sensor or message that produced it."
            )
        return arr

    def _pair(
        self, achieved: ArrayLike, desired: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        a = self.check(achieved, "achieved_goal")
        d = self.check(desired, "desired_goal")
        if a.shape != d.shape:
            # No silent broadcasting: a (N, 3) batch against one (3,) goal is almost
            # always a relabelling bug, so the caller must tile explicitly.
            raise GoalShapeError(
                f"achieved_goal shape {a.shape} and desired_goal shape {d.shape} differ; "
                f"goal space {self.name!r} compares them element-wise without broadcasting. "
                "Tile the goal to the batch shape explicitly (np.broadcast_to)."
            )
        return a, d

    # -- the contract -------------------------------------------------------
    def distance(self, achieved: ArrayLike, desired: ArrayLike) -> NDArray[np.float64]:
        """Euclidean distance over the last axis, in ``units``; shape = leading shape."""
        a, d = self._pair(achieved, desired)
        delta = a - d
        if self.periodic:
            delta = (delta + np.pi) % (2.0 * np.pi) - np.pi
        return np.asarray(np.linalg.norm(delta, axis=-1))

    def is_success(self, achieved: ArrayLike, desired: ArrayLike) -> NDArray[np.bool_]:
        """True where the achieved goal is within ``tolerance`` of the desired goal."""
        return np.asarray(self.distance(achieved, desired) < self.tolerance)

    def compute_reward(
        self, achieved: ArrayLike, desired: ArrayLike, info: Any = None
    ) -> NDArray[np.float32]:
        """Sparse reward: 0 where successful, -1 otherwise; shape = leading shape.

        ``info`` is accepted for Gymnasium-Robotics compatibility and not used: None, a
        mapping, or one mapping per sample (what vectorised envs and SB3 pass). Anything else
        is a caller's mistake (arguments in the wrong order?) and raises.
        """
        if info is not None and not isinstance(info, Mapping):
            items = info.tolist() if isinstance(info, np.ndarray) else info
            if isinstance(items, str | bytes) or not (
                isinstance(items, list | tuple) and all(isinstance(i, Mapping) for i in items)
            ):
                raise GoalError(
                    f"compute_reward(achieved, desired, info): info must be None, a mapping or one "
                    f"mapping per sample, got {type(info).__name__} {str(info)[:60]!r}; "
                    "check the argument order"
                )
        return self.is_success(achieved, desired).astype(np.float32) - np.float32(1.0)

    # -- serialisation ------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """Plain-data description, stored in bags, artefacts and reports."""
        return dataclasses.asdict(self)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> GoalSpace:
        """Rebuild a goal space from :meth:`spec` output, rejecting unknown keys."""
        return from_mapping(cls, spec, where="goal_space")

    def with_tolerance(self, tolerance: float) -> GoalSpace:
        """The same space with another success threshold (in ``units``)."""
        return dataclasses.replace(self, tolerance=float(tolerance))

    def same_as(self, other: GoalSpace) -> bool:
        """True when rewards computed in ``self`` and ``other`` agree."""
        return (self.name, self.dim, self.units, self.frame, self.tolerance, self.periodic) == (
            other.name,
            other.dim,
            other.units,
            other.frame,
            other.tolerance,
            other.periodic,
        )


EE_POSITION = GoalSpace(
    name="ee_position",
    dim=3,
    units="m",
    frame="base_link",
    tolerance=0.05,
    description="end-effector (tool centre point) position",
)
OBJECT_POSITION = GoalSpace(
    name="object_position",
    dim=3,
    units="m",
    frame="base_link",
    tolerance=0.05,
    description="position of the manipulated object's centre",
)
JOINT_ANGLE = GoalSpace(
    name="joint_angle",
    dim=1,
    units="rad",
    frame="joint",
    tolerance=0.05,
    description="angle of one hinge joint (a door or a lid)",
)
JOINT_POSITION = GoalSpace(
    name="joint_position",
    dim=1,
    units="m",
    frame="joint",
    # The drawer task's 2 cm: a task's tolerance is the truth (her_goals.tasks.register_task gives
    # the registered space its task's tolerance); 0.01 here once scored the drawer's bags twice as
    # strictly as its env, presets and README figures (all 0.02) when read by name.
    tolerance=0.02,
    description="travel of one prismatic joint (a drawer)",
)

GOAL_SPACES: dict[str, GoalSpace] = {
    s.name: s for s in (EE_POSITION, OBJECT_POSITION, JOINT_ANGLE, JOINT_POSITION)
}


def get_goal_space(name: str, *, tolerance: float | None = None) -> GoalSpace:
    """Look up a registered goal space by name (optionally with another tolerance)."""
    try:
        space = GOAL_SPACES[name]
    except KeyError:
        raise UnknownGoalSpaceError(
            f"unknown goal space {name!r}.{suggest(name, GOAL_SPACES)} "
            f"Registered: {', '.join(sorted(GOAL_SPACES))}; register your own with "
            "her_goals.register_goal_space()."
        ) from None
    return space if tolerance is None else space.with_tolerance(tolerance)


def register_goal_space(space: GoalSpace, *, overwrite: bool = False) -> GoalSpace:
    """Add a goal space to the registry so configs can name it."""
    if space.name in GOAL_SPACES and not overwrite and GOAL_SPACES[space.name] != space:
        raise UnknownGoalSpaceError(
            f"goal space {space.name!r} is already registered with another definition; "
            "pick another name or pass overwrite=True"
        )
    GOAL_SPACES[space.name] = space
    return space
