"""Learning from another policy's data: behaviour cloning terms, GCIQL, demonstrations in
every batch, and bags that must not train (evaluation episodes, another task)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from her_policy_toys import HORIZON, TOY_SPACE, ToyFactory

from her_policy.artefact.store import load_artefact
from her_policy.learn.algorithms import make_learner
from her_policy.learn.buffer import BatchStats, HerBatch
from her_policy.learn.collect import Collector, Exploration
from her_policy.learn.config import TrainConfig
from her_policy.learn.continuous import continuous_learner
from her_policy.learn.envs import layout_of
from her_policy.learn.trainer import Trainer

torch.set_num_threads(1)


def toy_episodes(n_cycles: int = 5, seed: int = 3) -> list:
    layout = layout_of(ToyFactory()())
    collector = Collector(ToyFactory(), 4, seed=seed, layout=layout)
    return [ep for _ in range(n_cycles) for ep in collector.collect(None, Exploration(uniform=True))]


def toy_config(**kw: object) -> TrainConfig:
    base: dict[str, object] = {"env": "HerPolicyToyPoint-v0", "hidden": (16, 16), "batch_size": 40,
                               "progress": False, "parallel": "off"}  # fmt: skip
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


# -- behaviour cloning ------------------------------------------------------------------
LAYOUT = layout_of(ToyFactory()())


def data_batch(n: int = 128, seed: int = 0) -> HerBatch:
    rng = np.random.default_rng(seed)
    return HerBatch(
        observation=rng.normal(size=(n, LAYOUT.observation_dim)).astype(np.float32),
        action=rng.uniform(-0.8, 0.8, (n, LAYOUT.action_dim)).astype(np.float32),
        next_observation=rng.normal(size=(n, LAYOUT.observation_dim)).astype(np.float32),
        desired_goal=rng.normal(size=(n, LAYOUT.goal_dim)),
        next_achieved_goal=rng.normal(size=(n, LAYOUT.goal_dim)),
        reward=-np.ones(n, np.float32),
        terminated=np.zeros(n, bool),
        truncated=np.zeros(n, bool),
        relabelled=np.zeros(n, bool),
        stats=BatchStats(0.0, 0.0, float("nan")),
    )


def action_gap(algo: str, **kw: object) -> float:
    cfg = toy_config(algo=algo, hidden=(64, 64), **kw)
    learner = make_learner(LAYOUT, cfg, gamma=0.9)
    b = data_batch()
    for _ in range(300):
        learner.update(b)
    return learner.probe(b)["action_gap"]


@pytest.mark.parametrize(
    ("algo", "settings"),
    [("ddpg", {"bc_weight": 10.0}), ("td3", {"bc_weight": 10.0}), ("gciql", {"bc_weight": 10.0}),
     ("gciql", {"actor_loss": "awr"})],
)
def test_behaviour_cloning_keeps_the_actor_on_the_data_actions(algo: str, settings: dict) -> None:
    """Without the term the actor goes where the critic points; with it, it imitates the data."""
    free = action_gap("ddpg", action_l2=0.0)
    cloned = action_gap(algo, action_l2=0.0, **settings)
    assert cloned < 0.25 * free, (cloned, free)


def test_the_probe_reports_q_of_data_and_policy_actions_beside_the_datas_returns(tmp_path: Path) -> None:
    episodes = toy_episodes()
    trainer = Trainer(toy_config(), LAYOUT, TOY_SPACE, episode_length=HORIZON, mode="offline")
    trainer.ingest(episodes)
    trainer.update(20)
    probe = trainer.probe()
    assert set(probe) == {"q_data", "q_policy", "q_policy_above_0", "action_gap", "return_data"}
    assert -1 / (1 - trainer.gamma) <= probe["return_data"] <= 0.0
    state = trainer.buffer.rng.bit_generator.state
    trainer.probe()
    assert trainer.buffer.rng.bit_generator.state == state, "diagnostics never perturb training"


# -- demonstrations in every batch --------------------------------------------------------
def test_demonstrations_are_a_fixed_share_of_every_batch_and_are_never_evicted(tmp_path: Path) -> None:
    demos = toy_episodes(2, seed=11)  # 8 episodes
    cfg = toy_config(demo_share=0.25, buffer_capacity=3 * (HORIZON + 1), out=str(tmp_path / "run"),
                     final_eval_episodes=0)  # fmt: skip
    trainer = Trainer(cfg, LAYOUT, TOY_SPACE, episode_length=HORIZON, demos=demos, out=tmp_path / "run")
    first = trainer.sample()
    assert first.prior is not None and first.prior.all(), "before any own data: all from the demos"
    trainer.ingest(toy_episodes(3))  # 12 episodes into a 3-episode online buffer
    assert trainer.buffer.n_episodes == 3 and trainer.n_demo_episodes == len(demos)
    batch = trainer.sample()
    assert batch.prior is not None and int(batch.prior.sum()) == 10 and batch.action.shape[0] == 40
    # Every demo sample is a transition of a demo episode (relabelled within it).
    demo_actions = {a.tobytes() for e in demos for a in e.action.astype(np.float32)}
    assert all(a.tobytes() in demo_actions for a in batch.action[batch.prior])
    trainer.update(5)
    result = trainer.finish("test")
    art = load_artefact(result.artefact or "")
    hashes = art.provenance["data_hashes"]
    assert hashes["demo_episodes_sha256"] == trainer.demo_buffer.data_hash  # type: ignore[union-attr]
    assert art.provenance["demos"] == {"episodes": 8, "share": 0.25}


def test_bc_on_demos_clones_only_the_demonstration_samples() -> None:
    cfg = toy_config(algo="ddpg", bc_weight=1.0, bc_on="demos")
    learner = make_learner(LAYOUT, cfg, gamma=0.9)
    b = data_batch(8)
    pi = torch.zeros(8, LAYOUT.action_dim)
    a = torch.from_numpy(b.action)
    learner.tensors(b._replace(prior=None))
    assert float(learner.bc_error(pi, a)) == 0.0, "no demo in the batch: nothing to clone"
    mask = np.array([True, False] * 4)
    learner.tensors(b._replace(prior=mask))
    expected = float((a[torch.from_numpy(mask)] ** 2).mean())
    assert float(learner.bc_error(pi, a)) == pytest.approx(expected)
    # The Q filter: a demo sample the actor already beats counts as 0 in the same mean.
    keep = torch.tensor([True, True, False, True, True, True, False, True])
    demo_rows = torch.from_numpy(mask)
    filtered = ((a**2).mean(1) * keep)[demo_rows].mean()
    assert float(learner.bc_error(pi, a, keep)) == pytest.approx(float(filtered))


def test_the_continuous_learner_keeps_demonstrations_in_its_batches(record: Any, tmp_path: Path) -> None:
    demos, session = tmp_path / "demos", tmp_path / "session"
    record(demos, 3)
    record(session, 2, seed=5)
    run = continuous_learner(
        [session], tmp_path / "run", task="reach", demos=[demos],
        overrides={"hidden": (16, 16), "batch_size": 16, "updates_per_step": 0.2, "buffer_capacity": 5000},
    )  # fmt: skip
    assert run.trainer.n_demo_episodes == 3
    run.ingest()
    assert run.train() > 0
    assert run.trainer.sample().prior is not None
    version = run.publish_if_due(force=True)
    assert version is not None
    meta = json.loads((version / "policy.json").read_text())
    assert any(k.startswith("demo:") for k in meta["provenance"]["data_hashes"])


# -- bags that must not train -------------------------------------------------------------
def test_training_on_evaluation_episodes_is_refused_unless_allowed(her: Any, record: Any, tmp_path: Path) -> None:
    bags = tmp_path / "bags"
    record(bags, 2)
    record(bags, 2, split="eval", seed=9)
    out = her("train", "--bags", str(bags), "--updates", "20", "--out", str(tmp_path / "run"), "--no-progress")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "2 of 4 episodes are held-out evaluation episodes" in out.stderr
    assert "--allow-eval-episodes" in out.stderr
    assert not (tmp_path / "run" / "policy").exists(), "refused before any work"
    out = her("train", "--bags", str(bags), "--updates", "20", "--out", str(tmp_path / "run"),
              "--no-progress", "--allow-eval-episodes", "--final-eval-episodes", "2")  # fmt: skip
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "run" / "policy" / "policy.json").read_text())
    assert meta["provenance"]["allow_eval_episodes"] is True
    assert meta["provenance"]["eval_episodes_in_training_data"] == 2
    # The artefact names what trained it, episode by episode, for the audit to hold against.
    trained = load_artefact(tmp_path / "run" / "policy").training_data()
    assert trained is not None and sorted(trained.splits.tolist()) == ["eval", "eval", "train", "train"]
    from her_goals.provenance import episode_digest
    from her_recorder.reader import read_episodes

    episodes = read_episodes(bags, log_summary=False).episodes
    assert sorted(trained.digests.tolist()) == sorted(
        episode_digest(e.observation, e.action, e.desired_goal[0]) for e in episodes
    )
    np.testing.assert_array_equal(np.sort(trained.goals, axis=0), np.sort([e.desired_goal[0] for e in episodes], axis=0))


def test_demonstrations_of_another_task_are_refused_naming_the_bag(her: Any, record: Any, tmp_path: Path) -> None:
    push = tmp_path / "push_demos"
    record(push, 1, task="push")
    out = her("train", "--task", "reach", "--demos", str(push), "--env-steps", "100", "--no-progress")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--demos" in out.stderr and "push_demos" in out.stderr and "'push'" in out.stderr


def test_bags_and_demos_together_are_refused(her: Any, record: Any, tmp_path: Path) -> None:
    bags = tmp_path / "bags"
    record(bags, 1)
    out = her("train", "--bags", str(bags), "--demos", str(bags), "--no-progress")
    assert out.returncode == 2 and "--bags trains offline" in out.stderr


def test_bags_of_two_tasks_sharing_a_goal_space_are_refused_naming_both(her: Any, record: Any, tmp_path: Path) -> None:
    """push and pick_and_place share the object_position goal space: the task still differs."""
    bags = tmp_path / "bags"
    record(bags / "a", 1, task="push")
    record(bags / "b", 1, task="pick_and_place")
    out = her("train", "--bags", str(bags / "a"), str(bags / "b"), "--updates", "10", "--no-progress")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "'pick_and_place'" in out.stderr and "'push'" in out.stderr and "one task" in out.stderr
