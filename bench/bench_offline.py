"""Learning from the robot's own data: offline methods beside the behaviour policy, online from
scratch and online with demonstrations, one line per case and method over seeds, in one run.

Every dataset is recorded with ``her sim`` (the MuJoCo arm through action limits and the
safety monitor, the robot's data path) into ``--cache``, once per seed, and trained on with
the same code ``her train --bags`` / ``her train --demos`` runs. Every success figure is the
trainer's own final evaluation: the deterministic policy on 100 held-out requested goals
(set 0) with the task's tolerance. The behaviour policy is measured on the same goals.

Cases (issue 19):

  reach_random     reach, 200 random-policy episodes, offline
  push_scripted    push, 1000 episodes of the scripted controller at noise 0.1, offline
  push_mix         push, 500 scripted episodes at noise 0.3 + 500 random ones, offline
  drawer_scripted  drawer, 1000 scripted episodes at noise 0.1, offline
  push_demos       push online for 30k env steps with 100 scripted demo episodes (noise 0.1),
                   beside online from scratch at the same env steps

Offline cases also run online from scratch at the dataset's env steps (``--online``), and
"today's" plain DDPG offline (``--methods ddpg``) for the update cost and the comparison.

Usage:
  .venv/bin/python bench/bench_offline.py                                  # every case, seeds 0-2
  .venv/bin/python bench/bench_offline.py --cases push_scripted --seeds 1 --methods default ddpg
  .venv/bin/python bench/bench_offline.py --cases push_demos --seeds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from her_policy.learn.config import build_train_config
from her_policy.learn.envs import EnvSource
from her_policy.learn.evaluate import evaluate
from her_policy.learn.offline import load_demos, train_from_bags
from her_policy.learn.train import train

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Recording:
    """One ``her sim`` recording of a dataset."""

    policy: str
    noise: float
    episodes: int


@dataclass(frozen=True)
class Case:
    task: str
    data: tuple[Recording, ...]
    kind: str = "offline"
    """offline: train on the data only; demos: train online with the data as demonstrations."""
    target: float = 0.9
    online_steps: int = 0
    """demos: env steps of the online runs (with and without demonstrations)."""
    behaviour: Recording | None = None
    """The policy measured as "behaviour" on the held-out goals (default: the first recording)."""


CASES: dict[str, Case] = {
    "reach_random": Case("reach", (Recording("random", 0.0, 200),), target=0.95),
    "push_scripted": Case("push", (Recording("scripted", 0.1, 1000),), target=0.9),
    "push_mix": Case("push", (Recording("scripted", 0.3, 500), Recording("random", 0.0, 500)), target=0.8),
    "drawer_scripted": Case("drawer", (Recording("scripted", 0.1, 1000),), target=0.9),
    "push_demos": Case("push", (Recording("scripted", 0.1, 100),), kind="demos", target=0.9, online_steps=30_000),
}


@dataclass
class Run:
    success: float
    updates: int
    env_steps: int
    wall_s: float
    cpu_ms_per_update: float
    first_at: int | None = None
    """Updates (offline) or env steps (online) of the first periodic evaluation >= the target."""
    notes: dict[str, Any] = field(default_factory=dict)


def record(cache: Path, case: str, spec: Case, seed: int) -> list[Path]:
    """The case's bags for ``seed`` (recorded with her sim the first time)."""
    out = []
    for i, rec in enumerate(spec.data):
        path = cache / f"{case}_s{seed}" / f"{i}_{rec.policy}_n{rec.noise:g}_{rec.episodes}"
        if not (path / "done").is_file():
            if path.exists():
                shutil.rmtree(path)
            cmd = [
                sys.executable, "-m", "her_policy.app.cli", "sim", "--task", spec.task,
                "--policy", rec.policy, "--noise", str(rec.noise), "--episodes", str(rec.episodes),
                "--seed", str(1000 * seed + 17 * i + 1), "--out", str(path),
            ]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"her sim failed: {' '.join(cmd)}\n{done.stderr}")
            (path / "done").write_text(done.stdout.strip().splitlines()[-1] + "\n")
        out.append(path)
    return out


class _ActorPolicy:
    """A per-observation actor (her sim's) as a batch policy for evaluate()."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def act_batch(self, observation: Any, desired_goal: Any) -> Any:
        return np.stack([np.asarray(self.actor(o, g), np.float64) for o, g in zip(observation, desired_goal)])


def behaviour_success(task: str, rec: Recording, episodes: int, seed: int) -> float:
    from her_policy.app.sim import policy_actor

    source = EnvSource(task=task)
    env = source()
    actor = _ActorPolicy(policy_actor(env, rec.policy, noise=rec.noise, seed=seed))
    result = evaluate(actor, source, episodes, envs=[env], heldout_seed=0)
    env.close()
    return result.requested_success


def _first(evals: list[Any], target: float, key: str) -> int | None:
    for row in evals:
        if row.requested_success >= target:
            return int(getattr(row, key))
    return None


def run_offline(bags: list[Path], method: str, seed: int, updates: int, target: float, out: Path) -> Run:
    flags: dict[str, Any] = {"seed": seed, "progress": False, "out": str(out)}
    if method == "ddpg":  # today's offline trainer: the task preset's DDPG on the fixed buffer
        flags.update(preset="auto", algo="ddpg")
        offline = False
    else:
        offline = True
        for item in method.split(",")[1:] if "," in method else []:
            key, value = item.split("=")
            flags[key] = json.loads(value) if value[:1] in "0123456789-[{" or value in ("true", "false") else value
    from her_recorder.reader import bag_summary, find_bags

    task = bag_summary(find_bags(bags)[0]).meta.task  # type: ignore[union-attr]
    flags["task"] = task
    config = build_train_config(flags, offline=offline)
    wall0 = time.perf_counter()
    result = train_from_bags(bags, config, n_updates=updates)
    assert result.final is not None
    return Run(
        success=result.final.requested_success, updates=result.updates, env_steps=result.env_steps,
        wall_s=time.perf_counter() - wall0, cpu_ms_per_update=result.update_cpu_ms,
        first_at=_first(result.evals, target, "updates"), notes={"algo": config.algo},
    )  # fmt: skip


def run_online(task: str, seed: int, env_steps: int, target: float, out: Path, demos: list[Path] | None) -> Run:
    config = build_train_config({"task": task, "seed": seed, "env_steps": env_steps, "progress": False,
                                 "out": str(out), "target_success": None}, demos=bool(demos))  # fmt: skip
    episodes, hashes = [], None
    if demos:
        from her_policy.learn.envs import goal_space_of, layout_of

        env = EnvSource(task=task)()
        data = load_demos(demos, task=task, goal_space=goal_space_of(env), layout=layout_of(env))
        env.close()
        episodes, hashes = data.episodes, data.hashes("demo")
    wall0 = time.perf_counter()
    result = train(config, demos=episodes, demo_hashes=hashes)
    assert result.final is not None
    return Run(
        success=result.final.requested_success, updates=result.updates, env_steps=result.env_steps,
        wall_s=time.perf_counter() - wall0, cpu_ms_per_update=result.update_cpu_ms,
        first_at=_first(result.evals, target, "env_steps"),
    )  # fmt: skip


UPDATE_COST_METHODS: dict[str, dict[str, Any]] = {
    "ddpg (today's her train --bags: the push preset's DDPG)": {},
    "gciql awr (her train --bags default)": {"offline": True},
    "ddpg+bc (TD3+BC term, bc_weight 2.5)": {"bc_weight": 2.5},
    "td3": {"algo": "td3"},
    "sac": {"algo": "sac"},
    "ddpg with critic layer norm": {"critic_layer_norm": True},
}


def update_costs(bags: list[Path], n: int = 300) -> list[str]:
    """CPU-ms per gradient update of each method on the same data, measured side by side."""
    from her_policy.learn.offline import load_training_episodes, task_layout
    from her_policy.learn.trainer import Trainer

    data = load_training_episodes(bags)
    layout = task_layout(data.task, data.observation_dim, data.goal_space.dim, data.action_dim)
    out = []
    for name, settings in UPDATE_COST_METHODS.items():
        flags = {k: v for k, v in settings.items() if k != "offline"}
        config = build_train_config({"task": data.task, "progress": False, **flags}, offline=bool(settings.get("offline")))
        trainer = Trainer(config, layout, data.goal_space, episode_length=50, mode="offline")
        trainer.ingest(data.episodes)
        trainer.update(20)  # warm-up
        cpu = time.process_time()
        trainer.update(n)
        ms = 1000 * (time.process_time() - cpu) / n
        out.append(f"update_cost method={name} batch={config.batch_size} hidden={list(config.hidden)} cpu_ms_per_update={ms:.1f}")
    return out


def line(case: str, what: str, runs: list[Run], target: float, unit: str) -> str:
    s = [r.success for r in runs]
    firsts = [r.first_at for r in runs]
    reached = [f for f in firsts if f is not None]
    first = (
        f"{int(np.median(reached))} {unit}" + (f" (not in {len(firsts) - len(reached)} of {len(firsts)})" if len(reached) < len(firsts) else "")
        if reached else "never"
    )  # fmt: skip
    met = "met" if min(s) >= target else "MISSED"
    return (
        f"case={case} {what} seeds={len(runs)} final={','.join(f'{x:.2f}' for x in s)} "
        f"(min {min(s):.2f}, median {float(np.median(s)):.2f}; target {target:g} {met}) first_{target:g}={first} "
        f"updates={runs[0].updates} env_steps={runs[0].env_steps} cpu_ms_per_update={np.median([r.cpu_ms_per_update for r in runs]):.1f} "
        f"wall_s={np.median([r.wall_s for r in runs]):.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["default"],
                        help="offline methods: default (her train --bags as shipped), ddpg (today's plain "
                             "DDPG), or default,KEY=VALUE,... overrides")  # fmt: skip
    parser.add_argument("--updates", type=int, default=None, help="offline updates (default: the preset's)")
    parser.add_argument("--online", action="store_true", help="offline cases: also online from scratch at the data's env steps")
    parser.add_argument("--no-update-cost", action="store_true", help="skip the update-cost comparison")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/her_bench_offline"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/her_bench_offline/runs"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    lines: list[str] = []
    for case in args.cases:
        spec = CASES[case]
        results: dict[str, list[Run]] = {}
        behaviour: list[float] = []
        for seed in range(args.seeds):
            bags = record(args.cache, case, spec, seed)
            behaviour.append(behaviour_success(spec.task, spec.behaviour or spec.data[0], 100, seed))
            if spec.kind == "offline":
                for method in args.methods:
                    out = args.out / f"{case}_{method.replace(',', '_').replace('=', '')}_s{seed}"
                    results.setdefault(f"method={method}", []).append(
                        run_offline(bags, method, seed, args.updates or build_train_config({"task": spec.task}, offline=True).offline_updates, spec.target, out)
                    )
                if args.online:
                    steps = sum(r.episodes for r in spec.data) * 50
                    results.setdefault(f"method=online_scratch env_steps={steps}", []).append(
                        run_online(spec.task, seed, steps, spec.target, args.out / f"{case}_online_s{seed}", None)
                    )
            else:
                results.setdefault("method=online_with_demos", []).append(
                    run_online(spec.task, seed, spec.online_steps, spec.target, args.out / f"{case}_demos_s{seed}", bags)
                )
                results.setdefault("method=online_scratch", []).append(
                    run_online(spec.task, seed, spec.online_steps, spec.target, args.out / f"{case}_scratch_s{seed}", None)
                )
            print(f"# {case} seed {seed} done: " + ", ".join(f"{k}: {v[-1].success:.2f}" for k, v in results.items()), flush=True)
        rec = spec.behaviour or spec.data[0]
        lines.append(
            f"case={case} behaviour={rec.policy}(noise {rec.noise:g}) seeds={len(behaviour)} "
            f"final={','.join(f'{x:.2f}' for x in behaviour)} (median {float(np.median(behaviour)):.2f}; 100 held-out goals)"
        )
        for what, runs in results.items():
            unit = "updates" if spec.kind == "offline" and "online" not in what else "env steps"
            lines.append(line(case, what, runs, spec.target, unit))
        print("\n".join(lines[-(len(results) + 1):]), flush=True)
    if not args.no_update_cost:
        bags = record(args.cache, "push_scripted", CASES["push_scripted"], 0)
        lines.extend(update_costs(bags))
        print("\n".join(lines[-len(UPDATE_COST_METHODS):]), flush=True)
    print("\n== summary ==")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
