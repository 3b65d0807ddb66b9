"""The audit holds an evaluation against what trained the evaluated artefact, and against the
configuration its bags record.

The two leaks of issue 20, each audited ``failed``:

* ``her train --bags`` on evaluation episodes (``--allow-eval-episodes``), then an evaluation of
  that artefact on the same held-out goals (``EVAL_TRAINED_ON_EVAL``);
* an evaluation bag whose recorded config names another run's artefact and training config
  than its plan's policy (``EVAL_CONFIG_MISMATCH``).

And the clean case stays ``verified``; an artefact without training data is ``unverified``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from her_goals.provenance import TrainingData
from her_recorder.audit import run_audit
from her_recorder.audit.findings import CODES

her_mujoco = pytest.importorskip("her_mujoco")


def codes(report: Any) -> set[str]:
    return {f.code for f in report.findings}


def test_training_on_evaluation_episodes_then_evaluating_on_their_goals_audits_failed(her: Any, tmp_path: Path) -> None:
    evaluation = tmp_path / "eval_bags"
    done = her("sim", "--task", "reach", "--split", "eval", "--episodes", "3", "--out", str(evaluation), timeout=600)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    done = her("train", "--bags", str(evaluation), "--allow-eval-episodes", "--updates", "20",
               "--final-eval-episodes", "1", "--out", str(run), "--no-progress", timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    artefact = run / "policy"
    again = tmp_path / "again"  # the same held-out stream (seed 0), now with the trained artefact
    done = her("eval", str(artefact), "--task", "reach", "--episodes", "3", "--record", str(again), timeout=600)
    assert done.returncode == 0, done.stderr
    report = run_audit([again], out_dir=tmp_path / "audit", artefact=artefact, plots=False)
    assert report.verdict == "failed"
    (leak,) = [f for f in report.findings if f.code == "EVAL_TRAINED_ON_EVAL"]
    assert len(leak.episodes) == 3 and "requested goal of one of the artefact's 3 training episodes" in leak.message
    # The trained-on episodes themselves are recognised by their digest, as the trainer took it.
    itself = run_audit([evaluation], out_dir=tmp_path / "audit2", artefact=artefact, plots=False)
    (same,) = [f for f in itself.findings if f.code == "EVAL_TRAINED_ON_EVAL"]
    assert len(same.episodes) == 3 and "is one of the artefact's 3 training episodes" in same.message
    # The command line says it, exit 1.
    done = her("audit", str(again), "--artefact", str(artefact), "--out", str(tmp_path / "cli"), timeout=600)
    assert done.returncode == 1 and "EVAL_TRAINED_ON_EVAL" in done.stdout, done.stdout + done.stderr


def _artefact(path: Path, seed: int, training_goals: np.ndarray) -> Path:
    from her_goals.spaces import get_goal_space
    from her_policy.artefact.store import save_artefact
    from her_policy.artefact.weights import ActorWeights
    from her_policy.learn.envs import layout_of

    layout = layout_of(her_mujoco.make_task("reach"))
    n = len(training_goals)
    return save_artefact(
        path, layout=layout, goal_space=get_goal_space("ee_position"), algorithm="ddpg",
        snapshot=ActorWeights.random(layout.observation_dim, layout.goal_dim, layout.action_dim, (16,), seed=seed),
        config={"task": "reach", "seed": seed}, seeds={"run": seed}, data_hashes={}, provenance={"env": "task:reach"},
        training_data=TrainingData(np.asarray(training_goals, np.float64).reshape(n, 3), np.arange(n, dtype=np.int64),
                                   np.full(n, "train"), np.full(n, "experience")),
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    env = her_mujoco.make_task("reach")
    sampler = env.unwrapped.goal_sampler
    sampler.reset(0)
    env.close()
    return {
        "a": _artefact(root / "a" / "policy", 1, sampler.sample(5)),
        "b": _artefact(root / "b" / "policy", 2, sampler.sample(5)),
        "old": _artefact(root / "old" / "policy", 3, np.zeros((0, 3))),
        "root": root,
    }


def _record(artefact: Path, out: Path, config: dict[str, Any]) -> None:
    from her_policy.app.sim import record_evaluation

    record_evaluation(her_mujoco.make_task("reach"), artefact, out, episodes=3, stream_seed=4, config=config)


def _train_config_hash(artefact: Path) -> str:
    return str(json.loads((artefact / "policy.json").read_text())["provenance"]["config_hash"])


def test_the_clean_evaluation_of_an_artefact_with_training_data_is_verified(two_runs: dict[str, Path],
                                                                            tmp_path: Path) -> None:  # fmt: skip
    a = two_runs["a"]
    _record(a, tmp_path / "eval", {"split": "eval", "artefact": str(a), "train_config_hash": _train_config_hash(a)})
    report = run_audit([tmp_path / "eval"], out_dir=tmp_path / "audit", artefact=a, plots=False)
    assert report.verdict == "verified", [f.line() for f in report.findings]


def test_an_evaluation_bag_whose_config_names_another_run_audits_failed(two_runs: dict[str, Path],
                                                                        tmp_path: Path) -> None:  # fmt: skip
    a, b = two_runs["a"], two_runs["b"]
    assert _train_config_hash(a) != _train_config_hash(b)
    # Recorded with A acting (plan and steps name A), but the config names B's run.
    _record(a, tmp_path / "eval", {"split": "eval", "artefact": str(b), "train_config_hash": _train_config_hash(b)})
    report = run_audit([tmp_path / "eval"], out_dir=tmp_path / "audit", artefact=a, plots=False)
    assert report.verdict == "failed", [f.line() for f in report.findings]
    (mismatch,) = [f for f in report.findings if f.code == "EVAL_CONFIG_MISMATCH"]
    assert f"artefact {b}" in mismatch.message and _train_config_hash(b) in mismatch.message
    assert codes(report) == {"EVAL_CONFIG_MISMATCH"}


def test_an_artefact_without_training_data_is_unverified_not_failed(two_runs: dict[str, Path], tmp_path: Path) -> None:
    from her_goals.provenance import TRAINING_DATA_FILE

    old = two_runs["old"]
    meta = json.loads((old / "policy.json").read_text())
    assert TRAINING_DATA_FILE in meta["files"]
    # An artefact written before training data was recorded: no file, policy.json lists none.
    older = tmp_path / "older"
    older.mkdir()
    (older / "actor.npz").write_bytes((old / "actor.npz").read_bytes())
    meta["files"].pop(TRAINING_DATA_FILE)
    meta["provenance"].pop("training_data", None)
    from her_goals.provenance import metadata_hash

    meta["artefact_hash"] = metadata_hash(meta)
    (older / "policy.json").write_text(json.dumps(meta))
    _record(older, tmp_path / "eval", {"split": "eval", "artefact": str(older)})
    report = run_audit([tmp_path / "eval"], out_dir=tmp_path / "audit", artefact=older, plots=False)
    assert report.verdict == "unverified" and codes(report) == {"EVAL_TRAINING_DATA_UNKNOWN"}
    assert CODES["EVAL_TRAINING_DATA_UNKNOWN"].severity == "unverified"
