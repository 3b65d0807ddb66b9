"""Small pure-numpy goal envs and hand-built episodes for the learner tests.

``PointGoalEnv`` is a point moved by ``action * 5 cm`` towards a 3-D goal, in two
flavours: ``kind="sampler"`` carries an her_goals GoalSpace and GoalSampler and
honours ``reset(options={"desired_goal": g})`` like our her_mujoco tasks;
``kind="fetchlike"`` has only ``distance_threshold`` and ``compute_reward`` like
Gymnasium-Robotics. ``kind="bad_reward"`` and ``kind="ignores_goal"`` break the
contract on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from her_goals.sampling import GoalRegion, GoalSampler
from her_goals.spaces import GoalSpace

TOY_SPACE = GoalSpace(name="toy_point", dim=3, units="m", frame="world", tolerance=0.05)
REGION = GoalRegion(low=(-0.15, -0.15, -0.15), high=(0.15, 0.15, 0.15))
STEP_M = 0.05
HORIZON = 20


class PointGoalEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    def __init__(self, kind: str = "sampler") -> None:
        self.kind = kind
        self.observation_space = spaces.Dict(
            {
                "observation": spaces.Box(-np.inf, np.inf, (3,), np.float64),
                "achieved_goal": spaces.Box(-np.inf, np.inf, (3,), np.float64),
                "desired_goal": spaces.Box(-np.inf, np.inf, (3,), np.float64),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        if kind in ("sampler", "ignores_goal"):
            self.goal_space = TOY_SPACE
            self.goal_sampler = GoalSampler(TOY_SPACE, REGION, seed=0)
        else:
            self.distance_threshold = 0.05
        self.pos = np.zeros(3)
        self.goal = np.zeros(3)

    def compute_reward(self, achieved: Any, desired: Any, info: Any = None) -> np.ndarray:
        d = np.linalg.norm(np.asarray(achieved) - np.asarray(desired), axis=-1)
        if self.kind == "bad_reward":
            return -(d > 0.08).astype(np.float32)
        return -(d > 0.05).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "observation": self.pos.copy(),
            "achieved_goal": self.pos.copy(),
            "desired_goal": self.goal.copy(),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.15, 0.15, 3)
        options = options or {}
        if "desired_goal" in options and self.kind == "sampler":
            self.goal = np.asarray(options["desired_goal"], np.float64).copy()
        else:
            self.goal = self.np_random.uniform(-0.15, 0.15, 3)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.pos = self.pos + STEP_M * np.clip(np.asarray(action, np.float64), -1, 1)
        obs = self._obs()
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"]))
        return obs, reward, False, False, {"is_success": float(reward == 0.0)}


gym.register("HerPolicyToyPoint-v0", entry_point=PointGoalEnv, max_episode_steps=HORIZON)


@dataclass(frozen=True)
class ToyFactory:
    """Picklable env factory for the toy env."""

    kind: str = "sampler"

    def __call__(self) -> Any:
        return gym.make("HerPolicyToyPoint-v0", kind=self.kind)


class OraclePolicy:
    """Moves straight to the desired goal: success 1.0 on the toy env."""

    def act_batch(self, observation: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        return np.clip((desired_goal - observation) / STEP_M, -1.0, 1.0)


class StillPolicy:
    """Never moves."""

    def act_batch(self, observation: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        return np.zeros_like(observation)


def labelled_episode(episode: int, n_steps: int, goal: float = 99.0) -> dict[str, np.ndarray]:
    """An episode whose arrays name themselves: observation[t] = [episode, t],
    achieved_goal[t] = [episode, t, 0], desired goal [goal, goal, goal].

    With TOY_SPACE (tolerance 5 cm) two achieved goals match only if they are the
    same (episode, t), so a sampled goal tells which step it came from.
    """
    t = np.arange(n_steps + 1, dtype=np.float64)
    obs = np.stack([np.full_like(t, episode), t], axis=1)
    ag = np.stack([np.full_like(t, episode), t, np.zeros_like(t)], axis=1)
    return {
        "observation": obs,
        "action": np.zeros((n_steps, 2)),
        "achieved_goal": ag,
        "desired_goal": np.full(3, goal),
    }


@dataclass(frozen=True)
class BrokenFactory:
    """An env factory that fails, as a misspelt env id would."""

    def __call__(self) -> Any:
        raise RuntimeError("no such env: HerPolicyToyPoint-v9")
