"""``her train`` and ``her eval``: learn a policy artefact, and measure it on held-out goals."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_train_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her train`` (every TrainConfig field is a typed flag)."""
    from her_goals.settings_cli import add_settings_arguments
    from her_policy.learn.config import TrainConfig

    text = (
        "Train a policy on a simulated goal task and write a policy artefact. "
        "Settings: defaults < preset < --config YAML < flags."
    )
    parser: argparse.ArgumentParser = subparsers.add_parser("train", help=text, description=text)
    parser.add_argument(
        "--config",
        metavar="YAML",
        default=None,
        help="YAML file of TrainConfig fields (flags override it; unknown keys are rejected)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the merged settings as YAML and exit without training",
    )
    parser.add_argument(
        "--bags",
        nargs="+",
        metavar="PATH",
        default=None,
        help="train offline from these episode bags (or session directories) only; "
        "the task and goal space come from the bags",
    )
    parser.add_argument(
        "--updates",
        type=int,
        default=None,
        help="with --bags: gradient updates (default max(2000, 2 x updates-per-step x steps))",
    )
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
    parser.add_argument(
        "artefact", help="policy artefact directory (her train --out DIR writes DIR/policy)"
    )
    parser.add_argument(
        "--episodes", type=int, default=100, help="held-out goals to evaluate (default: 100)"
    )
    parser.add_argument(
        "--env", default=None, help="Gymnasium env id (default: the one the artefact was trained on)"
    )
    parser.add_argument("--task", default=None, help="registered task instead of --env")
    parser.add_argument(
        "--heldout-seed", type=int, default=0, help="which held-out goal set (default: 0)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=eval_command)
    return parser


def train_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from her_goals.config import to_plain
    from her_goals.settings_cli import given_settings
    from her_policy.errors import PolicyError
    from her_policy.learn.config import TrainConfig, build_train_config

    flags = given_settings(args, TrainConfig)
    if args.bags and flags.get("task") is None and flags.get("env") is None:
        from her_recorder.reader import bag_summary, find_bags

        found = find_bags([Path(p) for p in args.bags])
        meta = bag_summary(found[0]).meta if found else None
        if meta is None:
            raise PolicyError(f"{args.bags[0]} holds no HER-ROS episode bag; see `her bag info`")
        flags["task"] = meta.task
    config = build_train_config(flags, yaml_path=args.config)
    if args.print_config:
        print(yaml.safe_dump(to_plain(config), sort_keys=False), end="")
        return 0
    if args.bags:
        from her_policy.learn.offline import train_from_bags

        result = train_from_bags(args.bags, config, n_updates=args.updates)
    else:
        from her_policy.learn.train import train

        result = train(config)
    print(result.summary())
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from her_policy.artefact.store import load_artefact
    from her_policy.errors import PolicyError
    from her_policy.learn.envs import EnvSource
    from her_policy.learn.evaluate import evaluate

    artefact = load_artefact(args.artefact)
    env, task = args.env, args.task
    if env is None and task is None:
        trained = artefact.provenance.get("config", {})
        env, task = trained.get("env"), trained.get("task")
        if env is None and task is None:
            raise PolicyError("the artefact does not say its env; pass --env or --task")
    source = EnvSource(env_id=env, task=None if env is not None else task)
    result = evaluate(artefact, source, args.episodes, heldout_seed=args.heldout_seed)
    if args.json:
        print(
            json.dumps(
                {**result.as_dict(), "artefact_hash": artefact.artefact_hash, "env": source.name}
            )
        )
    else:
        print(f"{source.name}: {result} [artefact {artefact.artefact_hash[:12]}]")
    return 0
