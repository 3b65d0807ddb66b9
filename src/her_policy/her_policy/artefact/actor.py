"""Torch-free actor: the policy's forward pass in numpy, batched over environments.

Collectors (in a worker process), evaluation and ``her eval`` run the policy
through this module, so none of them imports torch. The weights format is the
runtime actor's (``her_policy.deploy.runtime.ActorWeights``): layer matrices (in, out)
float32, ReLU hidden layers, ``tanh`` output, inputs normalised as
``clip((clip(x, ±clip_obs) - mean) / std, ±norm_clip)`` separately for the
observation and the desired goal.

A ``gaussian`` head (SAC) has ``2 * action_dim`` outputs: the mean and the
log-std of a tanh-squashed Gaussian; its deterministic action is ``tanh(mean)``,
so slicing the last layer to the first ``action_dim`` columns gives a plain
deterministic actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_policy.artefact.layout import PolicyLayout
from her_policy.errors import PolicyError

Head = Literal["deterministic", "gaussian"]
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


@dataclass(frozen=True)
class PolicySnapshot:
    """Everything needed to act: weights, output head and normaliser statistics."""

    weights: tuple[NDArray[np.float32], ...]
    biases: tuple[NDArray[np.float32], ...]
    head: Head
    obs_mean: NDArray[np.float32]
    obs_std: NDArray[np.float32]
    goal_mean: NDArray[np.float32]
    goal_std: NDArray[np.float32]
    clip_obs: float = 200.0
    norm_clip: float = 5.0

    def __post_init__(self) -> None:
        if not self.weights or len(self.weights) != len(self.biases):
            raise PolicyError("policy snapshot needs matching, non-empty weights and biases")
        width = self.obs_mean.shape[0] + self.goal_mean.shape[0]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise PolicyError(
                    f"policy layer {i}: weight {w.shape} / bias {b.shape} do not chain from {width}"
                )
            width = w.shape[1]
        if self.head == "gaussian" and width % 2:
            raise PolicyError(f"a gaussian head needs an even output width, got {width}")

    @property
    def action_dim(self) -> int:
        out = int(self.weights[-1].shape[1])
        return out // 2 if self.head == "gaussian" else out

    def deterministic(self) -> PolicySnapshot:
        """The same policy as a plain tanh-output actor (gaussian heads keep only the mean)."""
        if self.head == "deterministic":
            return self
        a = self.action_dim
        return PolicySnapshot(
            weights=(*self.weights[:-1], np.ascontiguousarray(self.weights[-1][:, :a])),
            biases=(*self.biases[:-1], np.ascontiguousarray(self.biases[-1][:a])),
            head="deterministic",
            obs_mean=self.obs_mean,
            obs_std=self.obs_std,
            goal_mean=self.goal_mean,
            goal_std=self.goal_std,
            clip_obs=self.clip_obs,
            norm_clip=self.norm_clip,
        )

    def arrays(self) -> dict[str, Any]:
        """The arrays and header in the runtime actor's ``.npz`` layout (``her_policy.artefact.actor/1``)."""
        det = self.deterministic()
        out: dict[str, Any] = {}
        for i, (w, b) in enumerate(zip(det.weights, det.biases)):
            out[f"w{i}"], out[f"b{i}"] = w, b
        out.update(
            obs_mean=det.obs_mean,
            obs_std=det.obs_std,
            goal_mean=det.goal_mean,
            goal_std=det.goal_std,
        )
        return out


class BatchActor:
    """Actions for a batch of (observation, desired goal) pairs, in [-1, 1] network units."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot
        s = snapshot
        self._mean = np.concatenate([s.obs_mean, s.goal_mean]).astype(np.float32)
        self._inv_std = (1.0 / np.concatenate([s.obs_std, s.goal_std])).astype(np.float32)
        self._n_obs = s.obs_mean.shape[0]
        self.action_dim = s.action_dim

    def _forward(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[Any]:
        s = self.snapshot
        o = np.asarray(observation, dtype=np.float32)
        g = np.asarray(desired_goal, dtype=np.float32)
        if o.ndim == 1:
            o, g = o[None], g[None]
        x = np.concatenate([o, g], axis=-1)
        if x.shape[-1] != self._mean.shape[0]:
            raise PolicyError(
                f"policy expects observation ({self._n_obs},) + goal "
                f"({self._mean.shape[0] - self._n_obs},), got {o.shape[-1]} + {g.shape[-1]}"
            )
        np.clip(x, -s.clip_obs, s.clip_obs, out=x)
        x = (x - self._mean) * self._inv_std
        np.clip(x, -s.norm_clip, s.norm_clip, out=x)
        last = len(s.weights) - 1
        for i, (w, b) in enumerate(zip(s.weights, s.biases)):
            x = x @ w + b
            if i < last:
                np.maximum(x, 0.0, out=x)
        return x

    def __call__(
        self,
        observation: ArrayLike,
        desired_goal: ArrayLike,
        *,
        rng: np.random.Generator | None = None,
        noise: float = 0.0,
        random_eps: float = 0.0,
    ) -> NDArray[np.float64]:
        """(N, action_dim) actions in [-1, 1]; deterministic unless ``rng`` is given.

        With ``rng``: gaussian heads sample their distribution; then Gaussian
        ``noise`` (std) is added, and each row is replaced by a uniform random
        action with probability ``random_eps``.
        """
        out = self._forward(observation, desired_goal).astype(np.float64)
        a = self.action_dim
        if self.snapshot.head == "gaussian":
            mean = out[:, :a]
            if rng is None:
                return np.tanh(mean)
            log_std = np.clip(out[:, a:], LOG_STD_MIN, LOG_STD_MAX)
            action = np.tanh(mean + np.exp(log_std) * rng.standard_normal(mean.shape))
        else:
            action = np.tanh(out)
            if rng is None:
                return action
        if noise > 0:
            action = np.clip(action + noise * rng.standard_normal(action.shape), -1.0, 1.0)
        if random_eps > 0:
            replace = np.asarray(rng.random(action.shape[0]) < random_eps)
            if replace.any():
                action[replace] = rng.uniform(-1.0, 1.0, (int(replace.sum()), a))
        return action


class DeterministicPolicy:
    """A snapshot's deterministic policy in env action units: what evaluation runs."""

    def __init__(
        self, snapshot: PolicySnapshot, layout: PolicyLayout, goal_space: Any = None
    ) -> None:
        self.actor = BatchActor(snapshot.deterministic())
        self.layout = layout
        self.goal_space = goal_space

    def act_batch(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        """(N, action_dim) env actions for (N, obs) observations and (N, goal) goals."""
        return self.layout.to_env_action(self.actor(observation, desired_goal))

    def act(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        """One env action (action_dim,) for one observation and goal."""
        return self.act_batch(np.atleast_2d(observation), np.atleast_2d(desired_goal))[0]
