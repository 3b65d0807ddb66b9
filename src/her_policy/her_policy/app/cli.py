"""The ``her`` command: one argparse subcommand per function.

Adding a subcommand is one decorated function; its arguments are declared in
the decorator and it receives the parsed namespace::

    @subcommand("audit", "Bags and a training log to a report.", arg("bags", nargs="+"))
    def audit(args: argparse.Namespace) -> int:
        from her_recorder.audit import run   # import heavy modules inside
        return run(args.bags)

Handlers import what they need inside, so ``her --help`` stays fast. Errors of
the HER-ROS family are printed as one line and exit with status 2.

A package that builds its own command tree registers it in :data:`PLUGINS` as
``"module:function"``; the function gets the argparse subparsers object and its
leaf parsers set ``func`` (her_recorder's ``bag`` commands work this way).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from her_goals.errors import HerError

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Arg:
    """One ``parser.add_argument(*flags, **kwargs)`` call, declared up front."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def arg(*flags: str, **kwargs: Any) -> Arg:
    return Arg(flags, kwargs)


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    handler: Handler
    args: tuple[Arg | Configure, ...]


SUBCOMMANDS: dict[str, Subcommand] = {}

PLUGINS: dict[str, str] = {
    "bag": "her_recorder.cli:add_bag_commands",
    "audit": "her_recorder.audit:add_audit_command",
    "demo": "her_policy.app.demo:add_demo_command",
    "sim": "her_policy.app.sim:add_sim_command",
}
"""Command trees added by other packages: name -> "module:function(subparsers)"."""


def subcommand(name: str, help: str, *args: Arg | Configure) -> Callable[[Handler], Handler]:
    """Register ``handler`` as ``her NAME``; each ``args`` item is an :func:`arg` or a
    function that adds arguments to the subparser."""

    def register(handler: Handler) -> Handler:
        SUBCOMMANDS[name] = Subcommand(name, help, handler, tuple(args))
        return handler

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="her",
        description="HER-ROS: goal-conditioned robot learning with Hindsight Experience Replay.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for sub in SUBCOMMANDS.values():
        # argparse %-formats help strings; a literal "95%" must not break `her --help`.
        text = sub.help.replace("%", "%%")
        sp = subparsers.add_parser(sub.name, help=text, description=text)
        for a in sub.args:
            if isinstance(a, Arg):
                sp.add_argument(*a.flags, **a.kwargs)
            else:
                a(sp)
        sp.set_defaults(handler=sub.handler)
    for name, target in PLUGINS.items():
        if name in SUBCOMMANDS:
            continue
        module_name, func_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # an optional package that is not installed
            continue
        getattr(module, func_name)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 1
    try:
        return handler(args)
    except HerError as exc:
        print(f"her {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"her {args.command}: interrupted", file=sys.stderr)
        return 130


# -- her train -----------------------------------------------------------------
def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from her_policy.learn.config import TrainConfig, add_dataclass_arguments

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
    add_dataclass_arguments(parser, TrainConfig)


@subcommand(
    "train",
    "Train a policy on a simulated goal task and write a policy artefact. "
    "Settings: defaults < preset < --config YAML < flags.",
    _train_arguments,
)
def train_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from her_goals.config import to_plain
    from her_policy.errors import PolicyError
    from her_policy.learn.config import TrainConfig, build_train_config, overrides

    flags = overrides(args, TrainConfig)
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


# -- her eval ------------------------------------------------------------------
@subcommand(
    "eval",
    "Requested-goal success of a policy artefact on held-out goals of its task "
    "(Wilson 95% interval).",
    arg("artefact", help="policy artefact directory (her train --out DIR writes DIR/policy)"),
    arg("--episodes", type=int, default=100, help="held-out goals to evaluate (default: 100)"),
    arg(
        "--env",
        default=None,
        help="Gymnasium env id (default: the one the artefact was trained on)",
    ),
    arg("--task", default=None, help="her_mujoco task instead of --env"),
    arg("--heldout-seed", type=int, default=0, help="which held-out goal set (default: 0)"),
    arg("--json", action="store_true", help="print the result as JSON"),
)
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


if __name__ == "__main__":
    sys.exit(main())
