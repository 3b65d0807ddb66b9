"""Robustness benchmark: a policy per seed under the whole perturbation suite, against issue 21's targets.

For each seed's policy (artefacts given on the command line, seed 0, 1, 2... in that order, or
trained here with ``--train`` on a step budget), runs ``her robustness``'s standard suite
(``her_mujoco.randomization.PERTURBATION_SUITE``: every knob alone at both ends, and the two
"all together" bundles) on 100 held-out requested goals of that seed's evaluation stream, each
episode through the full control loop (action limits, IK, safety monitor), success judged on
the true final state. Prints one line per seed: nominal success and mean safety cost per
episode, every single condition and every bundle with the points lost against nominal, and
whether the seed meets each target; then the targets over all seeds. The task's scripted
controller is measured in the same run on seed 0's goals as a reference line (``--no-peer``
skips it).

Targets (issue 21, for a randomised push policy):

- ``nominal``: nominal success >= 0.90;
- ``singles``: every single condition within 10 points of nominal (both friction ends and
  80 ms of latency included);
- ``bundles``: each "all together" bundle within 20 points of nominal;
- ``cost``: mean safety cost per episode at nominal <= 3 *and* the nominal target met (a
  policy that avoids the monitor by not pushing does not count).

A target over all seeds is met when every seed meets it.

Usage:
  .venv/bin/python bench/bench_robustness.py runs/push_s0/policy runs/push_s1/policy runs/push_s2/policy
  .venv/bin/python bench/bench_robustness.py --train --task push --env-steps 240000 --out runs/bench_rob
  .venv/bin/python bench/bench_robustness.py --train --task reach --env-steps 3000 --out /tmp/rob \\
      --set safety_layer=true cost_budget=3      # any TrainConfig field
  .venv/bin/python bench/bench_robustness.py ... --goals 20 --json /tmp/rob.json   # a quick look

With ``--train`` each seed's run goes to ``OUT/<task>_s<seed>``; a run whose policy is already
there is evaluated again, not retrained, and an interrupted one resumes from its checkpoint
(delete the directory to retrain).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

import her_mujoco
from her_goals.errors import HerError
from her_goals.tasks import task_names
from her_mujoco.randomization import PERTURBATION_SUITE
from her_policy.app.robustness import ConditionResult, run_robustness
from her_policy.deploy.runtime import RuntimeActor
from her_policy.learn.config import build_train_config
from her_policy.learn.train import train

NOMINAL_TARGET = 0.90
SINGLE_DROP_TARGET = 10.0
BUNDLE_DROP_TARGET = 20.0
COST_TARGET = 3.0


@dataclass
class SeedResult:
    label: str
    seed: int
    policy: str
    env_steps: int | None
    conditions: list[ConditionResult]
    wall_s: float

    @property
    def nominal(self) -> ConditionResult:
        return self.conditions[0]

    def of_kind(self, kind: str) -> list[ConditionResult]:
        return [c for c in self.conditions if c.kind == kind]

    def targets(self) -> dict[str, bool]:
        nominal_ok = self.nominal.success >= NOMINAL_TARGET
        return {
            "nominal": nominal_ok,
            "singles": all(c.drop_points <= SINGLE_DROP_TARGET for c in self.of_kind("single")),
            "bundles": all(c.drop_points <= BUNDLE_DROP_TARGET for c in self.of_kind("bundle")),
            "cost": self.nominal.safety_cost_mean <= COST_TARGET and nominal_ok,
        }


def fail(message: str) -> None:
    print(f"bench_robustness: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set {item!r}: not KEY=VALUE (a TrainConfig field, e.g. safety_layer=true)")
        out[key] = yaml.safe_load(value)
    return out


def artefact_steps(policy: str) -> int | None:
    try:
        meta = json.loads((Path(policy) / "policy.json").read_text())
        return int(meta["provenance"]["config"]["env_steps"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def check_artefacts(policies: list[str], task: str) -> None:
    """Every artefact loads for the task's goal space, before any condition runs."""
    env = her_mujoco.make_task(task)
    space = env.unwrapped.goal_space
    env.close()
    for policy in policies:
        if not Path(policy).is_dir():
            fail(f"artefact {policy!r}: no such directory; give a trained policy directory (RUN/policy)")
        try:
            RuntimeActor.load(policy, expect_goal_space=space)
        except HerError as exc:
            fail(f"artefact {policy!r} does not fit task {task!r}: {exc}")


def train_configs(args: argparse.Namespace, overrides: dict[str, Any]) -> list[tuple[int, Path, Any]]:
    """The seeds' training configurations, all validated before the first one trains."""
    runs = []
    for seed in args.seeds:
        out = args.out / f"{args.task}_s{seed}"
        values = {"task": args.task, "randomize": args.randomize, "env_steps": args.env_steps, "seed": seed,
                  "out": str(out), "progress": False, **overrides}  # fmt: skip
        try:
            runs.append((seed, out, build_train_config(values)))
        except HerError as exc:
            fail(f"training settings: {exc}")
    return runs


def cell(c: ConditionResult) -> str:
    return f"{c.name} {c.success:.2f}({-c.drop_points:+.0f})"


def seed_line(r: SeedResult) -> str:
    marks = " ".join(f"{k}:{'met' if ok else 'MISSED'}" for k, ok in r.targets().items())
    steps = f"{r.env_steps // 1000}k steps" if r.env_steps else "steps n/a"
    return (
        f"{r.label} ({steps}, {r.wall_s:.0f}s) | nominal {r.nominal.success:.2f} cost/ep {r.nominal.safety_cost_mean:.1f}"
        f" | singles: {', '.join(cell(c) for c in r.of_kind('single'))}"
        f" | bundles: {', '.join(cell(c) for c in r.of_kind('bundle'))}"
        f" | worst single {-max((c.drop_points for c in r.of_kind('single')), default=0):+.0f} pts"
        f", worst bundle {-max((c.drop_points for c in r.of_kind('bundle')), default=0):+.0f} pts | {marks}"
    )


def summary(results: list[SeedResult]) -> list[str]:
    lines = ["targets over all seeds (met when every seed meets it):"]
    what = {
        "nominal": f"nominal success >= {NOMINAL_TARGET:.2f}",
        "singles": f"every single condition within {SINGLE_DROP_TARGET:.0f} points of nominal",
        "bundles": f"each bundle within {BUNDLE_DROP_TARGET:.0f} points of nominal",
        "cost": f"mean safety cost per episode at nominal <= {COST_TARGET:g} with the nominal target met",
    }
    for key, text in what.items():
        ok = all(r.targets()[key] for r in results)
        detail = ""
        if key == "nominal":
            detail = ", ".join(f"{r.nominal.success:.2f}" for r in results)
        elif key == "cost":
            detail = ", ".join(f"{r.nominal.safety_cost_mean:.1f}" for r in results)
        else:
            kind = "single" if key == "singles" else "bundle"
            detail = ", ".join(
                f"{w.name} {-w.drop_points:+.0f}" for r in results for w in [max(r.of_kind(kind), key=lambda c: c.drop_points)]
            )
        lines.append(f"  {text}: {'MET' if ok else 'MISSED'} (per seed: {detail})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artefacts", nargs="*", help="one policy artefact per seed, seed 0 first")
    parser.add_argument("--task", default="push", help="her_mujoco task (default push)")
    parser.add_argument("--goals", type=int, default=100, help="held-out goals per condition and seed (default 100)")
    parser.add_argument("--train", action="store_true", help="train one policy per seed here instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to train (with --train)")
    parser.add_argument("--env-steps", type=int, default=None, help="training budget per seed (needed with --train)")
    parser.add_argument("--randomize", default="default", help="training randomisation (default: default)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more TrainConfig fields")
    parser.add_argument("--out", type=Path, default=None, help="directory of the --train runs (needed with --train)")
    parser.add_argument("--no-peer", action="store_true", help="skip the scripted controller's reference line")
    parser.add_argument("--json", type=Path, default=None, help="write every condition of every seed here")
    args = parser.parse_args()

    # Every input is checked before anything trains or runs.
    if args.task not in task_names():
        fail(f"--task {args.task!r}: unknown; use one of {', '.join(task_names())}")
    if args.goals < 1:
        fail(f"--goals {args.goals}: needs at least 1 held-out goal")
    if args.train == bool(args.artefacts):
        fail("give one artefact per seed, or --train (with --env-steps and --out), not both or neither")
    runs: list[tuple[int, Path, Any]] = []
    policies: list[tuple[int, str]] = []
    if args.train:
        if args.env_steps is None or args.env_steps <= 0 or args.out is None:
            fail("--train needs --env-steps N (a positive step budget) and --out DIR")
        runs = train_configs(args, parse_overrides(args.set))
    else:
        check_artefacts(args.artefacts, args.task)
        policies = list(enumerate(args.artefacts))
    if args.json is not None and not args.json.parent.is_dir():
        fail(f"--json {args.json}: its directory does not exist")

    for seed, out, cfg in runs:
        policy = out / "policy"
        if (policy / "policy.json").is_file():
            print(f"seed {seed}: reusing {policy} ({artefact_steps(str(policy))} env steps)", flush=True)
        else:
            t0 = time.perf_counter()
            resume = (out / "checkpoint").is_dir()  # a killed run continues from its checkpoint
            if resume:
                print(f"seed {seed}: resuming the interrupted run in {out}", flush=True)
            try:
                train(cfg, resume=resume)
            except HerError as exc:
                fail(f"training seed {seed}: {exc}")
            print(f"seed {seed}: trained {cfg.env_steps} env steps in {time.perf_counter() - t0:.0f}s -> {policy}", flush=True)
        policies.append((seed, str(policy)))

    print(f"robustness on {args.task}, {args.goals} held-out goals per condition and seed, "
          f"{len(PERTURBATION_SUITE)} conditions + nominal; success (points vs nominal):", flush=True)  # fmt: skip
    results = []
    for seed, policy in policies:
        t0 = time.perf_counter()
        conditions = run_robustness(policy, args.task, args.goals, dict(PERTURBATION_SUITE), seed=seed)
        r = SeedResult(f"seed {seed}", seed, policy, artefact_steps(policy), conditions, time.perf_counter() - t0)
        results.append(r)
        print(seed_line(r), flush=True)
    peer = None
    if not args.no_peer:
        t0 = time.perf_counter()
        conditions = run_robustness("scripted", args.task, args.goals, dict(PERTURBATION_SUITE), seed=0)
        peer = SeedResult("scripted (reference, seed 0)", 0, "scripted", None, conditions, time.perf_counter() - t0)
        print(seed_line(peer), flush=True)
    for line in summary(results):
        print(line)
    if args.json is not None:
        payload = {
            "task": args.task, "goals": args.goals,
            "seeds": [asdict(r) | {"targets": r.targets()} for r in results],
            "peer": None if peer is None else asdict(peer),
        }  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
