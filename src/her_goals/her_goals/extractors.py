"""Achieved-goal extraction from measured joint and object state.

The same extractor runs on a ``/joint_states`` + ``/object_pose`` pair on the
robot and on the simulator's state in ``her demo``, so the achieved goal the
trainer sees is the one the goals node published.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.config import suggest
from her_goals.errors import StateError
from her_goals.spaces import GoalSpace


@dataclass(frozen=True)
class RobotState:
    """One measurement of the arm and the object, as ROS messages carry it.

    ``object_pose`` is ``[x, y, z, qw, qx, qy, qz]`` in the goal frame, or None
    when no object is tracked. Stamps are integer nanoseconds.
    """

    joint_names: tuple[str, ...]
    position: NDArray[np.float64]
    velocity: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    effort: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    stamp_ns: int = 0
    object_pose: NDArray[np.float64] | None = None
    object_stamp_ns: int = 0

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(set(self.joint_names)) != n:
            raise StateError(f"joint state lists a joint twice: {list(self.joint_names)}")
        for name in ("position", "velocity", "effort"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            object.__setattr__(self, name, arr)
            if name != "position" and arr.size == 0:
                continue
            if arr.shape != (n,):
                raise StateError(
                    f"joint state {name} has {arr.shape} values for {n} joint names; "
                    "each of name/position/velocity/effort needs one entry per joint "
                    "(velocity and effort may be empty)"
                )
        if self.object_pose is not None:
            pose = np.asarray(self.object_pose, dtype=np.float64)
            if pose.shape != (7,):
                raise StateError(f"object_pose must be [x y z qw qx qy qz], got shape {pose.shape}")
            object.__setattr__(self, "object_pose", pose)

    def joints(self, names: Sequence[str], what: str = "position") -> NDArray[np.float64]:
        """Values of ``names`` (in that order) from this state, with a clear error if any is missing."""
        index = _name_index(self.joint_names)
        missing = [n for n in names if n not in index]
        if missing:
            hint = suggest(missing[0], self.joint_names)
            raise StateError(
                f"joint state has no joint(s) {missing}.{hint} It has {list(self.joint_names)}; "
                "fix the joint names in the arm config or remap the driver's names."
            )
        values = np.asarray(getattr(self, what))
        if values.size == 0:
            raise StateError(f"joint state carries no {what} values")
        out = values[[index[n] for n in names]]
        if not np.isfinite(out).all():
            bad = [n for n, v in zip(names, out) if not np.isfinite(v)]
            raise StateError(f"joint state {what} is NaN/inf for {bad}")
        return out


@lru_cache(maxsize=64)
def _name_index(joint_names: tuple[str, ...]) -> dict[str, int]:
    # Joint names rarely change between messages; building the map once per
    # distinct name list keeps a 1 kHz joint-state callback cheap.
    return {n: i for i, n in enumerate(joint_names)}


class AchievedGoalExtractor:
    """Maps a :class:`RobotState` to the achieved goal of one goal space."""

    space: GoalSpace

    def __call__(self, state: RobotState) -> NDArray[np.float64]:
        raise NotImplementedError

    def _checked(self, goal: ArrayLike) -> NDArray[np.float64]:
        arr = np.asarray(goal, dtype=np.float64)
        # The control path calls this every tick: a finite test on Python floats (cheaper than
        # a numpy reduction on 3 entries) says the usual vector is fine; anything else gets
        # the goal space's full check and its message.
        if arr.shape == (self.space.dim,) and all(map(math.isfinite, arr.tolist())):
            return arr
        try:
            return self.space.check(arr, f"achieved goal ({type(self).__name__})")
        except ValueError as exc:
            raise StateError(str(exc)) from exc


class ObjectPositionExtractor(AchievedGoalExtractor):
    """Achieved goal = position of the tracked object."""

    def __init__(self, space: GoalSpace) -> None:
        self.space = space

    def __call__(self, state: RobotState) -> NDArray[np.float64]:
        if state.object_pose is None:
            raise StateError(
                "no object pose in the state: the object_position goal needs /object_pose "
                "(perception or the MuJoCo bridge) to be published"
            )
        return self._checked(state.object_pose[:3])


class EndEffectorPositionExtractor(AchievedGoalExtractor):
    """Achieved goal = tool position from forward kinematics of the measured joints."""

    def __init__(
        self,
        space: GoalSpace,
        joint_names: Sequence[str],
        forward_kinematics: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    ) -> None:
        self.space = space
        self.joint_names = tuple(joint_names)
        self.forward_kinematics = forward_kinematics

    def __call__(self, state: RobotState) -> NDArray[np.float64]:
        q = state.joints(self.joint_names)
        return self._checked(self.forward_kinematics(q))


class JointAngleExtractor(AchievedGoalExtractor):
    """Achieved goal = the position of one joint (a door hinge or a drawer slide)."""

    def __init__(self, space: GoalSpace, joint_name: str) -> None:
        if space.dim != 1:
            raise StateError(f"JointAngleExtractor needs a 1-D goal space, {space.name!r} has {space.dim}")
        self.space = space
        self.joint_name = joint_name

    def __call__(self, state: RobotState) -> NDArray[np.float64]:
        return self._checked(state.joints([self.joint_name]))
