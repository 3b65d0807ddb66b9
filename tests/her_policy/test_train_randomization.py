"""Domain randomisation in training (issue 13, item 1): per training episode, drawn from the
declared ranges, seeded, applied to the simulator, recorded in the episode's bag; evaluation
episodes run nominal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import her_mujoco
from her_goals.errors import ConfigError
from her_mujoco.randomization import DEFAULT_RANDOMIZATION, DomainRandomization
from her_policy.app.bag_transport import BagRoundTrip
from her_policy.learn.collect import Collector, Exploration
from her_policy.learn.config import build_train_config
from her_policy.learn.envs import EnvSource, layout_of
from her_policy.learn.presets import PRESETS
from her_recorder import EpisodeRecorder
from her_recorder.reader import read_episodes


def _draws(seed: int, n: int = 4) -> list[dict]:
    env = her_mujoco.make_task("push", randomization=DEFAULT_RANDOMIZATION)
    out = [env.reset(seed=seed)[1]["sim_params"]]
    out += [env.reset()[1]["sim_params"] for _ in range(n - 1)]
    return out


def test_training_resets_draw_seeded_parameters_within_the_ranges_and_apply_them() -> None:
    draws = _draws(3)
    assert draws == _draws(3) and draws != _draws(4)
    for params in draws:
        for name, value in params.items():
            low, high = getattr(DEFAULT_RANDOMIZATION, name)
            assert low <= value <= high, name
    # Applied: the arm's joint damping in the simulator's model is the drawn one.
    env = her_mujoco.make_task("push", randomization=DEFAULT_RANDOMIZATION)
    _, info = env.reset(seed=3)
    sim = env.unwrapped.sim
    arm_dofs = sim.model.jnt_dofadr[: len(env.unwrapped.arm_config.arm_joints)]
    np.testing.assert_allclose(sim.model.dof_damping[arm_dofs], info["sim_params"]["joint_damping_nms"])
    # An evaluation episode afterwards runs nominal and says nothing of sim_params.
    _, info = env.reset(options={"split": "heldout"})
    assert "sim_params" not in info and sim.params.nominal


def test_zero_width_ranges_at_nominal_reproduce_the_unrandomised_episodes_exactly() -> None:
    def rollout(**kwargs: object) -> np.ndarray:
        env = her_mujoco.make_task("push", **kwargs)
        obs, _ = env.reset(seed=5)
        rows = [obs["observation"]]
        rng = np.random.default_rng(0)
        for _ in range(15):
            obs, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            rows.append(obs["observation"])
        return np.array(rows)

    np.testing.assert_array_equal(rollout(), rollout(randomization=DomainRandomization()))


def test_collected_episodes_carry_their_parameters_into_the_bag(tmp_path: Path) -> None:
    source = EnvSource(task="reach", kwargs=(("randomization", DEFAULT_RANDOMIZATION),))
    probe = source()
    collector = Collector(source, n_envs=2, seed=0, layout=layout_of(probe))
    episodes = collector.collect(None, Exploration(uniform=True, noise=0.0, random_eps=0.0))
    assert all(e.sim_params is not None for e in episodes)
    space = probe.unwrapped.goal_space
    with EpisodeRecorder(tmp_path / "s", goal_space=space, task="reach") as rec:
        back = BagRoundTrip(rec)(episodes)
    assert [b.sim_params for b in back] == [e.sim_params for e in episodes]
    read = read_episodes(tmp_path / "s", goal_space=space, log_summary=False)
    assert [e.sim_params for e in read.episodes] == [e.sim_params for e in episodes]


def test_randomize_is_checked_before_any_work() -> None:
    assert build_train_config({"task": "push", "randomize": "default"}).randomize == "default"
    block = {"latency_ticks": [0, 2], "block_mass_scale": [0.5, 2.0]}
    assert build_train_config({"task": "push", "randomize": block}).randomize == block
    with pytest.raises(ConfigError, match="Did you mean 'default'"):
        build_train_config({"task": "push", "randomize": "defualt"})
    with pytest.raises(ConfigError, match="Did you mean 'latency_ticks'"):
        build_train_config({"task": "push", "randomize": {"latency_tick": [0, 1]}})
    with pytest.raises(ConfigError, match="low <= high"):
        build_train_config({"task": "push", "randomize": {"latency_ticks": [2, 0]}})
    with pytest.raises(ConfigError, match="cannot be randomised"):
        build_train_config({"env": "FetchPush-v4", "randomize": "default"})
    assert dataclasses.replace(build_train_config({"task": "push"})).randomize == "none"


def test_randomised_push_as_typed_gets_the_randomised_budget_and_the_safety_layer() -> None:
    """`her train --task push --randomize default` runs the budget measured under randomisation,
    through the robot's safety layer; the nominal command and explicit flags are unchanged."""
    nominal = build_train_config({"task": "push"})
    randomised = build_train_config({"task": "push", "randomize": "default"})
    assert randomised.env_steps > nominal.env_steps
    assert randomised.safety_layer and not nominal.safety_layer
    assert randomised.near_start > 0 and randomised.cost_penalty > 0
    # Measured over its own base (the 0.2-updates-per-step recipe), not over whatever push's default is.
    assert randomised.updates_per_step == PRESETS["push_150k"]["updates_per_step"] != nominal.updates_per_step
    flagged = build_train_config({"task": "push", "randomize": "default", "env_steps": 1000, "safety_layer": False,
                                  "cost_penalty": 0.0})  # fmt: skip
    assert flagged.env_steps == 1000 and not flagged.safety_layer
    assert build_train_config({"task": "push", "randomize": "default", "preset": "none"}).env_steps != randomised.env_steps
    # Tasks without randomised settings keep their preset.
    assert build_train_config({"task": "reach", "randomize": "default"}) == dataclasses.replace(
        build_train_config({"task": "reach"}), randomize="default"
    )
