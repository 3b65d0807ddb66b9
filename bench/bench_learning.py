"""Learning benchmark: our HER learner vs Stable-Baselines3 + HerReplayBuffer, side by side.

For each task, both learners run one after the other on this machine, each under
the same wall-clock budget (evaluation time excluded; env creation included),
stopping early once a periodic evaluation reaches ``stop_at`` (0.95, above the
target, so that the final number is not a lucky first crossing). Both are evaluated
the same way: the deterministic policy on the task's held-out requested goals
(``her_policy.learn.evaluate``, set 1 periodically, set 0 at the end), with the task's
own tolerance. SB3 uses the rl-baselines3-zoo settings (SAC for Reach, TQC for
Push); ours uses the preset ``her train`` picks for the env.

Prints, per task, requested-goal success vs env steps and vs wall-clock for both,
time and env steps to the target, the SB3/ours ratios, and final success with a
Wilson 95% interval.

Usage:
  .venv/bin/python bench/bench_learning.py                       # FetchReach-v4 and FetchPush-v4
  .venv/bin/python bench/bench_learning.py --tasks reach push    # our her_mujoco tasks
  .venv/bin/python bench/bench_learning.py --tasks fetch_reach --budget-s 120 --skip-sb3
  .venv/bin/python bench/bench_learning.py --tasks fetch_push --ours batch_size=1024 algo=td3
  .venv/bin/python bench/bench_learning.py --seeds 3 --tasks reach push drawer pick_and_place fetch_push \
      fetch_pick_and_place --sb3-budget-steps 150000      # issue 10's table, one line per task
  .venv/bin/python bench/bench_learning.py --seeds 3 --tasks push --variants push push_one_critic push_150k
                                                          # issue 22: the presets side by side
  .venv/bin/python bench/bench_learning.py --seeds 3 --tasks drawer --variants drawer drawer_150k
  .venv/bin/python bench/bench_learning.py --seeds 1 --first-seed 2 --tasks push     # seed 2 alone

With ``--seeds``, each line also gives the CPU-seconds per 1k env steps (this process and the
env workers it reaped, ``getrusage``), so that a preset that needs fewer env steps is weighed
against what each step costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from her_policy.learn.config import build_train_config
from her_policy.learn.envs import EnvSource
from her_policy.learn.evaluate import EvalResult, evaluate
from her_policy.learn.train import FINAL_EVAL_SET, PERIODIC_EVAL_SET, train


@dataclass(frozen=True)
class Task:
    source: EnvSource
    target: float
    budget_s: float
    max_env_steps: int
    eval_every: int
    sb3_algo: str
    sb3_kwargs: dict[str, Any]
    sb3_threads: int = 1
    """Torch threads for SB3 (one process): 2 pays off only for its big Push batches."""
    stop_at: float = 0.95
    """Both learners train on until a periodic evaluation reaches this (above ``target``,
    so that the final evaluation on fresh goals is not a lucky first crossing)."""


ZOO_SAC_REACH = {
    "batch_size": 256, "gamma": 0.95, "learning_rate": 1e-3, "learning_starts": 1000,
    "buffer_size": 1_000_000, "ent_coef": "auto", "policy_kwargs": {"net_arch": [64, 64]},
    "normalize": True,
}
ZOO_TQC_PUSH = {
    "batch_size": 2048, "gamma": 0.95, "learning_rate": 1e-3, "tau": 0.05, "buffer_size": 1_000_000,
    "policy_kwargs": {"net_arch": [512, 512, 512], "n_critics": 2}, "normalize": False,
}

TASKS: dict[str, Task] = {
    "fetch_reach": Task(EnvSource(env_id="FetchReach-v4"), 0.95, 300.0, 20_000, 500, "sac", ZOO_SAC_REACH),
    "fetch_push": Task(EnvSource(env_id="FetchPush-v4"), 0.9, 900.0, 300_000, 10_000, "tqc", ZOO_TQC_PUSH, 2),
    "fetch_pick_and_place": Task(
        EnvSource(env_id="FetchPickAndPlace-v4"), 0.9, 3600.0, 1_000_000, 20_000, "tqc", ZOO_TQC_PUSH, 2
    ),
    "reach": Task(EnvSource(task="reach"), 0.95, 300.0, 20_000, 500, "sac", ZOO_SAC_REACH),
    # Checks every 5k env steps on push and drawer, where the presets reach 0.9 at 15-100k.
    "push": Task(EnvSource(task="push"), 0.9, 900.0, 300_000, 5_000, "tqc", ZOO_TQC_PUSH, 2),
    "pick_and_place": Task(EnvSource(task="pick_and_place"), 0.9, 3600.0, 500_000, 20_000, "tqc", ZOO_TQC_PUSH, 2),
    "drawer": Task(EnvSource(task="drawer"), 0.9, 900.0, 150_000, 5_000, "tqc", ZOO_TQC_PUSH, 2),
}
SLOW = ("pick_and_place", "fetch_pick_and_place")
"""Tasks that run one seed unless --slow-seeds says more (they take tens of minutes each)."""


@dataclass
class Curve:
    name: str
    points: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    """(env_steps, train_wall_s, success, ci_low, ci_high) of each periodic evaluation."""
    final: EvalResult | None = None
    env_steps: int = 0
    train_wall_s: float = 0.0
    note: str = ""
    note_setup: str = ""

    def first_reaching(self, target: float) -> tuple[int, float] | None:
        for steps, wall, success, _, _ in self.points:
            if success >= target:
                return steps, wall
        return None


def run_ours(task: Task, budget_s: float, eval_episodes: int, final_episodes: int, overrides: dict[str, Any]) -> Curve:
    flags: dict[str, Any] = {
        "env": task.source.env_id, "task": task.source.task, "max_wall_s": budget_s,
        "env_steps": task.max_env_steps, "target_success": task.stop_at, "eval_every": task.eval_every,
        "eval_episodes": eval_episodes, "final_eval_episodes": final_episodes, "progress": False,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    cfg = build_train_config({**flags, **overrides})
    result = train(cfg, env_factory=task.source)
    curve = Curve(
        name=f"ours {cfg.algo} {list(cfg.hidden)} b{cfg.batch_size} utd{cfg.updates_per_step:g} x{cfg.n_envs}",
        final=result.final, env_steps=result.env_steps, train_wall_s=result.train_wall_s,
        note=f"stopped: {result.stopped_because}",
    )
    curve.points = [(r.env_steps, r.train_wall_s, r.requested_success, r.ci_low, r.ci_high) for r in result.evals]
    return curve


class SB3Policy:
    """SB3 model (+ VecNormalize statistics) as a batch policy for ``her_policy.learn.evaluate``."""

    needs_achieved_goal = True

    def __init__(self, model: Any, vecnorm: Any = None) -> None:
        self.model, self.vecnorm = model, vecnorm

    def act_batch(self, observation: np.ndarray, desired_goal: np.ndarray, achieved_goal: np.ndarray) -> np.ndarray:
        obs = {"observation": observation, "achieved_goal": achieved_goal, "desired_goal": desired_goal}
        if self.vecnorm is not None:
            obs = self.vecnorm.normalize_obs(obs)
        actions, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(actions, np.float64)


def run_sb3(task: Task, budget_s: float, eval_episodes: int, final_episodes: int, threads: int, seed: int = 0) -> Curve:
    import torch
    from stable_baselines3 import SAC, HerReplayBuffer
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    if threads > 0:
        torch.set_num_threads(threads)
    kwargs = dict(task.sb3_kwargs)
    normalize = kwargs.pop("normalize")
    start = time.perf_counter()
    excluded = 0.0
    env: Any = DummyVecEnv([task.source])
    if normalize:
        env = VecNormalize(env, gamma=kwargs["gamma"])
    if task.sb3_algo == "tqc":
        from sb3_contrib import TQC as Algo
    else:
        Algo = SAC
    model = Algo(
        "MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"goal_selection_strategy": "future", "n_sampled_goal": 4},
        seed=seed, verbose=0, device="cpu", **kwargs,
    )
    curve = Curve(name=f"SB3 {task.sb3_algo.upper()}+HER zoo {kwargs['policy_kwargs']['net_arch']} b{kwargs['batch_size']}")
    eval_env = task.source()

    def policy() -> SB3Policy:
        return SB3Policy(model, env if normalize else None)

    class Checkpoints(BaseCallback):
        def _on_training_start(self) -> None:
            curve.note_setup = f"setup {time.perf_counter() - start:.1f} s incl. buffer allocation"

        def _on_step(self) -> bool:
            nonlocal excluded
            steps = self.num_timesteps
            wall = time.perf_counter() - start - excluded
            due = steps % task.eval_every == 0
            over = wall >= budget_s or steps >= task.max_env_steps
            if due or over:
                t0 = time.perf_counter()
                r = evaluate(policy(), task.source, eval_episodes, envs=[eval_env], heldout_seed=PERIODIC_EVAL_SET)
                curve.points.append((steps, wall, r.requested_success, r.ci_low, r.ci_high))
                excluded += time.perf_counter() - t0
                if r.requested_success >= task.stop_at:
                    curve.note = "stopped: target_success"
                    return False
            if over:
                curve.note = "stopped: " + ("max_wall_s" if wall >= budget_s else "env_steps")
                return False
            return True

    model.learn(total_timesteps=task.max_env_steps, callback=Checkpoints())
    curve.env_steps = int(model.num_timesteps)
    curve.train_wall_s = time.perf_counter() - start - excluded
    curve.final = evaluate(policy(), task.source, final_episodes, envs=[eval_env], heldout_seed=FINAL_EVAL_SET)
    eval_env.close()
    return curve


def fmt_reach(curve: Curve, target: float) -> str:
    hit = curve.first_reaching(target)
    return "not reached" if hit is None else f"{hit[1]:.1f} s, {hit[0]} steps"


def report(name: str, task: Task, budget_s: float, curves: list[Curve]) -> str:
    lines = [f"\n== {task.source.name}: target {task.target} requested-goal success, budget {budget_s:.0f} s "
             f"wall and {task.max_env_steps} env steps (both stop at {task.stop_at}) =="]
    for c in curves:
        setup = f"; {c.note_setup}" if c.note_setup else ""
        lines.append(f"-- {c.name} ({c.note}; {c.env_steps} env steps, {c.train_wall_s:.1f} s{setup})")
        lines.append(f"   {'env steps':>10} {'wall s':>8} {'success':>8}  95% CI")
        for steps, wall, s, lo, hi in c.points:
            lines.append(f"   {steps:>10} {wall:>8.1f} {s:>8.2f}  [{lo:.2f}, {hi:.2f}]")
        if c.final is not None:
            f = c.final
            lines.append(f"   final (held-out set 0, n={f.n_episodes}): {f.requested_success:.3f} "
                         f"[{f.ci_low:.3f}, {f.ci_high:.3f}]")
    lines.append("   time to target: " + "; ".join(f"{c.name.split()[0]} {fmt_reach(c, task.target)}" for c in curves))
    if len(curves) == 2:
        ours, sb3 = (c.first_reaching(task.target) for c in curves)
        if ours is not None and sb3 is not None:
            lines.append(f"   ratio SB3/ours: wall {sb3[1] / ours[1]:.1f}x, env steps {sb3[0] / max(1, ours[0]):.1f}x")
        elif ours is not None:
            lines.append(f"   ratio SB3/ours: wall > {curves[1].train_wall_s / ours[1]:.1f}x (SB3 did not reach the target)")
        f0, f1 = curves[0].final, curves[1].final
        if f0 is not None and f1 is not None:
            lines.append(f"   final success ours/SB3: {f0.requested_success:.3f} / {f1.requested_success:.3f}")
    return "\n".join(lines)


def cpu_seconds() -> float:
    """User + system CPU of this process and of its reaped children (the env workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def seed_summary(name: str, task: Task, seeds: list[int], overrides: dict[str, Any], final_episodes: int) -> str:
    """Ours over several seeds, no wall-clock cap (the preset's step budget): the issue's line."""
    to_steps, to_wall, finals, cpu_per_1k = [], [], [], []
    target = 0.9  # the figure for every task
    for seed in seeds:
        flags = {"env": task.source.env_id, "task": task.source.task, "seed": seed, "progress": False,
                 "eval_every": task.eval_every, "eval_episodes": 50, "final_eval_episodes": final_episodes,
                 "target_success": task.stop_at}  # fmt: skip
        cfg = build_train_config({**{k: v for k, v in flags.items() if v is not None}, **overrides})
        cpu0 = cpu_seconds()
        result = train(cfg, env_factory=task.source)
        cpu_per_1k.append((cpu_seconds() - cpu0) / max(result.env_steps, 1) * 1e3)
        hit = next(((r.env_steps, r.train_wall_s) for r in result.evals if r.requested_success >= target), None)
        if hit is not None:
            to_steps.append(hit[0])
            to_wall.append(hit[1])
        finals.append(result.final.requested_success if result.final else float("nan"))
        print(f"[{name} seed {seed}] steps_to_{target:g}={hit[0] if hit else 'not reached'} "
              f"final={finals[-1]:.3f} ({result.env_steps} steps, {result.train_wall_s:.0f} s, "
              f"{cpu_per_1k[-1]:.1f} CPU-s per 1k env steps)", flush=True)  # fmt: skip

    def stat(values: list[float], fmt: str) -> str:
        if len(values) < len(seeds):
            return f"not reached in {len(seeds) - len(values)} of {len(seeds)}" + (
                f" (others median {fmt.format(float(np.median(values)))})" if values else ""
            )
        return f"{fmt.format(float(np.median(values)))} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"

    return (
        f"task={name} seeds={len(seeds)} steps_to_{target:g}={stat(to_steps, '{:.0f}')} "
        f"wall_s_to_{target:g}={stat(to_wall, '{:.0f}')} final={float(np.median(finals)):.3f} "
        f"finals={','.join(f'{f:.2f}' for f in finals)} cpu_s_per_1k_steps={float(np.median(cpu_per_1k)):.1f}"
    )


def sb3_at_budget(name: str, task: Task, steps: int, threads: int) -> str:
    """SB3 (zoo settings) for a fixed env-step budget: its env steps/s and success there."""
    budgeted = dataclasses.replace(task, max_env_steps=steps, stop_at=1.01, eval_every=max(steps // 4, 1))
    curve = run_sb3(budgeted, 1e9, 50, 100, threads)
    rate = curve.env_steps / curve.train_wall_s if curve.train_wall_s else float("nan")
    final = curve.final.requested_success if curve.final else float("nan")
    return (
        f"sb3 task={name} algo={task.sb3_algo} budget_steps={steps} env_steps_per_s={rate:.0f} "
        f"success_at_budget={final:.3f} wall_s={curve.train_wall_s:.0f}"
    )


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["fetch_reach", "fetch_push"], choices=list(TASKS))
    parser.add_argument("--budget-s", type=float, default=None, help="wall-clock budget per learner (default: per task)")
    parser.add_argument("--eval-episodes", type=int, default=50, help="held-out goals per periodic evaluation")
    parser.add_argument("--final-episodes", type=int, default=100, help="held-out goals for the final evaluation")
    parser.add_argument("--skip-sb3", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--sb3-threads", type=int, default=None,
                        help="torch threads for SB3 (default: 1 for Reach, 2 for Push)")
    parser.add_argument(
        "--sb3-settings", choices=["zoo", "zoo-reach-sac"], default="zoo",
        help="zoo: the rl-baselines3-zoo settings of each env (TQC 3x512 b2048 for Push); "
        "zoo-reach-sac: the zoo's FetchReach SAC settings everywhere (a cheaper SB3 on Push)",
    )
    parser.add_argument("--ours", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig overrides for ours")
    parser.add_argument("--out", type=Path, default=None, help="write all curves as JSON here")
    parser.add_argument(
        "--seeds", type=int, default=0,
        help="ours only, over this many seeds with the preset's step budget (no wall cap): one "
        "'task=... seeds=... steps_to_0.9=... wall_s_to_0.9=... final=...' line per task",
    )  # fmt: skip
    parser.add_argument(
        "--variants", nargs="+", default=["auto"], metavar="PRESET",
        help="with --seeds: presets to run side by side for each task (auto: the task's own; any name "
        "of her_policy.learn.presets.PRESETS, e.g. push_high_utd); --ours applies to all",
    )  # fmt: skip
    parser.add_argument("--slow-seeds", type=int, default=1, help="seeds for pick-and-place tasks with --seeds")
    parser.add_argument(
        "--first-seed", type=int, default=0,
        help="with --seeds: seeds FIRST..FIRST+N-1 (several processes, one seed each, use the cores)",
    )  # fmt: skip
    parser.add_argument(
        "--sb3-budget-steps", type=int, default=0,
        help="with --seeds: also run SB3 (zoo) on reach and push for this many env steps and print "
        "its env steps/s and its success at that budget",
    )  # fmt: skip
    args = parser.parse_args()
    if args.seeds:
        overrides = parse_overrides(args.ours)
        lines = []
        for name in args.tasks:
            n = args.slow_seeds if name in SLOW else args.seeds
            for variant in args.variants:
                seeds = list(range(args.first_seed, args.first_seed + n))
                line = seed_summary(name, TASKS[name], seeds, {"preset": variant, **overrides}, args.final_episodes)
                lines.append(f"variant={variant} {line}")
                print(lines[-1], flush=True)
        if args.sb3_budget_steps:
            for name in ("reach", "push"):
                if name in args.tasks:
                    lines.append(sb3_at_budget(name, TASKS[name], args.sb3_budget_steps, TASKS[name].sb3_threads))
                    print(lines[-1], flush=True)
        print("\n".join(["", "summary:", *lines]))
        return

    overrides = parse_overrides(args.ours)
    results: dict[str, Any] = {}
    for name in args.tasks:
        task = TASKS[name]
        budget = args.budget_s if args.budget_s is not None else task.budget_s
        curves = []
        if not args.skip_ours:
            curves.append(run_ours(task, budget, args.eval_episodes, args.final_episodes, overrides))
            c = curves[-1]
            print(f"[{name}] {c.name}: {c.note}, {c.env_steps} steps, {c.train_wall_s:.1f} s", flush=True)
        if not args.skip_sb3:
            sb3_task = task
            if args.sb3_settings == "zoo-reach-sac":
                sb3_task = dataclasses.replace(task, sb3_algo="sac", sb3_kwargs=ZOO_SAC_REACH)
            threads = args.sb3_threads if args.sb3_threads is not None else sb3_task.sb3_threads
            curves.append(run_sb3(sb3_task, budget, args.eval_episodes, args.final_episodes, threads))
        print(report(name, task, budget, curves), flush=True)
        results[name] = [
            {"name": c.name, "points": c.points, "env_steps": c.env_steps, "train_wall_s": c.train_wall_s,
             "note": c.note, "final": c.final.as_dict() if c.final else None}
            for c in curves
        ]
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
