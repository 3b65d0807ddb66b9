"""``her train`` and ``her eval``: learn a policy artefact, and measure it on held-out goals."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import her_mujoco
from her_goals.checks import Count, ExistingFile, ExistingPath, NonNegativeInt, OutputDir
from her_goals.config import to_plain
from her_goals.errors import ConfigError
from her_goals.settings_cli import add_settings_arguments, given_settings, settings_from_args
from her_goals.stats import wilson_interval
from her_goals.tasks import TaskName
from her_policy.app.sim import record_evaluation
from her_policy.artefact.store import load_artefact
from her_policy.errors import PolicyError
from her_policy.learn.config import TrainConfig, build_train_config
from her_policy.learn.envs import EnvSource, goal_space_of, layout_of
from her_policy.learn.evaluate import evaluate
from her_policy.learn.rundir import CHECKPOINT_DIR, prepare_out
from her_recorder.datasets import input_task


@dataclass(frozen=True)
class TrainCommandSettings:
    """What ``her train`` takes beside the training settings (TrainConfig)."""

    config: ExistingFile | None = None
    """YAML file of TrainConfig fields (flags override it; unknown keys are rejected)."""
    print_config: bool = False
    """Print the merged settings as YAML and exit without training."""
    bags: tuple[ExistingPath, ...] | None = None
    """Train offline from these episode bags (or session directories) only; the task and goal
    space come from the bags."""
    updates: Count | None = None
    """With --bags: gradient updates (default: offline-updates, the offline preset's)."""
    demos: tuple[ExistingPath, ...] | None = None
    """Train online with these demonstration bags (or session directories) in the buffer:
    demo-share of every batch is drawn from them (checked against the task like any bags)."""
    allow_eval_episodes: bool = False
    """Let --bags / --demos hold held-out evaluation episodes (refused by default: evaluation
    goals must not train a policy evaluated on them); recorded in the artefact."""
    overwrite: bool = False
    """Start over in --out, replacing the run there (its policy, checkpoint and training log).
    Without it, --out holding an interrupted run resumes it, and one holding a finished run is
    refused."""

    def __post_init__(self) -> None:
        if self.bags and self.demos:
            raise ConfigError(
                "--bags trains offline from bags alone; --demos adds demonstrations to online "
                "training. Give every bag to --bags, or train online with --task and --demos"
            )


@dataclass(frozen=True)
class EvalSettings:
    """``her eval``: requested-goal success of a policy artefact on held-out goals."""

    artefact: ExistingPath = field(metadata={"positional": True})
    """Policy artefact directory (her train --out DIR writes DIR/policy)."""
    episodes: Count = 100
    """Held-out goals to evaluate."""
    env: str | None = None
    """Gymnasium env id (default: the one the artefact was trained on)."""
    task: TaskName | None = None
    """Registered task instead of --env."""
    heldout_seed: NonNegativeInt = 0
    """Which held-out goal set."""
    json: bool = False
    """Print the result as JSON."""
    record: OutputDir | None = None
    """Evaluate through action limits and the safety monitor on the MuJoCo arm task instead, and
    record the episodes with their evaluation plan to this session directory (her audit DIR
    --artefact ARTEFACT verifies it)."""

    def __post_init__(self) -> None:
        if self.record is not None and self.env is not None:
            raise ConfigError("--record runs the her_mujoco arm tasks through the safety loop; give --task, not --env")
        if self.task is not None and self.env is not None:
            raise ConfigError(f"give --task or --env, not both (got {self.task!r} and {self.env!r})")


def add_train_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her train`` (every TrainConfig field is a typed flag)."""
    text = (
        "Train a policy on a simulated goal task and write a policy artefact. "
        "Settings: defaults < preset < --config YAML < flags."
    )
    parser: argparse.ArgumentParser = subparsers.add_parser("train", help=text, description=text)
    add_settings_arguments(parser, TrainCommandSettings)
    add_settings_arguments(parser, TrainConfig)
    parser.set_defaults(handler=train_command)
    return parser


def add_eval_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her eval``."""
    text = (
        "Requested-goal success of a policy artefact on held-out goals of its task "
        "(Wilson 95%% interval)."
    )
    parser: argparse.ArgumentParser = subparsers.add_parser("eval", help=text, description=text)
    add_settings_arguments(parser, EvalSettings)
    parser.set_defaults(handler=eval_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    command = settings_from_args(TrainCommandSettings, args)
    flags = given_settings(args, TrainConfig)
    if command.bags:
        task = input_task(command.bags[0])  # a bag's metadata or an exported dataset's
        if task is None:
            raise PolicyError(f"{command.bags[0]} holds no HER-ROS episode bag; see `her bag info`")
        if flags.get("env") is not None:
            raise PolicyError("--env and --bags: train from bags alone (the bags say their task)")
        if flags.get("task") not in (None, task):
            raise PolicyError(
                f"--task {flags['task']}: the bags hold task {task!r}; drop --task "
                "(with --bags the task comes from the bags)"
            )
        flags["task"] = task
    config = build_train_config(flags, yaml_path=command.config, offline=bool(command.bags), demos=bool(command.demos))
    if command.print_config:
        print(yaml.safe_dump(to_plain(config), sort_keys=False), end="")
        return 0
    resume = prepare_out(config, overwrite=command.overwrite)
    if command.bags:
        from her_policy.learn.offline import train_from_bags  # loads torch: only when training

        result = train_from_bags(
            list(command.bags), config, n_updates=command.updates,
            allow_eval_episodes=command.allow_eval_episodes, resume=resume,
        )  # fmt: skip
    elif command.demos:
        result = _train_with_demos(config, list(command.demos), command.allow_eval_episodes, resume)
    else:
        from her_policy.learn.train import train  # loads torch: only when training

        result = train(config, resume=resume)
    if result.stopped_because == "interrupted":
        print(
            f"interrupted at {result.env_steps} env steps, {result.updates} updates: checkpoint in "
            f"{Path(config.out or '.') / CHECKPOINT_DIR} (run the same command to resume); "
            + (f"best-so-far policy in {result.artefact}" if result.artefact else "no --out, nothing written")
        )
        return 130
    print(result.summary())
    return 0


def _train_with_demos(config: Any, demos: list[Path], allow_eval_episodes: bool, resume: bool) -> Any:
    """``her train --task T --demos BAGS``: online training with demonstrations in the buffer."""
    from her_policy.learn.offline import load_demos  # loads torch: only when training
    from her_policy.learn.train import train  # loads torch: only when training

    if config.task is None:
        raise PolicyError("--demos needs --task: demonstrations are bags of one of our arm tasks")
    env = EnvSource(task=config.task)()
    space, layout = goal_space_of(env), layout_of(env)
    env.close()
    data = load_demos(demos, task=config.task, goal_space=space, layout=layout,
                      allow_eval_episodes=allow_eval_episodes)  # fmt: skip
    print(f"demonstrations: {data.summary}", file=sys.stderr)
    return train(config, demos=data.episodes, demo_hashes=data.hashes("demo"), resume=resume)


def eval_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(EvalSettings, args)
    artefact = load_artefact(settings.artefact)
    env, task = settings.env, settings.task
    if env is None and task is None:
        trained = artefact.provenance.get("config", {})
        env, task = trained.get("env"), trained.get("task")
        if env is None and task is None:
            raise PolicyError("the artefact does not say its env; pass --env or --task")
    if settings.record is not None:
        return _recorded_eval(settings, artefact, task, env)
    source = EnvSource(env_id=env, task=None if env is not None else task)
    result = evaluate(artefact, source, settings.episodes, heldout_seed=settings.heldout_seed)
    if settings.json:
        print(
            json.dumps(
                {**result.as_dict(), "artefact_hash": artefact.artefact_hash, "env": source.name}
            )
        )
    else:
        print(f"{source.name}: {result} [artefact {artefact.artefact_hash[:12]}]")
    return 0


def _recorded_eval(settings: EvalSettings, artefact: Any, task: str | None, env: str | None) -> int:
    """``her eval --record DIR``: through the safety loop, recorded with its evaluation plan."""
    if task is None:
        raise PolicyError(
            f"--record evaluates on the MuJoCo arm tasks; the artefact was trained on {env!r}: give --task"
        )
    out = Path(settings.record) if settings.record is not None else Path()
    if any(out.glob("bag_*")):
        raise PolicyError(f"{out} already holds bags; --record needs a new session directory")
    results, plan = record_evaluation(
        her_mujoco.make_task(task), Path(settings.artefact), out, episodes=settings.episodes,
        stream_seed=settings.heldout_seed, config={"split": "eval", "artefact": str(settings.artefact)},
        progress=not settings.json,
    )  # fmt: skip
    wins = sum(bool(r.success) for r in results)
    low, high = wilson_interval(wins, len(results))
    if settings.json:
        print(json.dumps({"requested_success": wins / len(results), "ci_low": low, "ci_high": high,
                          "n_episodes": len(results), "artefact_hash": plan.policy, "task": task,
                          "bags": str(out)}))  # fmt: skip
    else:
        print(
            f"task:{task} through limits and the safety monitor: requested-goal success "
            f"{wins / len(results):.3f} [{low:.3f}, {high:.3f}] (Wilson 95%, n={len(results)}) "
            f"[artefact {plan.policy[:12]}]\nrecorded to {out}; verify: her audit {out} --artefact {settings.artefact} --out REPORT"
        )
    return 0
