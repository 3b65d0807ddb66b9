"""Ctrl-C / SIGTERM of a training run: a checkpoint and the best-so-far policy, said as such;
the same run resumed ends with exactly the weights of the uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from her_policy_toys import HORIZON, ToyFactory

from her_policy.artefact.store import load_artefact
from her_policy.errors import PolicyError
from her_policy.learn.config import TrainConfig
from her_policy.learn.train import train

torch.set_num_threads(1)


def config(out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "env": "HerPolicyToyPoint-v0", "algo": "td3", "env_steps": 16 * HORIZON, "n_envs": 2,
        "hidden": (16, 16), "batch_size": 32, "updates_per_step": 0.5, "eval_every": 4 * HORIZON,
        "eval_episodes": 5, "final_eval_episodes": 10, "checkpoint_every": 4 * HORIZON,
        "progress": False, "out": str(out),
    }  # fmt: skip
    return TrainConfig(**{**base, **kw})


def weights(result: Any) -> list[np.ndarray]:
    snap = result.learner.snapshot()
    return [*snap.weights, *snap.biases]


@pytest.mark.parametrize(("parallel", "color"), [("off", 0.0), ("on", 0.0), ("on", 1.0)])  # 1.0: pink exploration noise
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path: Path, parallel: str, color: float) -> None:
    whole = train(config(tmp_path / "whole", parallel=parallel, noise_color=color), env_factory=ToyFactory("sampler"))
    assert whole.stopped_because == "env_steps"

    calls = []

    def interrupt_at_the_second_evaluation(row: Any, learner: Any) -> None:
        calls.append(row.env_steps)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does; the run stops after this cycle

    out = tmp_path / "cut"
    cut = train(config(out, parallel=parallel, noise_color=color), env_factory=ToyFactory("sampler"), on_eval=interrupt_at_the_second_evaluation)
    assert cut.stopped_because == "interrupted" and cut.env_steps < 16 * HORIZON
    meta = json.loads((out / "policy" / "policy.json").read_text())
    assert meta["provenance"]["interrupted"] is True
    assert meta["provenance"]["policy_is"].startswith("best so far: periodic evaluation")
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["finished"] is False and state["env_steps"] == cut.env_steps

    resumed = train(config(out, parallel=parallel, noise_color=color), env_factory=ToyFactory("sampler"), resume=True)
    assert resumed.stopped_because == "env_steps" and resumed.env_steps == whole.env_steps
    assert resumed.updates == whole.updates and resumed.data_hash == whole.data_hash
    for a, b in zip(weights(whole), weights(resumed)):
        np.testing.assert_array_equal(a, b)
    assert [r.env_steps for r in resumed.evals] == [r.env_steps for r in whole.evals]
    lines = (out / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["env_steps"] for x in lines] == [r.env_steps for r in whole.evals]
    assert resumed.final is not None and whole.final is not None
    assert resumed.final.requested_success == whole.final.requested_success
    art = load_artefact(out / "policy")
    assert "interrupted" not in art.provenance, "the finished run's policy replaced the best-so-far one"


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(tmp_path: Path) -> None:
    """No signal handler runs on SIGKILL: the last checkpoint_every checkpoint is the resume point."""
    whole = train(config(tmp_path / "whole", parallel="off"), env_factory=ToyFactory("sampler"))
    out = tmp_path / "killed"

    class Killed(Exception):
        pass

    def die(row: Any, learner: Any) -> None:
        if row.env_steps >= 10 * HORIZON:
            raise Killed  # dies between checkpoints: what it learned since the last one is lost

    with pytest.raises(Killed):
        train(config(out, parallel="off"), env_factory=ToyFactory("sampler"), on_eval=die)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["env_steps"] == 8 * HORIZON and not (out / "policy").exists()
    torn = tmp_path / "torn"  # a checkpoint without the collector's streams (copied by hand, say)
    shutil.copytree(out, torn)
    (torn / "checkpoint" / "collector.json").unlink()
    with pytest.raises(PolicyError, match="holds no collector state .*--overwrite"):
        train(config(torn, parallel="off"), env_factory=ToyFactory("sampler"), resume=True)
    resumed = train(config(out, parallel="off"), env_factory=ToyFactory("sampler"), resume=True)
    for a, b in zip(weights(whole), weights(resumed)):
        np.testing.assert_array_equal(a, b)


def her(*args: str, **kw: Any) -> Any:
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "her_policy.app.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )  # fmt: skip


def test_her_train_sigterm_resume_refuse_and_overwrite(tmp_path: Path) -> None:
    """The rule a user sees: SIGTERM (or Ctrl-C) checkpoints and writes the best-so-far policy;
    the same command resumes; a finished run is refused; --overwrite starts over."""
    import time

    out = tmp_path / "run"
    args = ["train", "--task", "reach", "--env-steps", "6000", "--eval-every", "0", "--parallel", "off",
            "--checkpoint-every", "500", "--final-eval-episodes", "5", "--no-progress", "--out", str(out)]  # fmt: skip
    first = her(*args)
    deadline = time.monotonic() + 240
    while not (out / "checkpoint" / "state.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)
    stdout, stderr = first.communicate(timeout=240)
    assert first.returncode == 130, stderr
    assert "interrupted at" in stdout and "run the same command to resume" in stdout
    assert "Traceback" not in stderr
    meta = json.loads((out / "policy" / "policy.json").read_text())
    assert meta["provenance"]["interrupted"] is True
    assert meta["provenance"]["policy_is"] == "the current actor (no periodic evaluation yet)"

    second = her(*args)
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr
    assert "resuming the interrupted run" in stderr and "requested-goal success" in stdout
    assert "interrupted" not in json.loads((out / "policy" / "policy.json").read_text())["provenance"]

    third = her(*args)
    _, stderr = third.communicate(timeout=120)
    assert third.returncode == 2 and "already holds a finished training run" in stderr and "--overwrite" in stderr

    fourth = her(*args, "--overwrite", "--env-steps", "100")
    _, stderr = fourth.communicate(timeout=300)
    assert fourth.returncode == 0, stderr
    assert json.loads((out / "policy" / "policy.json").read_text())["provenance"]["env_steps"] == 100


def test_resuming_with_other_settings_is_refused_naming_them(tmp_path: Path) -> None:
    from her_goals.errors import HerError
    from her_policy.learn.rundir import prepare_out

    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    cfg = config(out)
    from her_goals.config import to_plain

    (out / "checkpoint" / "state.json").write_text(json.dumps({"finished": False, "env_steps": 100, "config": {**to_plain(cfg), "critic_lr": 0.5}}))
    with pytest.raises(HerError, match="critic_lr: 0.5 then, 0.001 now"):
        prepare_out(cfg, overwrite=False)
    assert prepare_out(config(out, env_steps=10**6, critic_lr=0.5), overwrite=False) is True, "a longer run may resume"
    older = {k: v for k, v in {**to_plain(cfg), "critic_lr": 0.5}.items() if k != "target_checks"}
    (out / "checkpoint" / "state.json").write_text(json.dumps({"finished": False, "env_steps": 100, "config": older}))
    assert prepare_out(config(out, critic_lr=0.5), overwrite=False) is True, "a setting added since: its default then"
    with pytest.raises(HerError, match="target_checks: 1 then, 2 now"):
        prepare_out(config(out, critic_lr=0.5, target_checks=2), overwrite=False)
