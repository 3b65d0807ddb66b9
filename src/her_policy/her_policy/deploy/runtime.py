"""Runtime actor: a trained policy's deterministic action for (observation, desired goal).

The control loop needs the actor's forward pass and nothing else of the learner,
within a tick budget. Two implementations of the same function are kept:

* ``numpy``: a plain forward pass on preallocated float32 buffers (no allocation in
  the hidden layers, no autograd, no dispatcher);
* ``torch``: the same network as an eager ``torch.nn.Sequential`` under
  ``torch.inference_mode()`` (what the learner trained).

:class:`RuntimeActor` checks that both give the same action to 1e-5 on random
inputs, times both on this machine, and keeps the faster one for the loop
(``backend="auto"``).

Weights format (:class:`ActorWeights`, stored as ``.npz`` by :meth:`ActorWeights.save`)::

    x   = concat(clip((clip(o, ±clip_obs) - obs_mean) / obs_std, ±norm_clip),
                 clip((clip(g, ±clip_obs) - goal_mean) / goal_std, ±norm_clip))
    h_i = act(h_{i-1} @ W_i + b_i)      W_i: (in, out) float32, act = relu or tanh
    a   = max_action * tanh(h_last @ W_out + b_out)

which is the OpenAI-baselines HER normaliser (clip_obs 200, norm_clip 5) and
actor. ``obs_std``/``goal_std`` are the normaliser's standard deviations with its
epsilon floor already applied. A policy artefact's ``actor.npz``
(:mod:`her_policy.artefact.store`) is this format; :meth:`RuntimeActor.load` on an artefact
directory verifies its hash and goal space first, maps the network output to the
artefact's action range and keeps the artefact hash for provenance.

Measured on the shared 2-core machine (bench/bench_safety.py, 3x256 MLP, obs 23 +
goal 3): numpy p50 ~24 us, torch eager p50 ~130 us under a load average of ~5, so
``auto`` keeps numpy.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import ConfigError, HerError

Backend = Literal["auto", "numpy", "torch"]
F32 = NDArray[Any]  # float32 after __post_init__; inputs may be any float array

PARITY_ATOL = 1e-5
"""Largest allowed difference between the numpy and torch actions."""


class ActorLoadError(HerError):
    """An actor artefact that cannot be used: missing arrays, wrong shapes, wrong goal space."""


@dataclass(frozen=True)
class ActorWeights:
    """An MLP actor with its input normaliser (see the module docstring for the maths)."""

    weights: tuple[F32, ...]
    """Layer matrices, each (in, out), float32."""
    biases: tuple[F32, ...]
    """Layer biases, each (out,), float32."""
    obs_mean: F32
    obs_std: F32
    goal_mean: F32
    goal_std: F32
    clip_obs: float = 200.0
    """Raw observation and goal clip before normalising."""
    norm_clip: float = 5.0
    """Clip of the normalised inputs."""
    hidden_activation: Literal["relu", "tanh"] = "relu"
    max_action: float = 1.0
    goal_space: str = ""
    """Name of the goal space the actor was trained for ('' = unknown)."""

    def __post_init__(self) -> None:
        ws = tuple(np.ascontiguousarray(w, dtype=np.float32) for w in self.weights)
        bs = tuple(np.ascontiguousarray(b, dtype=np.float32) for b in self.biases)
        norm = {
            name: np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            for name in ("obs_mean", "obs_std", "goal_mean", "goal_std")
        }
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "biases", bs)
        for name, value in norm.items():
            object.__setattr__(self, name, value)
        if not ws or len(ws) != len(bs):
            raise ActorLoadError(
                f"actor needs matching weights and biases, got {len(ws)} and {len(bs)}"
            )
        if (
            norm["obs_mean"].shape != norm["obs_std"].shape
            or norm["goal_mean"].shape != norm["goal_std"].shape
        ):
            raise ActorLoadError("actor normaliser: mean and std shapes differ")
        width = self.obs_dim + self.goal_dim
        for i, (w, b) in enumerate(zip(ws, bs)):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ActorLoadError(
                    f"actor layer {i}: weight {w.shape} / bias {b.shape} do not chain from width {width}"
                )
            width = w.shape[1]
        for name, arr in (
            *norm.items(),
            *((f"w{i}", w) for i, w in enumerate(ws)),
            *((f"b{i}", b) for i, b in enumerate(bs)),
        ):
            if not np.isfinite(arr).all():
                raise ActorLoadError(f"actor {name} contains NaN or inf")
        if (norm["obs_std"] <= 0).any() or (norm["goal_std"] <= 0).any():
            raise ActorLoadError("actor normaliser: standard deviations must be positive")
        if self.hidden_activation not in ("relu", "tanh"):
            raise ActorLoadError(
                f"actor hidden_activation must be relu or tanh, got {self.hidden_activation!r}"
            )

    @property
    def obs_dim(self) -> int:
        return int(self.obs_mean.shape[0])

    @property
    def goal_dim(self) -> int:
        return int(self.goal_mean.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.weights[-1].shape[1])

    @classmethod
    def random(
        cls,
        obs_dim: int,
        goal_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256, 256),
        *,
        seed: int = 0,
        goal_space: str = "",
    ) -> ActorWeights:
        """An untrained actor with PyTorch-like init and a non-trivial normaliser (tests, benchmarks)."""
        rng = np.random.default_rng(seed)
        sizes = [obs_dim + goal_dim, *hidden, action_dim]
        ws, bs = [], []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = 1.0 / math.sqrt(fan_in)
            ws.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            bs.append(rng.uniform(-bound, bound, fan_out))
        return cls(
            weights=tuple(ws),
            biases=tuple(bs),
            obs_mean=rng.normal(0, 0.5, obs_dim),
            obs_std=rng.uniform(0.05, 2.0, obs_dim),
            goal_mean=rng.normal(0, 0.5, goal_dim),
            goal_std=rng.uniform(0.05, 2.0, goal_dim),
            goal_space=goal_space,
        )

    # -- storage ------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the weights as ``.npz`` (arrays plus a JSON header)."""
        path = Path(path)
        meta = {
            "format": "her_policy.artefact.actor/1",
            "n_layers": len(self.weights),
            "clip_obs": self.clip_obs,
            "norm_clip": self.norm_clip,
            "hidden_activation": self.hidden_activation,
            "max_action": self.max_action,
            "goal_space": self.goal_space,
        }
        arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta))}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        for name in ("obs_mean", "obs_std", "goal_mean", "goal_std"):
            arrays[name] = getattr(self, name)
        with path.open("wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ActorWeights:
        """Read weights written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise ActorLoadError(f"actor file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            try:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != "her_policy.artefact.actor/1":
                    raise ActorLoadError(f"{path}: unknown actor format {meta.get('format')!r}")
                n = int(meta["n_layers"])
                return cls(
                    weights=tuple(data[f"w{i}"] for i in range(n)),
                    biases=tuple(data[f"b{i}"] for i in range(n)),
                    obs_mean=data["obs_mean"],
                    obs_std=data["obs_std"],
                    goal_mean=data["goal_mean"],
                    goal_std=data["goal_std"],
                    clip_obs=float(meta["clip_obs"]),
                    norm_clip=float(meta["norm_clip"]),
                    hidden_activation=meta["hidden_activation"],
                    max_action=float(meta["max_action"]),
                    goal_space=str(meta.get("goal_space", "")),
                )
            except KeyError as exc:
                raise ActorLoadError(f"{path}: actor file lacks {exc}") from exc


class NumpyActor:
    """The plain numpy forward pass on preallocated float32 buffers.

    Each layer's bias is folded into its matrix as an extra row, against an input
    buffer whose last entry is a constant 1, so a layer is one ``matmul`` and one
    activation, both written in place: no allocation until the output.
    """

    def __init__(self, weights: ActorWeights) -> None:
        self.w = weights
        no, width = weights.obs_dim, weights.obs_dim + weights.goal_dim
        # Input buffer [obs, goal, 1]; the normaliser works on the first `width` entries.
        self._buf = np.ones(width + 1, dtype=np.float32)
        self._x = self._buf[:width]
        self._xo, self._xg = self._buf[:no], self._buf[no:width]
        self._mean = np.concatenate((weights.obs_mean, weights.goal_mean)).astype(np.float32)
        self._inv_std = (1.0 / np.concatenate((weights.obs_std, weights.goal_std))).astype(
            np.float32
        )
        self._layers: list[tuple[F32, F32, F32]] = []
        source = self._buf
        for w, b in zip(weights.weights, weights.biases):
            w_aug = np.ascontiguousarray(np.vstack((w, b[None, :])), dtype=np.float32)
            out = np.ones(w.shape[1] + 1, dtype=np.float32)  # [activations, 1]
            self._layers.append((source, w_aug, out[:-1]))
            source = out
        self._relu = weights.hidden_activation == "relu"
        self._c, self._n = np.float32(weights.clip_obs), np.float32(weights.norm_clip)
        self._max_action = float(weights.max_action)

    def __call__(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        c, n, x = self._c, self._n, self._x
        self._xo[:] = observation  # cast to float32 on assignment
        self._xg[:] = desired_goal
        np.minimum(x, c, out=x)
        np.maximum(x, -c, out=x)
        np.subtract(x, self._mean, out=x)
        np.multiply(x, self._inv_std, out=x)
        np.minimum(x, n, out=x)
        np.maximum(x, -n, out=x)
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
        out = np.tanh(layers[-1][2]).astype(np.float64)
        if self._max_action != 1.0:
            out *= self._max_action
        return out


class TorchActor:
    """The same network as an eager torch module (normaliser included), under inference_mode."""

    def __init__(self, weights: ActorWeights) -> None:
        import torch

        self._torch = torch
        self.w = weights
        layers: list[Any] = []
        for i, (wi, bi) in enumerate(zip(weights.weights, weights.biases)):
            lin = torch.nn.Linear(wi.shape[0], wi.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(wi.T.copy()))
                lin.bias.copy_(torch.from_numpy(bi))
            layers.append(lin)
            if i < len(weights.weights) - 1:
                layers.append(
                    torch.nn.ReLU() if weights.hidden_activation == "relu" else torch.nn.Tanh()
                )
        layers.append(torch.nn.Tanh())
        self.net = torch.nn.Sequential(*layers).eval()
        self._om = torch.from_numpy(weights.obs_mean)
        self._os = torch.from_numpy(weights.obs_std)
        self._gm = torch.from_numpy(weights.goal_mean)
        self._gs = torch.from_numpy(weights.goal_std)

    def __call__(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        torch, w = self._torch, self.w
        with torch.inference_mode():
            o = torch.as_tensor(np.asarray(observation, dtype=np.float32))
            g = torch.as_tensor(np.asarray(desired_goal, dtype=np.float32))
            o = ((o.clamp(-w.clip_obs, w.clip_obs) - self._om) / self._os).clamp(
                -w.norm_clip, w.norm_clip
            )
            g = ((g.clamp(-w.clip_obs, w.clip_obs) - self._gm) / self._gs).clamp(
                -w.norm_clip, w.norm_clip
            )
            a = self.net(torch.cat((o, g)))
            if w.max_action != 1.0:
                a = a * w.max_action
            return a.numpy().astype(np.float64)


def _percentiles_us(samples_ns: list[int]) -> tuple[float, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) * 1e-3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


class RuntimeActor:
    """Maps (observation, desired goal) to an action with the artefact's normaliser.

    ``backend="auto"`` times the numpy and torch forward passes here and keeps the
    faster; both are checked to agree to :data:`PARITY_ATOL` first. The chosen one is
    in :attr:`backend`, the timings in :attr:`timings_us` (p50, p99 per backend).
    """

    def __init__(
        self,
        weights: ActorWeights,
        *,
        backend: Backend = "auto",
        timing_calls: int = 300,
        action_low: Sequence[float] | None = None,
        action_high: Sequence[float] | None = None,
    ) -> None:
        if backend not in ("auto", "numpy", "torch"):
            raise ConfigError(
                f"runtime actor: backend must be auto, numpy or torch, got {backend!r}"
            )
        self.weights = weights
        self.numpy_actor = NumpyActor(weights)
        self._torch_actor: TorchActor | None = None
        self.timings_us: dict[str, tuple[float, float]] = {}
        self.parity_error: float | None = None
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
        if backend == "auto":
            self.parity_error = self.check_parity()
            self.timings_us = {
                "numpy": self.time_backend("numpy", timing_calls),
                "torch": self.time_backend("torch", timing_calls),
            }
            backend = min(("numpy", "torch"), key=lambda b: self.timings_us[b][0])
        self.backend: Literal["numpy", "torch"] = "numpy" if backend == "numpy" else "torch"
        self._act = self.numpy_actor if self.backend == "numpy" else self.torch_actor

    @classmethod
    def load(
        cls, path: str | Path, *, expect_goal_space: Any = None, backend: Backend = "auto"
    ) -> RuntimeActor:
        """Load a policy artefact directory (``her train --out DIR``) or a bare ``.npz`` of weights.

        ``expect_goal_space`` (a GoalSpace or its name) is checked against the artefact's;
        a mismatch raises ``GoalSpaceMismatchError`` (for bare weights ``ActorLoadError``).
        """
        path = Path(path)
        if path.is_dir() or path.name == "policy.json":
            return cls.from_artefact(path, expect_goal_space=expect_goal_space, backend=backend)
        weights = ActorWeights.load(path)
        expected = getattr(expect_goal_space, "name", expect_goal_space)
        if expected is not None and weights.goal_space and weights.goal_space != expected:
            raise ActorLoadError(
                f"{path}: actor was trained for goal space {weights.goal_space!r}, "
                f"this task uses {expected!r}"
            )
        return cls(weights, backend=backend)

    @classmethod
    def from_artefact(
        cls, path: str | Path, *, expect_goal_space: Any = None, backend: Backend = "auto"
    ) -> RuntimeActor:
        """The runtime actor of a verified policy artefact (hash and goal space checked on load)."""
        from her_policy.artefact.store import load_artefact

        art = load_artefact(path, expect_goal_space=expect_goal_space)
        snap = art.snapshot.deterministic()
        weights = ActorWeights(
            weights=snap.weights,
            biases=snap.biases,
            obs_mean=snap.obs_mean,
            obs_std=snap.obs_std,
            goal_mean=snap.goal_mean,
            goal_std=snap.goal_std,
            clip_obs=snap.clip_obs,
            norm_clip=snap.norm_clip,
            goal_space=art.goal_space.name,
        )
        actor = cls(
            weights,
            backend=backend,
            action_low=art.layout.action_low,
            action_high=art.layout.action_high,
        )
        actor.artefact_hash = art.artefact_hash
        actor.goal_space = art.goal_space
        return actor

    @property
    def torch_actor(self) -> TorchActor:
        """The torch twin (built on first use)."""
        if self._torch_actor is None:
            self._torch_actor = TorchActor(self.weights)
        return self._torch_actor

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
        out = self._act(observation, desired_goal)
        if self._affine is not None:
            offset, half = self._affine
            out = offset + half * out
        return out

    act = __call__

    def _random_inputs(self, n: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        rng = np.random.default_rng(seed)
        w = self.weights
        obs = w.obs_mean + w.obs_std * rng.normal(0, 2.0, (n, w.obs_dim))
        goal = w.goal_mean + w.goal_std * rng.normal(0, 2.0, (n, w.goal_dim))
        return obs.astype(np.float64), goal.astype(np.float64)

    def check_parity(self, n: int = 256, seed: int = 0) -> float:
        """Largest |numpy - torch| action difference over ``n`` random inputs; raises above 1e-5."""
        obs, goal = self._random_inputs(n, seed)
        worst = 0.0
        for o, g in zip(obs, goal):
            worst = max(
                worst, float(np.max(np.abs(self.numpy_actor(o, g) - self.torch_actor(o, g))))
            )
        if not worst <= PARITY_ATOL:
            raise ActorLoadError(
                f"numpy and torch actors disagree by {worst:.3g} (> {PARITY_ATOL}); the weights "
                "format and the forward pass have drifted apart"
            )
        return worst

    def time_backend(
        self, backend: Literal["numpy", "torch"], calls: int = 1000
    ) -> tuple[float, float]:
        """(p50, p99) latency in us of one forward pass of ``backend`` on this machine."""
        fn = self.numpy_actor if backend == "numpy" else self.torch_actor
        obs, goal = self._random_inputs(64, seed=1)
        for i in range(min(50, calls)):  # warm-up
            fn(obs[i % 64], goal[i % 64])
        samples = []
        clock = time.perf_counter_ns
        for i in range(calls):
            o, g = obs[i % 64], goal[i % 64]
            t0 = clock()
            fn(o, g)
            samples.append(clock() - t0)
        return _percentiles_us(samples)
