"""Training under the safety layer (issue 21, item 2): the robot's limits and monitor in the training
env, their intervention cost as info["cost"] beside the reward, kept in episodes and bags, and
learned from only when the cost penalty is on (after relabelling, never relabelled away)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from her_goals.errors import ConfigError
from her_goals.safety_flags import SafetyFlag
from her_policy.app.bag_transport import BagRoundTrip
from her_policy.learn.buffer import HerReplayBuffer
from her_policy.learn.collect import Collector, Exploration
from her_policy.learn.config import build_train_config
from her_policy.learn.envs import EnvSource, layout_of
from her_policy.learn.train import train
from her_recorder import EpisodeRecorder
from her_recorder.reader import read_episodes

DOWN = np.array([0.0, 0.0, -1.0, 0.0])


def _drive_into_the_table(env, steps: int = 20) -> list[dict]:
    env.reset(seed=1)
    return [env.step(DOWN)[4] for _ in range(steps)]


def test_driving_into_the_table_costs_under_the_safety_layer_and_nothing_without() -> None:
    guarded = _drive_into_the_table(EnvSource(task="push", safety_layer=True)())
    costs = [info["cost"] for info in guarded]
    assert costs[-1] == 1.0 and sum(costs) >= 10  # the push tool starts just above the floor
    assert guarded[-1]["safety_flags"] & SafetyFlag.WORKSPACE
    plain = _drive_into_the_table(EnvSource(task="push")())
    assert all(info["cost"] == 0.0 and info["safety_flags"] == 0 for info in plain)


def test_the_safety_layer_keeps_the_tool_above_the_robots_floor() -> None:
    env = EnvSource(task="push", safety_layer=True)()
    _drive_into_the_table(env, 30)
    floor = env.unwrapped.command_filter.pipeline.monitor.workspace_low_m[2]  # from config/safety.yaml
    tcp_z = env.unwrapped.sim.tcp_position()[2]
    assert floor - 2e-3 <= tcp_z < floor + 5e-3


def test_collected_costs_reach_the_episode_and_its_bag(tmp_path: Path) -> None:
    source = EnvSource(task="push", safety_layer=True)
    probe = source()
    collector = Collector(source, n_envs=2, seed=0, layout=layout_of(probe))
    episodes = collector.collect(None, Exploration(uniform=True))
    assert all(e.safety_cost is not None and e.safety_cost.shape == (e.n_steps,) for e in episodes)
    assert sum(float(e.safety_cost.sum()) for e in episodes) > 0  # random actions hit the floor
    space = probe.unwrapped.goal_space
    with EpisodeRecorder(tmp_path / "s", goal_space=space, task="push") as rec:
        BagRoundTrip(rec)(episodes)
    read = read_episodes(tmp_path / "s", goal_space=space, log_summary=False)
    for back, sent in zip(read.episodes, episodes, strict=True):
        np.testing.assert_allclose(back.safety_cost, sent.safety_cost)
        np.testing.assert_array_equal(back.safety_flags, sent.safety_flags)


def _buffer_with_costs() -> tuple[HerReplayBuffer, np.ndarray]:
    source = EnvSource(task="push", safety_layer=True)
    probe = source()
    episodes = Collector(source, n_envs=2, seed=0, layout=layout_of(probe)).collect(None, Exploration(uniform=True))
    space = probe.unwrapped.goal_space
    buf = HerReplayBuffer(space, probe.observation_space["observation"].shape[0], 4, capacity=1000, seed=0)
    for e in episodes:
        buf.add(e)
    return buf, np.concatenate([e.safety_cost for e in episodes])


def test_the_penalty_changes_the_reward_only_when_on_and_relabelling_rescores_only_the_goal() -> None:
    buf, costs = _buffer_with_costs()
    space = buf.goal_space
    rows = buf.sample_rows(512, np.random.default_rng(1))
    plain = buf.sample(512, np.random.default_rng(2), rows=rows)
    penalised = buf.sample(512, np.random.default_rng(2), rows=rows, cost_weight=0.5)
    assert plain.cost is not None and plain.cost.max() > 0 and costs.max() > 0
    # Off: the goal space's reward exactly, costs or not.
    np.testing.assert_array_equal(plain.reward, space.compute_reward(plain.next_achieved_goal, plain.desired_goal))
    # On: the same goals (relabelled ones included) scored by the goal space, minus the step's cost.
    assert plain.relabelled.any() and (plain.relabelled & (plain.cost > 0)).any()
    np.testing.assert_array_equal(penalised.desired_goal, plain.desired_goal)
    np.testing.assert_allclose(
        penalised.reward, space.compute_reward(penalised.next_achieved_goal, penalised.desired_goal) - 0.5 * penalised.cost
    )
    assert (penalised.reward < plain.reward).sum() == (plain.cost > 0).sum()
    # n-step returns carry the penalty of every summed step.
    n_plain = buf.sample(512, np.random.default_rng(2), rows=rows, n_step=3)
    n_pen = buf.sample(512, np.random.default_rng(2), rows=rows, n_step=3, cost_weight=0.5)
    assert n_plain.n_step is not None and n_pen.n_step is not None
    assert (n_pen.n_step.returns <= n_plain.n_step.returns).all()
    assert (n_pen.n_step.returns < n_plain.n_step.returns).any()


def test_a_cost_penalty_without_the_safety_layer_is_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match="needs safety_layer"):
        build_train_config({"task": "push", "cost_penalty": 1.0})
    with pytest.raises(ConfigError, match="safety_layer is an her_mujoco task option"):
        build_train_config({"env": "FetchPush-v4", "safety_layer": True})


def test_the_training_log_shows_the_mean_cost_per_episode(tmp_path: Path) -> None:
    cfg = build_train_config({
        "task": "reach", "env_steps": 400, "eval_every": 200, "eval_episodes": 2, "final_eval_episodes": 0,
        "safety_layer": True, "cost_penalty": 1.0, "parallel": "off", "progress": False, "out": str(tmp_path / "run"),
    })  # fmt: skip
    result = train(cfg)
    costs = [r.train_episode_cost for r in result.evals]
    assert len(costs) == 2 and all(np.isfinite(c) and c >= 0 for c in costs)


def test_the_cost_budget_multiplier_rises_while_episodes_overspend_and_falls_back_to_zero() -> None:
    from her_policy.learn.trainer import Trainer

    source = EnvSource(task="push", safety_layer=True)
    probe = source()
    episodes = Collector(source, n_envs=2, seed=0, layout=layout_of(probe)).collect(None, Exploration(uniform=True))
    spent = float(np.mean([e.safety_cost.sum() for e in episodes]))
    assert spent > 5  # random pushes hit the floor on many ticks
    cfg = build_train_config({"task": "push", "safety_layer": True, "cost_budget": 5.0, "cost_multiplier_lr": 0.1})
    trainer = Trainer(cfg, layout_of(probe), probe.unwrapped.goal_space, episode_length=50, log=False)
    trainer.ingest(episodes)
    assert trainer.cost_multiplier == pytest.approx(0.1 * (spent - 5.0), rel=1e-6)
    batch = trainer.sample(256)
    space = probe.unwrapped.goal_space
    assert batch.cost is not None and batch.cost.max() > 0
    np.testing.assert_allclose(
        batch.reward, space.compute_reward(batch.next_achieved_goal, batch.desired_goal) - trainer.cost_weight * batch.cost,
        rtol=1e-6, atol=1e-6,
    )  # fmt: skip
    clean = [dataclasses.replace(e, safety_cost=np.zeros_like(e.safety_cost)) for e in episodes]
    trainer.ingest(clean)  # within budget: 0.1 x (0 - 5) = -0.5 a batch
    assert trainer.cost_multiplier == pytest.approx(max(0.0, 0.1 * (spent - 5.0) - 0.5), abs=1e-6)
    for _ in range(int(spent)):
        trainer.ingest(clean)
    assert trainer.cost_multiplier == 0.0 and trainer.cost_weight == 0.0
    with pytest.raises(ConfigError, match="cost_budget=3.0 needs safety_layer"):
        build_train_config({"task": "push", "cost_budget": 3.0})
