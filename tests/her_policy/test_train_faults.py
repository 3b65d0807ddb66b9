"""Training outputs under faults: a full disk never leaves a partial artefact or checkpoint in
place of a good one and says so in one line; a buffer that cannot fit is refused up front."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from her_policy_toys import HORIZON, TOY_SPACE, ToyFactory

from her_goals.errors import StorageError
from her_policy.artefact.store import load_artefact
from her_policy.learn.collect import Collector, Exploration
from her_policy.learn.config import TrainConfig
from her_policy.learn.envs import layout_of
from her_policy.learn.trainer import Trainer

torch.set_num_threads(1)
LAYOUT = layout_of(ToyFactory()())


def trainer(out: Path) -> Trainer:
    cfg = TrainConfig(env="HerPolicyToyPoint-v0", hidden=(16, 16), batch_size=32, progress=False,
                      final_eval_episodes=0, out=str(out))  # fmt: skip
    t = Trainer(cfg, LAYOUT, TOY_SPACE, episode_length=HORIZON, out=out)
    t.ingest(Collector(ToyFactory(), 2, seed=1, layout=LAYOUT).collect(None, Exploration(uniform=True)))
    t.update(5)
    return t


def disk_full(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_an_artefact_keeps_the_good_one_and_says_why(tmp_path: Path, monkeypatch: Any) -> None:
    t = trainer(tmp_path)
    good = t.save_artefact(tmp_path / "policy")
    before = (good / "policy.json").read_bytes()
    t.update(5)
    monkeypatch.setattr(np, "savez", disk_full)  # the training-data file hits the full disk
    with pytest.raises(StorageError, match=r"cannot write .*policy: the disk is full \(.* MiB free.*unchanged"):
        t.save_artefact(tmp_path / "policy")
    assert (good / "policy.json").read_bytes() == before, "the good artefact is still there, whole"
    load_artefact(good)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".policy")] == [], "no partial left"


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path: Path, monkeypatch: Any) -> None:
    t = trainer(tmp_path)
    t.checkpoint()
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    t.update(5)
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(StorageError, match="the disk is full.*previous checkpoint"):
        t.checkpoint()
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text()) == state
    again = trainer(tmp_path / "again")
    assert again.resume(tmp_path / "checkpoint") is not None and again.updates == state["updates"]


def test_a_replay_buffer_that_cannot_fit_in_memory_is_refused_before_any_work(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "her_policy.app.cli", "train", "--task", "push", "--buffer-capacity",
         "199000000", "--no-progress", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if "GiB available" not in out.stderr:
        pytest.skip("this machine has the memory for it")
    assert out.returncode == 2 and "lower --buffer-capacity" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_her_learn_refuses_a_watch_path_whose_parent_does_not_exist(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "her_policy.app.cli", "learn", "--watch", str(tmp_path / "typo" / "session"),
         "--out", str(tmp_path / "run"), "--max-wall-s", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "neither it nor" in out.stderr and "Traceback" not in out.stderr
    waiting = subprocess.run(
        [sys.executable, "-m", "her_policy.app.cli", "learn", "--watch", str(tmp_path / "later"),
         "--out", str(tmp_path / "run"), "--max-wall-s", "1", "--no-evaluate"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert waiting.returncode == 0, waiting.stderr
    assert "does not exist yet; waiting for the recorder" in waiting.stderr
