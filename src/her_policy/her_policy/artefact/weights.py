"""The one container of a policy's numbers: actor weights, output head and input normaliser.

The learner exports it (``Learner.snapshot()``), collectors and evaluation act with it
through :class:`~her_policy.artefact.numpy_actor.NumpyActor`, an artefact's ``actor.npz``
stores it, and the robot's runtime actor loads it. No torch anywhere here.

The maths (OpenAI baselines' HER normaliser and actor)::

    x   = concat(clip((clip(o, ±clip_obs) - obs_mean) / obs_std, ±norm_clip),
                 clip((clip(g, ±clip_obs) - goal_mean) / goal_std, ±norm_clip))
    h_i = act(h_{i-1} @ W_i + b_i)      W_i: (in, out) float32, act = relu or tanh
    a   = max_action * tanh(h_last @ W_out + b_out)

``obs_std``/``goal_std`` are standard deviations with the normaliser's epsilon floor
already applied. A ``gaussian`` head (SAC) has ``2 * action_dim`` outputs, the mean and
the log-std of a tanh-squashed Gaussian; its deterministic action is ``tanh(mean)``, so
:meth:`ActorWeights.deterministic` keeps the first ``action_dim`` output columns.

Storage (``.npz``, format ``her_policy.actor/1``): arrays ``w{i}``, ``b{i}``, ``obs_mean``,
``obs_std``, ``goal_mean``, ``goal_std`` and a JSON header ``meta``. Read with
``allow_pickle=False`` only: a file from a user is never unpickled.
"""

from __future__ import annotations

import itertools
import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from her_policy.errors import ActorLoadError

Head = Literal["deterministic", "gaussian"]
Activation = Literal["relu", "tanh"]
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
ACTOR_FORMAT = "her_policy.actor/1"
F32 = NDArray[Any]  # float32 after __post_init__; inputs may be any float array
_NORMALISER = ("obs_mean", "obs_std", "goal_mean", "goal_std")


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
    head: Head = "deterministic"
    """``gaussian``: the last layer outputs mean and log-std (SAC); else the action itself."""
    clip_obs: float = 200.0
    """Raw observation and goal clip before normalising."""
    norm_clip: float = 5.0
    """Clip of the normalised inputs."""
    hidden_activation: Activation = "relu"
    max_action: float = 1.0
    """Scale of the tanh output (1: actions in [-1, 1], mapped to env units by the layout)."""
    goal_space: str = ""
    """Name of the goal space the actor was trained for ('' = unknown)."""

    def __post_init__(self) -> None:
        ws = tuple(np.ascontiguousarray(w, dtype=np.float32) for w in self.weights)
        bs = tuple(np.ascontiguousarray(b, dtype=np.float32) for b in self.biases)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "biases", bs)
        for name in _NORMALISER:
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float32))
        if not ws or len(ws) != len(bs):
            raise ActorLoadError(
                f"actor needs matching, non-empty weights and biases, got {len(ws)} and {len(bs)}"
            )
        if self.obs_mean.shape != self.obs_std.shape or self.goal_mean.shape != self.goal_std.shape:
            raise ActorLoadError("actor normaliser: mean and std shapes differ")
        width = self.obs_dim + self.goal_dim
        for i, (w, b) in enumerate(zip(ws, bs)):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ActorLoadError(
                    f"actor layer {i}: weight {w.shape} / bias {b.shape} do not chain from width {width}"
                )
            width = w.shape[1]
        if self.head not in ("deterministic", "gaussian"):
            raise ActorLoadError(f"actor head must be deterministic or gaussian, got {self.head!r}")
        if self.head == "gaussian" and width % 2:
            raise ActorLoadError(f"a gaussian head needs an even output width, got {width}")
        for name, arr in self.named_arrays():
            if not np.isfinite(arr).all():
                raise ActorLoadError(
                    f"actor {name} contains NaN or inf: the policy is broken (a diverged "
                    "training run); retrain it, or use an earlier checkpoint"
                )
        if (self.obs_std <= 0).any() or (self.goal_std <= 0).any():
            raise ActorLoadError("actor normaliser: standard deviations must be positive")
        if self.hidden_activation not in ("relu", "tanh"):
            raise ActorLoadError(
                f"actor hidden_activation must be relu or tanh, got {self.hidden_activation!r}"
            )
        for name in ("clip_obs", "norm_clip", "max_action"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ActorLoadError(f"actor {name} must be a positive number, got {value}")

    # -- shape --------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        return int(self.obs_mean.shape[0])

    @property
    def goal_dim(self) -> int:
        return int(self.goal_mean.shape[0])

    @property
    def action_dim(self) -> int:
        out = int(self.weights[-1].shape[1])
        return out // 2 if self.head == "gaussian" else out

    def named_arrays(self) -> list[tuple[str, F32]]:
        """Every array with its storage name (``w0``, ``b0``, ..., normaliser statistics)."""
        out: list[tuple[str, F32]] = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            out += [(f"w{i}", w), (f"b{i}", b)]
        return out + [(name, getattr(self, name)) for name in _NORMALISER]

    def deterministic(self) -> ActorWeights:
        """The same policy as a plain tanh-output actor (a gaussian head keeps only its mean)."""
        if self.head == "deterministic":
            return self
        a = self.action_dim
        return replace(
            self,
            weights=(*self.weights[:-1], np.ascontiguousarray(self.weights[-1][:, :a])),
            biases=(*self.biases[:-1], np.ascontiguousarray(self.biases[-1][:a])),
            head="deterministic",
        )

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
        """Write the deterministic actor as ``.npz`` (arrays plus a JSON header)."""
        path = Path(path)
        det = self.deterministic()
        meta = {
            "format": ACTOR_FORMAT,
            "n_layers": len(det.weights),
            "clip_obs": det.clip_obs,
            "norm_clip": det.norm_clip,
            "hidden_activation": det.hidden_activation,
            "max_action": det.max_action,
            "goal_space": det.goal_space,
        }
        arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta)), **dict(det.named_arrays())}
        with path.open("wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ActorWeights:
        """Read weights written by :meth:`save`; any damage is an :class:`ActorLoadError` naming the file."""
        path = Path(path)
        if not path.is_file():
            raise ActorLoadError(f"actor file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if not isinstance(meta, dict) or meta.get("format") != ACTOR_FORMAT:
                    got = meta.get("format") if isinstance(meta, dict) else meta
                    raise ActorLoadError(
                        f"{path}: unknown actor format {got!r}; expected {ACTOR_FORMAT!r}"
                    )
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
        except ActorLoadError as exc:
            if str(path) in str(exc):
                raise
            raise ActorLoadError(f"{path}: {exc}") from exc
        except KeyError as exc:
            raise ActorLoadError(f"{path}: actor file lacks {exc}; write it with her train") from exc
        except ValueError as exc:
            if "pickle" in str(exc):
                raise ActorLoadError(
                    f"{path} is not an actor file (not a numpy .npz archive, and HER-ROS never "
                    "unpickles a file); give the artefact directory her train wrote (RUN/policy)"
                ) from None
            raise ActorLoadError(
                f"{path} is not a readable actor file ({exc}); re-export the policy with her train"
            ) from exc
        except (OSError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise ActorLoadError(
                f"{path} is not a readable actor file (truncated, foreign or corrupt: "
                f"{type(exc).__name__}: {exc}); re-export the policy with her train"
            ) from exc
