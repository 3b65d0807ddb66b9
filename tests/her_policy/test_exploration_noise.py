"""Coloured exploration noise (TrainConfig.noise_color): same per-step size, further reach."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from her_goals.errors import ConfigError
from her_policy.learn.algorithms import make_learner
from her_policy.learn.collect import Collector, Exploration, episode_noise
from her_policy.learn.config import TrainConfig, build_train_config
from her_policy.learn.envs import layout_of

sys.path.insert(0, str(Path(__file__).parent))
from her_policy_toys import HORIZON, ToyFactory


def still_actor(layout):
    """A policy that asks for no motion at all: every move is the exploration noise's."""
    weights = make_learner(layout, TrainConfig(env="HerPolicyToyPoint-v0", hidden=(16, 16)), gamma=0.95, seed=0).snapshot()
    return dataclasses.replace(weights, weights=tuple(np.zeros_like(w) for w in weights.weights),
                               biases=tuple(np.zeros_like(b) for b in weights.biases))  # fmt: skip


def wander(color: float, seed: int = 3) -> tuple[float, np.ndarray]:
    """Mean distance the point travels in an episode, and the first episode's actions."""
    layout = layout_of(ToyFactory()())
    collector = Collector(ToyFactory(), 4, seed=seed, layout=layout)
    exploring = Exploration(noise=0.2, random_eps=0.0, color=color)
    episodes = [ep for _ in range(10) for ep in collector.collect(still_actor(layout), exploring)]
    travel = [np.linalg.norm(ep.next_achieved_goal[-1] - ep.achieved_goal[0]) for ep in episodes]
    return float(np.mean(travel)), episodes[0].action


def test_pink_noise_has_the_same_step_size_and_carries_the_tool_further() -> None:
    draws = episode_noise(1.0, 400, 3, np.random.default_rng(0), 50)
    assert draws.shape == (400, 3, 50)
    assert draws.std() == pytest.approx(1.0, abs=0.1)  # what noise scales: the same std per step
    white, white_actions = wander(0.0)
    pink, pink_actions = wander(1.0)
    assert np.abs(pink_actions).mean() == pytest.approx(np.abs(white_actions).mean(), rel=0.4)
    assert pink > 1.5 * white, (pink, white)
    assert wander(1.0)[0] == pink  # seeded: the same run twice
    assert len(pink_actions) == HORIZON


def test_noise_color_is_a_declared_setting() -> None:
    assert build_train_config({"task": "push", "noise_color": 1}).noise_color == 1.0
    with pytest.raises(ConfigError, match="noise-color"):
        build_train_config({"task": "push", "noise_color": 3})
