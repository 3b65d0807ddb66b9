"""What a policy's input and output are: observation layout and action scaling.

Torch-free: the artefact, the collectors and the runtime read it without the
training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_policy.errors import PolicyError


@dataclass(frozen=True)
class PolicyLayout:
    """Sizes of the policy's inputs and the range of its actions.

    The network input is ``concat(normalised observation, normalised desired goal)``;
    the network output ``u`` in ``[-1, 1]`` maps affinely to the env action
    ``low + (u + 1) / 2 * (high - low)``.
    """

    observation_dim: int
    goal_dim: int
    action_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    observation_fields: tuple[tuple[str, int, int], ...] = ()
    """Named slices (name, start, stop) of the observation vector, where the env says them."""

    def __post_init__(self) -> None:
        low, high = np.asarray(self.action_low, float), np.asarray(self.action_high, float)
        if low.shape != (self.action_dim,) or high.shape != (self.action_dim,):
            raise PolicyError(
                f"action bounds {self.action_low} .. {self.action_high} do not have "
                f"{self.action_dim} values"
            )
        if not (np.isfinite(low).all() and np.isfinite(high).all() and (high > low).all()):
            raise PolicyError(
                f"action bounds must be finite with high > low, got {self.action_low} .. "
                f"{self.action_high}"
            )

    @property
    def input_dim(self) -> int:
        return self.observation_dim + self.goal_dim

    def to_env_action(self, unit_action: ArrayLike) -> NDArray[np.float64]:
        """Map network actions in [-1, 1] to the env's action range."""
        low, high = np.asarray(self.action_low), np.asarray(self.action_high)
        u = np.clip(np.asarray(unit_action, dtype=np.float64), -1.0, 1.0)
        return low + (u + 1.0) * 0.5 * (high - low)


    def spec(self) -> dict[str, Any]:
        return {
            "observation_dim": self.observation_dim,
            "goal_dim": self.goal_dim,
            "action_dim": self.action_dim,
            "action_low": list(self.action_low),
            "action_high": list(self.action_high),
            "observation_fields": [list(f) for f in self.observation_fields],
            "input": (
                f"concat(normalised observation[0:{self.observation_dim}], "
                f"normalised desired_goal[0:{self.goal_dim}])"
            ),
            "action_scaling": "env_action = low + (tanh_output + 1) / 2 * (high - low)",
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> PolicyLayout:
        try:
            return cls(
                observation_dim=int(spec["observation_dim"]),
                goal_dim=int(spec["goal_dim"]),
                action_dim=int(spec["action_dim"]),
                action_low=tuple(float(v) for v in spec["action_low"]),
                action_high=tuple(float(v) for v in spec["action_high"]),
                observation_fields=tuple(
                    (str(n), int(a), int(b)) for n, a, b in spec.get("observation_fields", [])
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"policy layout is incomplete or malformed: {exc}") from exc
