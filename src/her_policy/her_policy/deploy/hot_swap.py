"""A running policy that follows a continuous learner's versions and swaps only between episodes.

:class:`FollowingPolicy` is the actor of a control loop (the ROS-free loop, the fleet's
arms, the policy node): it acts with the newest version that fits, and checks for a newer
one only when :meth:`FollowingPolicy.between_episodes` is called, which
:meth:`her_policy.deploy.loop.ControlLoop.run_episode` does before every episode, so a
policy never changes mid-episode. A version that does not load (a damaged file, an edited
``policy.json``) or does not fit (another goal space, task, observation layout or action
size: :func:`her_policy.deploy.fit.check_artefact`) is refused with a diagnostic and never
offered again; the running version keeps acting. Before the first version arrives the
``fallback`` acts (exploration, a scripted controller), or the loop holds the arm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import HerError
from her_goals.spaces import GoalSpace
from her_policy.artefact.store import load_artefact
from her_policy.artefact.versions import VersionFollower
from her_policy.deploy.fit import check_artefact
from her_policy.deploy.runtime import RuntimeActor
from her_policy.errors import PolicyError

Actor = Callable[[NDArray[np.float64], NDArray[np.float64]], ArrayLike]


@dataclass
class SwapEvent:
    """One version offered to the loop: swapped in, or refused and why."""

    version: str
    swapped: bool
    reason: str = ""


@dataclass
class FollowingPolicy:
    """See the module docstring."""

    versions: Path
    goal_space: GoalSpace
    task: str
    observation_fields: list[tuple[str, int, int]]
    action_dim: int
    fallback: Actor | None = None
    explore: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None
    """Applied to the version's action (e.g. exploration noise); None: act as is."""
    on_swap: Callable[[SwapEvent], Any] | None = None
    actor: Any = None
    version: str = ""
    """The version acting now ('' before the first)."""
    artefact_hash: str = ""
    events: list[SwapEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.follower = VersionFollower(Path(self.versions))

    def between_episodes(self) -> SwapEvent | None:
        """Swap in the newest published version if it loads and fits; None when none is new."""
        path = self.follower.newer()
        if path is None:
            return None
        try:
            art = load_artefact(path, expect_goal_space=self.goal_space)
            check_artefact(
                art.metadata, art.layout.spec(), self.observation_fields, self.goal_space.dim,
                self.action_dim, self.task,
            )  # fmt: skip
            actor = RuntimeActor.from_artefact(path, expect_goal_space=self.goal_space)
        except (HerError, OSError, ValueError, KeyError) as exc:
            self.follower.refuse(path)
            event = SwapEvent(path.name, False, f"{path.name} refused, {self.version or 'fallback'} keeps acting: {exc}")
        else:
            self.follower.accept(path)
            self.actor, self.version, self.artefact_hash = actor, path.name, actor.artefact_hash
            event = SwapEvent(path.name, True)
        self.events.append(event)
        if self.on_swap is not None:
            self.on_swap(event)
        return event

    def __call__(self, observation: NDArray[np.float64], goal: NDArray[np.float64]) -> ArrayLike:
        if self.actor is None:
            if self.fallback is None:
                raise PolicyError("no policy version yet and no fallback: holding the arm")
            return self.fallback(observation, goal)
        action = np.asarray(self.actor(observation, goal), dtype=np.float64)
        return action if self.explore is None else self.explore(action)
