"""The cost of a gradient update on this CPU: today's presets beside the high update-to-data
options (critic layer norm, REDQ critic ensembles, DroQ dropout, smaller batches), one run.

High update-to-data learning buys env steps with updates, so what an update costs decides the
wall-clock of a run. Every method updates on the same push data (100 ``her sim`` episodes of
the scripted controller at noise 0.3, recorded once into ``--cache``), through the trainer
``her train`` runs (``her_policy/learn/trainer.py``: HER sampling, normaliser, the learner's
update), one torch thread. Printed per method: CPU-ms per update and, at the method's
update-to-data ratio, CPU-seconds per 1000 env steps spent on updates, and the ratio to
``push_150k``'s (the recipe before one update per env step).

Usage:
  .venv/bin/python bench/bench_updates.py
  .venv/bin/python bench/bench_updates.py --updates 500 --methods push_150k push_one_critic push
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from her_policy.learn.config import build_train_config
from her_policy.learn.offline import load_training_episodes, task_layout
from her_policy.learn.trainer import Trainer

METHODS: dict[str, dict[str, Any]] = {
    # Each method names the preset it starts from (``her train --preset``) and its flags on top.
    "push_150k": {"preset": "push_150k"},  # the recipe before issue 22: batch 512, 0.2 updates per env step
    "push_one_critic": {"preset": "push_one_critic"},  # batch 256, critic layer norm, one update per env step
    "push_td3": {"preset": "push_one_critic", "algo": "td3"},
    "push_redq3": {"preset": "push", "n_critics": 3},
    "push": {"preset": "push"},  # today's default: five critics, the target's minimum over two drawn
    "push_redq10": {"preset": "push", "n_critics": 10},
    "push_droq": {"preset": "push_one_critic", "algo": "td3", "critic_dropout": 0.01},
    "push_b128_utd2": {"preset": "push_one_critic", "batch_size": 128, "updates_per_step": 2.0},
}


def record(cache: Path) -> Path:
    """100 scripted push episodes at noise 0.3 (recorded with her sim the first time)."""
    out = cache / "push_scripted_n03_100"
    if not (out / "bag_0000").exists():
        cmd = [sys.executable, "-m", "her_policy.app.cli", "sim", "--task", "push", "--policy", "scripted",
               "--noise", "0.3", "--episodes", "100", "--seed", "0", "--out", str(out)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"her sim failed: {' '.join(cmd)}\n{done.stderr}")
    return out


def cost(data: Any, layout: Any, flags: dict[str, Any], n: int) -> tuple[float, float]:
    """(CPU-ms per update, updates per env step) of one method on ``data``."""
    config = build_train_config({"task": data.task, "progress": False, "torch_threads": 1, **flags})
    trainer = Trainer(config, layout, data.goal_space, episode_length=50, mode="offline")
    trainer.ingest(data.episodes)
    trainer.update(20)  # warm-up
    cpu = time.process_time()
    trainer.update(n)
    return 1000 * (time.process_time() - cpu) / n, config.updates_per_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--updates", type=int, default=300, help="timed updates per method")
    parser.add_argument("--cache", type=Path, default=Path(".bench_cache"), help="where the push data is recorded")
    args = parser.parse_args()
    data = load_training_episodes([record(args.cache)])
    layout = task_layout(data.task, data.observation_dim, data.goal_space.dim, data.action_dim)
    base = None
    for name in args.methods:
        ms, utd = cost(data, layout, METHODS[name], args.updates)
        per_1k = ms * utd  # CPU-ms per update x updates per env step x 1000 steps / 1000
        base = per_1k if base is None and name == "push_150k" else base
        ratio = f" x{per_1k / base:.2f} of push_150k's" if base else ""
        print(f"update_cost method={name} cpu_ms_per_update={ms:.2f} updates_per_step={utd:g} "
              f"cpu_s_per_1k_env_steps={per_1k:.1f}{ratio}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
