"""The one numpy forward pass of a policy: one (observation, goal) per control tick, or a batch.

Collectors (in a worker process), evaluation, ``her eval`` and the robot's control loop
all act through :class:`NumpyActor`, so none of them imports torch. Two entry points,
one set of weights:

* ``actor(observation, desired_goal)``: one action on preallocated float32 buffers
  (each layer's bias folded into its matrix against a constant-1 input, so a layer is
  one ``matmul`` and one in-place activation: no allocation until the output). This is
  the control tick's path; measured p50 16-17 us for 3x256 on the shared 2-core machine
  against 74-76 us for the same network in eager torch (bench/bench_safety.py, "actor
  alone"), of which ~9 us are the four float32 matmuls.
* ``actor.batch(observations, goals, rng=..., noise=..., random_eps=...)``: (N, action)
  actions for N environments, with exploration (a gaussian head samples its
  distribution, then Gaussian noise, then uniform random actions with probability
  ``random_eps``).

Outputs are in network units ([-1, 1] times ``max_action``); :class:`DeterministicPolicy`
maps them to the env's action range through the policy's layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.vector_ops import clip
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.weights import F32, LOG_STD_MAX, LOG_STD_MIN, ActorWeights
from her_policy.errors import PolicyError


class NumpyActor:
    """Actions of an :class:`ActorWeights` policy, one at a time or in batches (see module doc)."""

    def __init__(self, weights: ActorWeights) -> None:
        self.weights = weights
        det = weights.deterministic()
        no, width = weights.obs_dim, weights.obs_dim + weights.goal_dim
        self.action_dim = weights.action_dim
        self._mean = np.concatenate((weights.obs_mean, weights.goal_mean)).astype(np.float32)
        self._inv_std = (1.0 / np.concatenate((weights.obs_std, weights.goal_std))).astype(np.float32)
        self._c, self._n = np.float32(weights.clip_obs), np.float32(weights.norm_clip)
        self._relu = weights.hidden_activation == "relu"
        self._max_action = float(weights.max_action)
        # Single-call buffers [obs, goal, 1]; the normaliser works on the first `width` entries.
        self._buf = np.ones(width + 1, dtype=np.float32)
        self._x = self._buf[:width]
        self._xo, self._xg = self._buf[:no], self._buf[no:width]
        self._layers: list[tuple[F32, F32, F32]] = []
        source = self._buf
        for w, b in zip(det.weights, det.biases):
            w_aug = np.ascontiguousarray(np.vstack((w, b[None, :])), dtype=np.float32)
            out = np.ones(w.shape[1] + 1, dtype=np.float32)  # [activations, 1]
            self._layers.append((source, w_aug, out[:-1]))
            source = out

    @property
    def obs_dim(self) -> int:
        return self.weights.obs_dim

    @property
    def goal_dim(self) -> int:
        return self.weights.goal_dim

    def __call__(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        """The deterministic action (action_dim,) float64 for one input; NaN in -> NaN out."""
        c, n, x = self._c, self._n, self._x
        self._xo[:] = observation  # cast to float32 on assignment
        self._xg[:] = desired_goal
        clip(x, -c, c, out=x)  # the clip ufunc: max then min, one call
        np.subtract(x, self._mean, out=x)
        np.multiply(x, self._inv_std, out=x)
        clip(x, -n, n, out=x)
        layers = self._layers
        last = len(layers) - 1
        relu = self._relu
        for i, (src, w_aug, dst) in enumerate(layers):
            np.matmul(src, w_aug, out=dst)
            if i < last:
                if relu:
                    np.maximum(dst, 0.0, out=dst)
                else:
                    np.tanh(dst, out=dst)
        head = layers[-1][2]
        np.tanh(head, out=head)  # in its buffer: the next call's matmul overwrites it
        out = head.astype(np.float64)  # the one allocation: the caller keeps the action
        if self._max_action != 1.0:
            out *= self._max_action
        return out

    act = __call__

    def _forward_batch(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[Any]:
        w = self.weights
        o = np.asarray(observation, dtype=np.float32)
        g = np.asarray(desired_goal, dtype=np.float32)
        if o.ndim == 1:
            o, g = o[None], g[None]
        x = np.concatenate([o, g], axis=-1)
        if x.shape[-1] != self._mean.shape[0]:
            raise PolicyError(
                f"policy expects observation ({self.obs_dim},) + goal ({self.goal_dim},), "
                f"got {o.shape[-1]} + {g.shape[-1]}"
            )
        np.clip(x, -w.clip_obs, w.clip_obs, out=x)
        x = (x - self._mean) * self._inv_std
        np.clip(x, -w.norm_clip, w.norm_clip, out=x)
        last = len(w.weights) - 1
        for i, (wi, bi) in enumerate(zip(w.weights, w.biases)):
            x = x @ wi + bi
            if i < last:
                if self._relu:
                    np.maximum(x, 0.0, out=x)
                else:
                    np.tanh(x, out=x)
        return x

    def batch(
        self,
        observation: ArrayLike,
        desired_goal: ArrayLike,
        *,
        rng: np.random.Generator | None = None,
        noise: float = 0.0,
        random_eps: float = 0.0,
        unit_noise: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """(N, action_dim) actions; deterministic unless ``rng`` is given (see the module doc).
        ``unit_noise``: the (N, action_dim) standard-normal draws the Gaussian action noise
        scales (a coloured sequence's current step), instead of fresh ones from ``rng``."""
        out = self._forward_batch(observation, desired_goal).astype(np.float64)
        a = self.action_dim
        if self.weights.head == "gaussian":
            mean = out[:, :a]
            if rng is None:
                return self._max_action * np.tanh(mean)
            log_std = np.clip(out[:, a:], LOG_STD_MIN, LOG_STD_MAX)
            action = np.tanh(mean + np.exp(log_std) * rng.standard_normal(mean.shape))
        else:
            action = np.tanh(out)
            if rng is None:
                return self._max_action * action if self._max_action != 1.0 else action
        if noise > 0:
            draws = rng.standard_normal(action.shape) if unit_noise is None else unit_noise
            action = np.clip(action + noise * draws, -1.0, 1.0)
        if random_eps > 0:
            replace = np.asarray(rng.random(action.shape[0]) < random_eps)
            if replace.any():
                action[replace] = rng.uniform(-1.0, 1.0, (int(replace.sum()), a))
        return self._max_action * action if self._max_action != 1.0 else action


class DeterministicPolicy:
    """A policy's deterministic actions in env units: what evaluation runs."""

    def __init__(self, weights: ActorWeights, layout: PolicyLayout, goal_space: Any = None) -> None:
        self.actor = NumpyActor(weights.deterministic())
        self.layout = layout
        self.goal_space = goal_space

    def act_batch(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        """(N, action_dim) env actions for (N, obs) observations and (N, goal) goals."""
        return self.layout.to_env_action(self.actor.batch(observation, desired_goal))

    def act(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        """One env action (action_dim,) for one observation and goal."""
        return self.act_batch(np.atleast_2d(observation), np.atleast_2d(desired_goal))[0]
