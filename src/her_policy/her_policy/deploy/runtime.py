"""The robot's actor: a verified policy artefact's deterministic action for (observation, goal).

The control loop needs the actor's forward pass and nothing else of the learner, within
a tick budget. :class:`RuntimeActor` runs the artefact's weights through the numpy
forward pass (:class:`her_policy.artefact.numpy_actor.NumpyActor`), maps the network
output to the artefact's action range and keeps the artefact hash for provenance.

Why numpy and not torch on the robot: the same 3x256 network measured p50 16-17 us in
numpy against 74-76 us in eager torch on the shared 2-core machine (bench/bench_safety.py,
"actor alone", two runs at load 3-6; in the whole tick 96-103 us against 215-229 us),
and deploying then needs no torch at all. The torch twin used to prove the two agree
lives with the learner (``her_policy.learn.torch_actor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_policy.artefact.numpy_actor import NumpyActor
from her_policy.artefact.store import load_artefact
from her_policy.artefact.weights import ActorWeights
from her_policy.errors import ActorLoadError


class RuntimeActor:
    """Maps (observation, desired goal) to an env action with the artefact's normaliser."""

    def __init__(
        self,
        weights: ActorWeights,
        *,
        action_low: Sequence[float] | None = None,
        action_high: Sequence[float] | None = None,
    ) -> None:
        self.weights = weights.deterministic()
        self.numpy_actor = NumpyActor(self.weights)
        self.artefact_hash: str = ""
        """sha256 of the artefact this actor came from ('' for bare weights), for provenance."""
        self.goal_space: Any = None
        """The artefact's GoalSpace (None for bare weights)."""
        # Network output u in [-1, 1] -> env action low + (u + 1) / 2 * (high - low).
        self._affine: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        if action_low is not None or action_high is not None:
            low = np.asarray(action_low, dtype=np.float64)
            high = np.asarray(action_high, dtype=np.float64)
            if (
                low.shape != (weights.action_dim,)
                or high.shape != low.shape
                or not (high > low).all()
            ):
                raise ActorLoadError(
                    f"action bounds {low} .. {high} do not fit a {weights.action_dim}-D actor"
                )
            if not ((low == -1.0).all() and (high == 1.0).all()):
                half = 0.5 * (high - low)
                self._affine = (low + half, half)

    @classmethod
    def load(cls, path: str | Path, *, expect_goal_space: Any = None) -> RuntimeActor:
        """Load a policy artefact directory (``her train --out DIR``) or a bare ``.npz`` of weights.

        ``expect_goal_space`` (a GoalSpace or its name) is checked against the artefact's;
        a mismatch raises ``GoalSpaceMismatchError`` (for bare weights ``ActorLoadError``).
        """
        path = Path(path)
        if path.is_dir() or path.name == "policy.json":
            return cls.from_artefact(path, expect_goal_space=expect_goal_space)
        weights = ActorWeights.load(path)
        expected = getattr(expect_goal_space, "name", expect_goal_space)
        if expected is not None and weights.goal_space and weights.goal_space != expected:
            raise ActorLoadError(
                f"{path}: actor was trained for goal space {weights.goal_space!r}, "
                f"this task uses {expected!r}"
            )
        return cls(weights)

    @classmethod
    def from_artefact(cls, path: str | Path, *, expect_goal_space: Any = None) -> RuntimeActor:
        """The runtime actor of a verified policy artefact (hash and goal space checked on load)."""
        art = load_artefact(path, expect_goal_space=expect_goal_space)
        actor = cls(art.weights, action_low=art.layout.action_low, action_high=art.layout.action_high)
        actor.artefact_hash = art.artefact_hash
        actor.goal_space = art.goal_space
        return actor

    @property
    def obs_dim(self) -> int:
        return self.weights.obs_dim

    @property
    def goal_dim(self) -> int:
        return self.weights.goal_dim

    @property
    def action_dim(self) -> int:
        return self.weights.action_dim

    def __call__(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        """The action (action_dim,) float64 in the env's action range; NaN in -> NaN out."""
        out = self.numpy_actor(observation, desired_goal)
        if self._affine is not None:
            offset, half = self._affine
            out = offset + half * out
        return out

    act = __call__
