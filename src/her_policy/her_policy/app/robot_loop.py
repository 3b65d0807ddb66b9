"""``her loop``: the robot loop without a robot, learning while the (simulated) arm runs.

One command runs what a user will run on the arm, ROS-free, in two processes:

* **the arm** (this process): training episodes through the full control loop with
  exploration around the newest policy version, recorded to ``RUN/session``
  (:class:`~her_policy.app.arm_worker.ArmWorker`); whenever a new version swaps in
  (between episodes), it is measured on held-out requested goals through the same loop,
  recorded to ``RUN/eval``;
* **the learner** (a child process): ``her learn --watch RUN/session --out RUN/learner``.

Each evaluation prints one line (wall-clock, env steps, version, requested-goal success
with its interval) and appends it to ``RUN/curve.jsonl``; ``RUN/curve.png`` plots success
against env steps and wall-clock. Stops after ``--minutes`` or at ``--target-success``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from her_goals.checks import Count, Fraction, NonNegativeInt, OutputDir, PositiveFloat
from her_goals.errors import ConfigError
from her_goals.learning_curve import plot_learning_curve
from her_goals.settings_cli import add_settings_arguments, settings_from_args
from her_goals.tasks import TaskName
from her_policy.app.arm_worker import ArmWorker
from her_policy.learn.config import build_train_config
from her_policy.learn.signals import StopSignals


@dataclass(frozen=True)
class LoopSettings:
    """``her loop``: arm, recorder and continuous learner together, without ROS."""

    out: OutputDir
    """Run directory: session/ (training bags), eval/ (evaluation bags), learner/, curve.*."""
    task: TaskName = "reach"
    """Registered task."""
    minutes: PositiveFloat = 10.0
    """Wall-clock to run."""
    eval_goals: Count = 50
    """Held-out requested goals per new version."""
    publish_every: Count = 1000
    """Learner updates between versions."""
    target_success: Fraction | None = None
    """Stop once a version reaches this requested-goal success."""
    seed: NonNegativeInt = 0
    """Seed of the arm's goals and exploration."""


def add_loop_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her loop``."""
    text = (
        "The robot loop without a robot: a simulated arm explores and records while a "
        "continuous learner trains; each new policy version swaps in between episodes and is "
        "measured on held-out goals."
    )
    parser: argparse.ArgumentParser = subparsers.add_parser("loop", help=text, description=text)
    add_settings_arguments(parser, LoopSettings)
    parser.set_defaults(handler=loop_command)
    return parser


def _learner_main(session: str, out: str, task: str, publish_every: int, stop: Any) -> None:
    # Ctrl-C reaches the whole process group: the learner stops when the arm says so (the
    # event), publishes and checkpoints, instead of dying mid-update.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # loads torch: in the learner process only
    from her_policy.learn.continuous import continuous_learner

    learner = continuous_learner([Path(session)], Path(out), task=task, publish_every=publish_every)
    learner.run(poll_s=0.5, until=lambda _lrn: bool(stop.is_set()))
    learner.publish_if_due(force=True)
    learner.checkpoint()


def loop_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(LoopSettings, args)
    result = run_robot_loop(settings)
    print(result)
    return 0


def run_robot_loop(settings: LoopSettings, *, report: Any = print) -> str:
    """Run the loop; returns the summary line."""
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    preset = build_train_config({"task": settings.task})
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    learner = ctx.Process(
        target=_learner_main,
        args=(str(out / "session"), str(out / "learner"), settings.task, settings.publish_every, stop),
        daemon=True,
    )
    learner.start()
    arm = ArmWorker(
        settings.task,
        out / "session",
        out / "learner" / "versions",
        seed=settings.seed,
        noise=preset.resolved_exploration_noise,
        random_eps=preset.resolved_random_eps,
        eval_session=out / "eval",
    )
    start = time.monotonic()
    rows: list[dict[str, Any]] = []
    seen_swaps = 0
    signals = StopSignals()
    try:
        signals.__enter__()
        while time.monotonic() - start < settings.minutes * 60 and not signals.requested:
            arm.run(1)  # one episode: a signal stops the loop between episodes
            if not learner.is_alive():
                raise ConfigError(f"the learner process stopped (exit {learner.exitcode}); see its output")
            if len(arm.swaps) == seen_swaps:
                continue
            seen_swaps = len(arm.swaps)
            evaluated = arm.evaluate(settings.eval_goals)
            if evaluated is None:
                continue
            row = {
                "wall_s": round(time.monotonic() - start, 1),
                "env_steps": arm.env_steps,
                "episodes": arm.episodes,
                "version": evaluated.version,
                **{k: v for k, v in asdict(evaluated).items() if k != "version"},
                "requested_success": evaluated.success,
            }
            rows.append(row)
            with (out / "curve.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            report(
                f"t={row['wall_s']:6.0f} s  env steps {arm.env_steps:7d}  {evaluated.version}: "
                f"requested-goal success {evaluated.success:.2f} [{evaluated.ci_low:.2f}, "
                f"{evaluated.ci_high:.2f}] on {evaluated.n_goals} held-out goals"
            )
            if settings.target_success is not None and evaluated.success >= settings.target_success:
                break
    finally:
        signals.__exit__()
        stop.set()
        arm.close()
        learner.join(timeout=120)
        if learner.is_alive():
            learner.terminate()
    plot_learning_curve(
        rows, out / "curve.png", title=f"her loop: {settings.task}, versions deployed while running"
    )
    best = max((r["requested_success"] for r in rows), default=float("nan"))
    return (
        f"her loop: {arm.episodes} episodes, {arm.env_steps} env steps, {len(rows)} versions "
        f"evaluated in {time.monotonic() - start:.0f} s; best requested-goal success {best:.2f}; "
        f"curve {out / 'curve.png'}"
    )
