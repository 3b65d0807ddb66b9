"""Running observation and goal normalisers (the OpenAI-baselines HER recipe).

Inputs are first clipped to ``±clip_obs`` (raw units), then standardised with a
running mean and a standard deviation floored at ``eps``, then clipped to
``±clip``::

    x_norm = clip((clip(x, ±clip_obs) - mean) / max(std, eps), ±clip)

The statistics are sums in float64, so updating is exact and order-free; the
mean and std the networks see are cached as float32 after every update. The
artefact stores them, and the runtime actor applies the same formula.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_policy.errors import PolicyError


class RunningNormaliser:
    """Running mean/std of one input vector, with clipping."""

    def __init__(
        self, dim: int, *, eps: float = 0.01, clip: float = 5.0, clip_obs: float = 200.0
    ) -> None:
        if dim < 1:
            raise PolicyError(f"normaliser dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.eps = float(eps)
        self.clip = float(clip)
        self.clip_obs = float(clip_obs)
        self._sum = np.zeros(self.dim)
        self._sumsq = np.zeros(self.dim)
        self.count = 0
        self.mean = np.zeros(self.dim, np.float32)
        self.std = np.ones(self.dim, np.float32)

    def update(self, x: ArrayLike) -> None:
        """Add samples ``x`` of shape (..., dim) to the statistics."""
        arr = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        if not np.isfinite(arr).all():
            raise PolicyError("normaliser update with NaN or inf values")
        arr = np.clip(arr, -self.clip_obs, self.clip_obs)
        self._sum += arr.sum(axis=0)
        self._sumsq += np.square(arr).sum(axis=0)
        self.count += arr.shape[0]
        mean = self._sum / self.count
        var = np.maximum(self.eps**2, self._sumsq / self.count - np.square(mean))
        self.mean = mean.astype(np.float32)
        self.std = np.sqrt(var).astype(np.float32)

    def __call__(self, x: ArrayLike) -> NDArray[np.float32]:
        arr = np.clip(np.asarray(x, dtype=np.float32), -self.clip_obs, self.clip_obs)
        return np.clip((arr - self.mean) / self.std, -self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {
            "sum": self._sum.copy(),
            "sumsq": self._sumsq.copy(),
            "count": self.count,
            "eps": self.eps,
            "clip": self.clip,
            "clip_obs": self.clip_obs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.eps, self.clip, self.clip_obs = (float(state[k]) for k in ("eps", "clip", "clip_obs"))
        self._sum = np.asarray(state["sum"], np.float64).copy()
        self._sumsq = np.asarray(state["sumsq"], np.float64).copy()
        self.count = int(state["count"])
        if self.count:
            mean = self._sum / self.count
            var = np.maximum(self.eps**2, self._sumsq / self.count - np.square(mean))
            self.mean, self.std = mean.astype(np.float32), np.sqrt(var).astype(np.float32)


class GoalConditionedNormaliser:
    """Separate statistics for the observation and the goal; outputs their concatenation."""

    def __init__(
        self,
        observation_dim: int,
        goal_dim: int,
        *,
        eps: float = 0.01,
        clip: float = 5.0,
        clip_obs: float = 200.0,
    ) -> None:
        self.observation = RunningNormaliser(observation_dim, eps=eps, clip=clip, clip_obs=clip_obs)
        self.goal = RunningNormaliser(goal_dim, eps=eps, clip=clip, clip_obs=clip_obs)
        self._key: tuple[int, ...] = ()
        self._mean = np.zeros(observation_dim + goal_dim, np.float32)
        self._inv_std = np.ones(observation_dim + goal_dim, np.float32)

    def __call__(self, observation: ArrayLike, goal: ArrayLike) -> NDArray[np.float32]:
        """(B, obs_dim + goal_dim) float32 network input."""
        o, g = self.observation, self.goal
        key = (o.count, g.count, id(o.mean), id(g.mean))
        if key != self._key:  # statistics changed: rebuild the joined mean and 1/std
            self._mean = np.concatenate([o.mean, g.mean])
            self._inv_std = (1.0 / np.concatenate([o.std, g.std])).astype(np.float32)
            self._key = key
        x = np.concatenate(
            [np.asarray(observation, np.float32), np.asarray(goal, np.float32)], axis=-1
        )
        # One pass per step over the joined input, in place (this runs for every batch).
        np.clip(x, -o.clip_obs, o.clip_obs, out=x)
        x -= self._mean
        x *= self._inv_std
        np.clip(x, -o.clip, o.clip, out=x)
        return x

    def update(self, observation: ArrayLike, goal: ArrayLike) -> None:
        self.observation.update(observation)
        self.goal.update(goal)

    def stats(self) -> dict[str, Any]:
        """Mean/std (float32 lists) and clips, as the artefact and runtime actor store them."""
        o, g = self.observation, self.goal
        return {
            "obs_mean": o.mean.copy(),
            "obs_std": o.std.copy(),
            "goal_mean": g.mean.copy(),
            "goal_std": g.std.copy(),
            "clip_obs": o.clip_obs,
            "norm_clip": o.clip,
            "eps": o.eps,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"observation": self.observation.state_dict(), "goal": self.goal.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.observation.load_state_dict(state["observation"])
        self.goal.load_state_dict(state["goal"])
