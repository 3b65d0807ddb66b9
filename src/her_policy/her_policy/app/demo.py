"""``her demo``: the whole loop of ARCHITECTURE.md in one process on the MuJoCo arm.

1. **Train through bags.** Episodes collected with the current policy and
   exploration are written to rosbag2 with the crash-safe recorder, read back
   with the validating reader, and only then stored in the HER replay buffer
   (:class:`~her_policy.app.bag_transport.BagRoundTrip`).
2. **Deploy and evaluate.** The policy artefact is loaded by the runtime actor
   and drives the arm through action limits and the safety monitor
   (:mod:`her_policy.app.sim`) on held-out requested goals; those episodes are
   recorded to bags as well, with their safety flags.
3. **Audit.** ``her audit`` reads every bag, the training log and the artefact,
   and writes report.md/report.json and plots.

Requested-goal success of step 2 is the result; hindsight figures are shown
beside it and labelled as what they are.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import her_mujoco
from her_goals.checks import EpisodeCount, NonNegativeInt, OutputDir, check_fields
from her_goals.config import config_hash
from her_goals.evaluation import POLICY_LEARNER, EvaluationPlan
from her_goals.settings_cli import add_settings_arguments, settings_from_args
from her_goals.stats import wilson_interval
from her_goals.tasks import TaskName, get_task
from her_mujoco.randomization import DomainRandomization
from her_policy.app.bag_transport import BagRoundTrip
from her_policy.app.sim import record_evaluation
from her_policy.deploy.settings import load_safety_config
from her_policy.errors import PolicyError
from her_policy.learn.config import build_train_config
from her_recorder.audit import run_audit
from her_recorder.writer import EpisodeRecorder


@dataclass(frozen=True)
class DemoResult:
    """What ``her demo`` measured, with where it wrote everything."""

    task: str
    requested_success: float
    ci_low: float
    ci_high: float
    n_goals: int
    safety_cost_mean: float
    train_wall_s: float
    total_wall_s: float
    env_steps: int
    hindsight_ratio: float
    verdict: str
    """The audit's verdict on the evaluation (verified | unverified | failed)."""
    findings: tuple[str, ...]
    """The audit's finding lines (empty when verified without a remark)."""
    report: Path
    artefact: Path
    bags: Path

    def summary(self) -> str:
        return "\n".join(
            [
                f"HER-ROS demo: {self.task} on the MuJoCo arm "
                f"({self.env_steps} env steps through {self.bags}, "
                f"{self.train_wall_s:.0f} s training, {self.total_wall_s:.0f} s in all)",
                f"  requested-goal success: {self.requested_success:.3f} "
                f"[{self.ci_low:.3f}, {self.ci_high:.3f}] (Wilson 95%, {self.n_goals} held-out "
                "goals, through action limits and the safety monitor)",
                f"  hindsight ratio in training: {self.hindsight_ratio:.2f} "
                "(share of relabelled samples; a training trick, not a result)",
                f"  mean safety cost per episode: {self.safety_cost_mean:.2f}",
                f"  audit verdict: {self.verdict}"
                + (" (the bags prove the evaluation: plan, goals, policy, every episode)"
                   if self.verdict == "verified" else ""),
                *(f"    {line}" for line in self.findings),
                f"  policy artefact: {self.artefact}",
                f"  audit report:    {self.report}",
            ]
        )


def run_demo(
    task: str = "reach",
    *,
    out: Path,
    seed: int = 0,
    eval_goals: int = 100,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> DemoResult:
    """Train ``task`` through bags, evaluate through the safety loop, audit; see the module doc.

    Training uses the task's preset (``her_policy.learn.presets``), as ``her train --task`` does;
    ``overrides`` are flags on top of it. ``out`` holding a demo run already is refused, unless
    ``overwrite``: then that run's own outputs (:data:`DEMO_OUTPUTS`) are removed first.
    """
    from her_policy.learn.train import train  # loads torch: only when a demo trains

    get_task(task)  # every registered task has a demo; a typo names the closest task
    start = time.perf_counter()
    out = Path(out)
    if any((out / name).exists() for name in DEMO_OUTPUTS):
        if not overwrite:
            raise PolicyError(
                f"{out} already holds a demo run; pass --overwrite to replace it, or choose another --out"
            )
        for name in DEMO_OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    if eval_goals < 1:
        raise PolicyError(f"eval_goals must be >= 1, got {eval_goals}")
    safety = load_safety_config()  # every config file is checked before any work
    flags = {
        "task": task,
        "seed": seed,
        "out": str(out / "train"),
        "progress": progress,
        **(overrides or {}),
    }
    cfg = build_train_config(flags)
    env = her_mujoco.make_task(task)
    arm_task: Any = env.unwrapped  # the her_mujoco task behind Gymnasium's wrappers
    space = arm_task.goal_space
    period_ns = round(arm_task.control_period_s * 1e9)

    # 1. Train: every episode passes through a bag before the learner sees it.
    _say(progress, f"[1/3] training {cfg.algo} on {task}; episodes go through {out / 'bags/train'}")
    train_plan = EvaluationPlan.for_task(
        task, "train", policy=POLICY_LEARNER, stream_seed=seed, sampler=arm_task.goal_sampler
    )
    with EpisodeRecorder(
        out / "bags" / "train",
        goal_space=space,
        task=task,
        config=cfg,
        seeds={"run": seed},
        plan=train_plan,
    ) as recorder:
        transport = BagRoundTrip(recorder, split="train", step_ns=period_ns)
        trained = train(cfg, episode_transport=transport)
    if trained.artefact is None:
        raise PolicyError("training wrote no artefact")
    artefact = Path(trained.artefact)

    # 2. Deploy the artefact through limits + safety on held-out requested goals.
    _say(
        progress,
        f"[2/3] deploying {artefact} through the safety monitor on {eval_goals} held-out goals",
    )
    eval_config = {
        "split": "eval",
        "train_config_hash": config_hash(cfg),
        "artefact": str(artefact),
    }
    # What the evaluation promises is stored in its bags: the audit re-derives every goal.
    results, _plan = record_evaluation(
        env, artefact, out / "bags" / "eval", episodes=eval_goals, stream_seed=seed,
        config=eval_config, safety=safety, progress=progress,
    )  # fmt: skip
    successes = sum(bool(r.success) for r in results)
    low, high = wilson_interval(successes, len(results))

    # 3. Audit every bag with the training log and the artefact.
    _say(progress, "[3/3] auditing the bags")
    report = run_audit(
        [out / "bags" / "train", out / "bags" / "eval"],
        out_dir=out / "audit",
        training_log=out / "train" / "train_log.jsonl",
        artefact=artefact,
        goal_region=arm_task.goal_region,
    )
    hindsight = _hindsight_ratio(report)
    result = DemoResult(
        task=task,
        requested_success=successes / max(1, len(results)),
        ci_low=low,
        ci_high=high,
        n_goals=len(results),
        safety_cost_mean=float(np.mean([r.safety_cost for r in results])) if results else 0.0,
        train_wall_s=trained.train_wall_s,
        total_wall_s=time.perf_counter() - start,
        env_steps=trained.env_steps,
        hindsight_ratio=hindsight,
        verdict=report.verdict,
        findings=tuple(f.line() for f in report.findings),
        report=out / "audit" / "report.md",
        artefact=artefact,
        bags=out / "bags",
    )
    (out / "demo.json").write_text(
        json.dumps(
            {k: str(v) if isinstance(v, Path) else v for k, v in result.__dict__.items()}, indent=2
        )
    )
    env.close()
    return result


DEMO_OUTPUTS = ("bags", "train", "audit", "demo.json")
"""What a demo run writes into its directory (and ``--overwrite`` removes)."""


def _hindsight_ratio(report: Any) -> float:
    log = report.training_log
    return float(log.hindsight_ratio_mean) if log is not None else float("nan")


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


@dataclass(frozen=True)
class DemoSettings:
    """``her demo``: train, deploy through the safety monitor, and audit a task on the MuJoCo arm."""

    task: TaskName = "reach"
    """Registered task to run, with its training preset: reach (minutes), push, drawer or
    pick_and_place (longer)."""
    out: OutputDir | None = None
    """Run directory (default runs/demo-<task>-<time>); one holding a demo run is refused unless
    --overwrite."""
    seed: NonNegativeInt = 0
    """Seed of training, goals and evaluation."""
    eval_goals: EpisodeCount = 100
    """Held-out requested goals to evaluate."""
    overwrite: bool = False
    """Replace the demo run already in --out (its bags, train, audit and demo.json are removed
    first; anything else in the directory is left alone)."""
    quiet: bool = False
    """No progress display."""
    randomize: str = "none"
    """Domain randomisation of the training episodes: none or default (her_mujoco.randomization);
    each episode's parameters go into its training bag. The evaluation runs nominal."""

    def __post_init__(self) -> None:
        check_fields(self, where="--")  # the task: a registered one, or the closest named
        DomainRandomization.from_spec(self.randomize)


def add_demo_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her demo`` on the ``her`` command's subparsers."""
    parser = subparsers.add_parser(
        "demo",
        help="Train, deploy through the safety monitor, and audit a task on the MuJoCo arm.",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_settings_arguments(parser, DemoSettings)
    parser.set_defaults(handler=_main)
    return parser


def _main(args: argparse.Namespace) -> int:
    settings = settings_from_args(DemoSettings, args)
    out = settings.out or Path("runs") / f"demo-{settings.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_demo(
        settings.task,
        out=out,
        seed=settings.seed,
        eval_goals=settings.eval_goals,
        progress=not settings.quiet,
        overrides={"randomize": settings.randomize} if settings.randomize != "none" else None,
        overwrite=settings.overwrite,
    )
    print(result.summary())
    return 0 if result.verdict == "verified" else 1
