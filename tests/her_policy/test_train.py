"""Trainer, CLI and a short learning run on Reach that must beat a random policy by far."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from her_policy_toys import HORIZON, TOY_SPACE, BrokenFactory, ToyFactory

from her_goals.errors import ConfigError
from her_goals.settings_cli import field_docs
from her_policy.app.cli import build_parser, main
from her_policy.artefact.store import load_artefact
from her_policy.learn.algorithms import make_learner
from her_policy.learn.config import TrainConfig, build_train_config
from her_policy.learn.evaluate import evaluate
from her_policy.learn.presets import PRESETS
from her_policy.learn.train import train

torch.set_num_threads(1)


def toy_config(tmp_path: Path | None = None, **kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "env": "HerPolicyToyPoint-v0",
        "algo": "ddpg",
        "env_steps": 40 * HORIZON,
        "n_envs": 2,
        "hidden": (32, 32),
        "batch_size": 64,
        "updates_per_step": 0.5,
        "eval_every": 20 * HORIZON,
        "eval_episodes": 10,
        "final_eval_episodes": 20,
        "parallel": "off",
        "progress": False,
        "out": tmp_path,
    }
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_online_training_writes_a_traceable_artefact(tmp_path: Path) -> None:
    result = train(toy_config(tmp_path / "run"), env_factory=ToyFactory("sampler"))
    assert result.env_steps == 40 * HORIZON and result.updates == 20 * HORIZON
    assert result.stopped_because == "env_steps"
    assert [r.env_steps for r in result.evals] == [20 * HORIZON, 40 * HORIZON]
    row = result.evals[-1]
    assert row.hindsight_ratio == pytest.approx(0.8, abs=0.05)
    assert 0.0 <= row.positive_fraction_relabelled <= 1.0
    assert row.moving_fraction > 0.5, "a reaching point always moves its achieved goal"
    assert result.final is not None and result.final.n_episodes == 20
    art = load_artefact(result.artefact or "")
    assert art.provenance["data_hashes"]["replay_episodes_sha256"] == result.data_hash
    assert art.provenance["config"]["env"] == "HerPolicyToyPoint-v0"
    assert art.provenance["seeds"]["training_env_resets"] == [0, 1]
    again = evaluate(art, ToyFactory("sampler"), 20)
    assert again.requested_success == result.final.requested_success, "final eval = her eval of the artefact"
    lines = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "requested_success" in json.loads(lines[0])
    assert (tmp_path / "run" / "learning_curve.png").read_bytes().startswith(b"\x89PNG")


def test_training_is_reproducible_and_the_collector_process_is_deterministic(tmp_path: Path) -> None:
    cfg = toy_config(None, env_steps=6 * HORIZON, eval_every=0, final_eval_episodes=0, parallel="on")
    a = train(cfg, env_factory=ToyFactory("fetchlike"))
    b = train(cfg, env_factory=ToyFactory("fetchlike"))
    assert a.data_hash == b.data_hash
    wa, wb = a.learner.snapshot().weights, b.learner.snapshot().weights
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def test_offline_training_from_recorded_episodes_needs_no_env(tmp_path: Path) -> None:
    """What `her train --bags` does: a fresh learner on recorded episodes only, evaluated
    periodically (every eval_every_updates) and at the end on held-out goals."""
    from her_goals.training_log import read_rows
    from her_policy.learn.collect import Collector, Exploration
    from her_policy.learn.envs import layout_of
    from her_policy.learn.offline import train_on_episodes
    from her_policy.learn.trainer import Evaluator

    layout = layout_of(ToyFactory()())
    collector = Collector(ToyFactory(), 4, seed=7, layout=layout)
    episodes = [ep for _ in range(10) for ep in collector.collect(None, Exploration(uniform=True))]
    cfg = toy_config(tmp_path / "offline", env=None, final_eval_episodes=10, eval_every_updates=20)
    result = train_on_episodes(
        cfg, episodes, layout, TOY_SPACE, 50, episode_length=HORIZON, data_hashes={"bags": "x" * 8},
        evaluator=Evaluator(ToyFactory(), layout, TOY_SPACE),
    )  # fmt: skip
    assert result.updates == 50 and result.final is not None and result.mode == "offline"
    assert result.env_steps == sum(e.n_steps for e in episodes)
    assert [r.updates for r in result.evals] == [20, 40, 50]
    assert [r.updates for r in read_rows(tmp_path / "offline")] == [20, 40, 50]
    assert result.learner.normaliser.observation.count == sum(e.n_steps + 1 for e in episodes)
    art = load_artefact(result.artefact or "")
    assert art.provenance["offline"] is True and art.provenance["data_hashes"]["bags"] == "x" * 8
    assert art.provenance["data_hashes"]["replay_episodes_sha256"] == result.data_hash
    assert (tmp_path / "offline" / "learning_curve.png").read_bytes().startswith(b"\x89PNG")


def test_a_failing_collector_process_reports_why() -> None:
    from her_policy.errors import PolicyError
    from her_policy.learn.collect import ProcessCollector
    from her_policy.learn.envs import layout_of

    with pytest.raises(PolicyError, match="collector process failed: RuntimeError: no such env"):
        ProcessCollector(BrokenFactory(), 2, 0, layout_of(ToyFactory()()))


def test_wall_clock_and_target_stops(tmp_path: Path) -> None:
    result = train(toy_config(None, env_steps=10**6, max_wall_s=0.5, eval_every=0, final_eval_episodes=0), env_factory=ToyFactory())
    assert result.stopped_because == "max_wall_s" and result.env_steps < 10**6
    result = train(
        toy_config(None, env_steps=10**6, target_success=0.0, eval_every=2 * HORIZON, final_eval_episodes=0),
        env_factory=ToyFactory(),
    )
    assert result.stopped_because == "target_success" and result.env_steps == 2 * HORIZON
    result = train(
        toy_config(None, env_steps=10**6, target_success=0.0, target_checks=3, eval_every=2 * HORIZON,
                   final_eval_episodes=0),
        env_factory=ToyFactory(),
    )  # fmt: skip
    assert result.stopped_because == "target_success" and result.env_steps == 6 * HORIZON, "three checks in a row"


def test_a_stop_on_several_checks_needs_them_in_a_row() -> None:
    from types import SimpleNamespace

    from her_policy.learn.trainer import Trainer

    def stops(successes: list[float], checks: int) -> bool:
        run = SimpleNamespace(config=SimpleNamespace(target_success=0.95, target_checks=checks),
                              evals=[SimpleNamespace(requested_success=x) for x in successes])  # fmt: skip
        return Trainer.reached_target(run)  # type: ignore[arg-type]

    assert stops([0.5, 0.96], 1) and not stops([0.5, 0.96], 2), "one lucky crossing stops only a one-check run"
    assert not stops([0.96, 0.80, 0.96], 2) and stops([0.80, 0.96, 0.97], 2)
    assert not stops([0.96], 2), "fewer checks than asked: go on"


def test_short_reach_run_beats_a_random_policy_by_far(tmp_path: Path) -> None:
    """Our Reach task: ~1k env steps of DDPG+HER, requested-goal success well above random."""
    pytest.importorskip("her_mujoco")
    cfg = build_train_config(
        {"task": "reach", "env_steps": 1500, "eval_every": 500, "eval_episodes": 20, "target_success": 0.9,
         "final_eval_episodes": 30, "parallel": "off", "progress": False, "out": str(tmp_path / "reach")}
    )
    result = train(cfg)
    from her_policy.artefact.numpy_actor import DeterministicPolicy
    from her_policy.learn.envs import EnvSource

    untrained = make_learner(result.layout, cfg, gamma=0.98, seed=123)
    random_policy = DeterministicPolicy(untrained.snapshot(), result.layout, result.goal_space)
    baseline = evaluate(random_policy, EnvSource(task="reach"), 30)
    assert result.final is not None
    assert result.final.requested_success >= 0.6
    assert result.final.requested_success >= baseline.requested_success + 0.4
    assert result.final.goal_space == "ee_position"


# -- configuration and CLI -------------------------------------------------------
def test_every_config_field_has_a_docstring_that_becomes_help(capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    docs = field_docs(TrainConfig)
    assert set(docs) == {f.name for f in dataclasses.fields(TrainConfig)}
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--updates-per-step" in out and docs["updates_per_step"].split()[0] in out
    assert "--relabel-strategy {future,final,episode}" in out


def test_settings_are_layered_and_typos_rejected(tmp_path: Path) -> None:
    cfg = build_train_config({"env": "FetchPush-v4"})
    assert cfg.algo == PRESETS["fetch_push"]["algo"] and cfg.batch_size == PRESETS["fetch_push"]["batch_size"]
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("env: FetchPush-v4\nbatch_size: 128\nalgo: td3\n")
    cfg = build_train_config({"algo": "ddpg"}, yaml_path=yaml_file)
    assert (cfg.batch_size, cfg.algo) == (128, "ddpg")
    assert build_train_config({"env": "FetchPush-v4", "preset": "none"}).batch_size == TrainConfig().batch_size
    yaml_file.write_text("env: FetchPush-v4\nparallel: on\n")
    assert build_train_config({}, yaml_path=yaml_file).parallel == "on"
    yaml_file.write_text("env: FetchPush-v4\nbatch_sise: 128\n")
    with pytest.raises(ConfigError, match="Did you mean 'batch_size'"):
        build_train_config({}, yaml_path=yaml_file)
    with pytest.raises(ConfigError, match="--task .* or --env"):
        build_train_config({})
    with pytest.raises(ConfigError, match="unknown preset"):
        build_train_config({"env": "FetchPush-v4", "preset": "fetch_pusj"})


def test_cli_parses_types_and_prints_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--env", "FetchReach-v4", "--hidden", "64", "64", "--gamma", "0.95",
                 "--no-progress", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "hidden:\n- 64\n- 64\n" in out and "gamma: 0.95" in out and "progress: false" in out
    assert main(["train", "--print-config"]) == 2
    assert "--task" in capsys.readouterr().err


def test_her_eval_on_an_artefact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train(toy_config(tmp_path / "run", env_steps=4 * HORIZON, eval_every=0, final_eval_episodes=0),
                   env_factory=ToyFactory())
    assert main(["eval", str(result.artefact), "--episodes", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_episodes"] == 5 and report["kind"] == "requested"
    assert report["env"] == "HerPolicyToyPoint-v0" and len(report["artefact_hash"]) == 64
    assert main(["eval", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "does not exist" in err  # checked before any work


def test_cli_subcommands_are_registered() -> None:
    parser = build_parser()
    names = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"train", "eval"} <= set(names)


def test_a_diverging_run_stops_naming_the_step_and_writes_no_artefact(tmp_path: Path) -> None:
    from her_policy.errors import TrainingDivergedError

    cfg = toy_config(tmp_path, actor_lr=1e30, critic_lr=1e30, clip_target=False)
    with pytest.raises(TrainingDivergedError) as err:
        train(cfg)
    message = str(err.value)
    assert "env step" in message and "not finite" in message and "learning rate" in message
    assert not list(tmp_path.rglob("actor.npz")), "a diverged run must not leave an artefact"


def test_push_trains_a_critic_ensemble_from_scratch_but_not_from_demos_or_bags() -> None:
    scratch = build_train_config({"task": "push"})
    assert (scratch.n_critics, scratch.target_critics) == (5, 2), "push's default: REDQ's five critics"
    for kind in ({"demos": True}, {"offline": True}):  # measured with the learners' own critics
        cfg = build_train_config({"task": "push"}, **kind)
        assert (cfg.n_critics, cfg.target_critics) == (None, None), kind
    assert build_train_config({"task": "push", "preset": "push_one_critic"}).n_critics is None
    assert build_train_config({"task": "push", "n_critics": 3}).n_critics == 3, "a flag still wins"


def test_arm_task_presets_have_an_env_step_budget_and_no_wall_clock_cap() -> None:
    for task, preset in (("push", "push"), ("pick_and_place", "pick_and_place")):
        cfg = build_train_config({"task": task})
        assert cfg.env_steps == PRESETS[preset]["env_steps"] and cfg.max_wall_s is None
    for name, values in PRESETS.items():
        assert "max_wall_s" not in values, name
    assert build_train_config({"task": "pick_and_place"}).grasped_start == 0.5
    with pytest.raises(ConfigError, match="grasped_start is an her_mujoco task option"):
        build_train_config({"env": "FetchPush-v4", "grasped_start": 0.5})
    with pytest.raises(ConfigError, match=r"grasped-start = 2.0: must be in \[0, 1\]"):
        build_train_config({"task": "push", "grasped_start": 2.0})
