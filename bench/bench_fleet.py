"""Fleet throughput and learning speed: N simulated arms on Ray feeding one learner, beside
single-process training, measured in the same run.

Prints one line per fleet run::

    fleet arms=<N> env_steps_per_s=<x> steps_to_0.9=<y>

then the single-process figure for the same task, and a projection of throughput for more
cores with the bottleneck named (the learner must keep up with ``updates_per_step`` updates
per env step of all arms together).

    python bench/bench_fleet.py --task reach --arms 1 2 --minutes 3
    python bench/bench_fleet.py --task push --arms 1 2 --minutes 20
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path


def fleet_run(task: str, arms: int, minutes: float, out: Path, publish_every: int) -> dict[str, float]:
    from her_policy.app.fleet import FleetSettings, run_fleet

    settings = FleetSettings(
        out=out, arms=arms, task=task, minutes=minutes, publish_every=publish_every,
        eval_goals=50, target_success=None,
    )  # fmt: skip
    summary = run_fleet(settings, report=lambda s: None)
    steps = summary.steps_to_target
    print(
        f"fleet arms={arms} env_steps_per_s={summary.env_steps_per_s:.0f} "
        f"steps_to_0.9={steps if steps is not None else 'not reached'} "
        f"updates_per_s={summary.updates_per_s:.0f} wall_s={summary.wall_s:.0f} "
        f"best={max((r['requested_success'] for r in summary.rows), default=float('nan')):.2f}",
        flush=True,
    )
    return {
        "env_steps_per_s": summary.env_steps_per_s,
        "updates_per_s": summary.updates_per_s,
        "steps_to_0.9": float(steps) if steps is not None else math.nan,
    }


def single_process(task: str, minutes: float, out: Path) -> dict[str, float]:
    from her_policy.learn.config import build_train_config
    from her_policy.learn.train import train

    cfg = build_train_config(
        {"task": task, "out": str(out), "progress": False, "target_success": 0.9, "max_wall_s": minutes * 60}
    )
    start = time.monotonic()
    result = train(cfg)
    wall = time.monotonic() - start
    reached = next((r.env_steps for r in result.evals if r.requested_success >= 0.9), None)
    rate = result.env_steps / result.train_wall_s if result.train_wall_s else math.nan
    print(
        f"single arms=1 env_steps_per_s={rate:.0f} steps_to_0.9={reached if reached is not None else 'not reached'} "
        f"updates_per_s={result.updates / result.train_wall_s:.0f} wall_s={wall:.0f} (her train, collector + learner in 2 processes)",
        flush=True,
    )
    return {"env_steps_per_s": rate, "steps_to_0.9": float(reached) if reached is not None else math.nan}


def projection(one_arm: dict[str, float], task: str) -> None:
    """Throughput for more cores: arms scale until the learner cannot keep the update ratio."""
    from her_policy.learn.config import build_train_config

    ratio = build_train_config({"task": task}).updates_per_step
    per_arm = one_arm["env_steps_per_s"]
    learner_max = one_arm["updates_per_s_capacity"]
    print(f"projection ({task}: {per_arm:.0f} env steps/s per arm core, learner <= {learner_max:.0f} "
          f"updates/s on one core, {ratio:g} updates per env step):")  # fmt: skip
    for cores in (2, 4, 8, 16, 32):
        arms = cores - 1
        wanted = arms * per_arm
        served = min(wanted, learner_max / ratio if ratio else math.inf)
        bottleneck = "learner (one core of updates)" if served < wanted else "arms (simulation)"
        print(f"  cores={cores:<3} arms={arms:<3} env_steps_per_s~{served:.0f}  bottleneck: {bottleneck}")


def learner_capacity(task: str) -> float:
    """Updates/s the learner sustains on one core with a full batch (its ceiling)."""
    import numpy as np
    import torch

    from her_goals.tasks import get_task
    from her_policy.learn.algorithms import make_learner
    from her_policy.learn.buffer import HerReplayBuffer
    from her_policy.learn.config import build_train_config
    from her_policy.learn.envs import EnvSource, layout_of
    from her_policy.learn.train import train_from_buffer

    torch.set_num_threads(1)
    cfg = build_train_config({"task": task})
    env = EnvSource(task=task)()
    layout = layout_of(env)
    space = env.unwrapped.goal_space
    spec = get_task(task)
    buf = HerReplayBuffer(space, layout.observation_dim, layout.action_dim, capacity=100_000)
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = spec.episode_steps
        buf.add_episode(
            rng.normal(size=(n + 1, layout.observation_dim)), rng.uniform(-1, 1, (n, layout.action_dim)),
            rng.normal(size=(n + 1, space.dim)), np.tile(rng.normal(size=space.dim), (n, 1)), truncated=True,
        )  # fmt: skip
    learner = make_learner(layout, cfg, gamma=0.98)
    train_from_buffer(learner, buf, 20, batch_size=cfg.batch_size)
    start = time.perf_counter()
    train_from_buffer(learner, buf, 200, batch_size=cfg.batch_size)
    return 200 / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="reach")
    ap.add_argument("--arms", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--minutes", type=float, default=3.0, help="wall-clock per run")
    ap.add_argument("--publish-every", type=int, default=500)
    ap.add_argument("--skip-single", action="store_true", help="skip the single-process baseline")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: fleet_run(args.task, n, args.minutes, Path(tmp) / f"fleet{n}", args.publish_every) for n in args.arms}
        if not args.skip_single:
            single_process(args.task, args.minutes, Path(tmp) / "single")
    one = dict(results[min(results)])
    one["updates_per_s_capacity"] = learner_capacity(args.task)
    print(f"learner capacity: {one['updates_per_s_capacity']:.0f} updates/s on one core (batch of the preset)")
    projection(one, args.task)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
