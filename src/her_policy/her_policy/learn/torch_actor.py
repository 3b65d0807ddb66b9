"""The actor's torch twin: the same network as an eager torch module, to prove the numpy pass right.

The learner trains in torch and exports :class:`~her_policy.artefact.weights.ActorWeights`;
everything that acts uses the numpy forward pass. :func:`check_parity` runs both on random
inputs and fails above :data:`PARITY_ATOL`, so the weights format and the two forward passes
cannot drift apart unnoticed (tests and bench/bench_safety.py call it).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from her_policy.artefact.numpy_actor import NumpyActor
from her_policy.artefact.weights import ActorWeights
from her_policy.errors import ActorLoadError

PARITY_ATOL = 1e-5
"""Largest allowed difference between the numpy and torch actions."""


class TorchActor:
    """The same network as an eager torch module (normaliser included), under inference_mode."""

    def __init__(self, weights: ActorWeights) -> None:
        w = self.w = weights.deterministic()
        layers: list[Any] = []
        for i, (wi, bi) in enumerate(zip(w.weights, w.biases)):
            lin = torch.nn.Linear(wi.shape[0], wi.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(wi.T.copy()))
                lin.bias.copy_(torch.from_numpy(bi))
            layers.append(lin)
            if i < len(w.weights) - 1:
                layers.append(torch.nn.ReLU() if w.hidden_activation == "relu" else torch.nn.Tanh())
        layers.append(torch.nn.Tanh())
        self.net = torch.nn.Sequential(*layers).eval()
        self._om, self._os = torch.from_numpy(w.obs_mean), torch.from_numpy(w.obs_std)
        self._gm, self._gs = torch.from_numpy(w.goal_mean), torch.from_numpy(w.goal_std)

    def __call__(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        w = self.w
        with torch.inference_mode():
            o = torch.as_tensor(np.asarray(observation, dtype=np.float32))
            g = torch.as_tensor(np.asarray(desired_goal, dtype=np.float32))
            o = ((o.clamp(-w.clip_obs, w.clip_obs) - self._om) / self._os).clamp(-w.norm_clip, w.norm_clip)
            g = ((g.clamp(-w.clip_obs, w.clip_obs) - self._gm) / self._gs).clamp(-w.norm_clip, w.norm_clip)
            a = self.net(torch.cat((o, g)))
            if w.max_action != 1.0:
                a = a * w.max_action
            return a.numpy().astype(np.float64)


def random_inputs(weights: ActorWeights, n: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``n`` (observation, goal) pairs spread around the normaliser's statistics."""
    rng = np.random.default_rng(seed)
    obs = weights.obs_mean + weights.obs_std * rng.normal(0, 2.0, (n, weights.obs_dim))
    goal = weights.goal_mean + weights.goal_std * rng.normal(0, 2.0, (n, weights.goal_dim))
    return obs.astype(np.float64), goal.astype(np.float64)


def check_parity(weights: ActorWeights, n: int = 256, seed: int = 0) -> float:
    """Largest |numpy - torch| action difference over ``n`` random inputs; raises above 1e-5."""
    numpy_actor, torch_actor = NumpyActor(weights), TorchActor(weights)
    worst = 0.0
    for o, g in zip(*random_inputs(weights, n, seed)):
        worst = max(worst, float(np.max(np.abs(numpy_actor(o, g) - torch_actor(o, g)))))
    if not worst <= PARITY_ATOL:
        raise ActorLoadError(
            f"numpy and torch actors disagree by {worst:.3g} (> {PARITY_ATOL}); the weights "
            "format and the forward pass have drifted apart"
        )
    return worst


def time_forward(fn: Any, weights: ActorWeights, calls: int = 1000) -> tuple[float, float]:
    """(p50, p99) latency in us of one forward pass ``fn(observation, goal)`` on this machine."""
    obs, goal = random_inputs(weights, 64, seed=1)
    for i in range(min(50, calls)):  # warm-up
        fn(obs[i % 64], goal[i % 64])
    samples = []
    clock = time.perf_counter_ns
    for i in range(calls):
        o, g = obs[i % 64], goal[i % 64]
        t0 = clock()
        fn(o, g)
        samples.append(clock() - t0)
    arr = np.asarray(samples, dtype=np.float64) * 1e-3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))
