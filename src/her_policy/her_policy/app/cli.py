"""The ``her`` command: every subcommand registered in :data:`COMMANDS`, one error handler.

A subcommand is a function ``add_X_command(subparsers) -> parser`` that adds its parser
and sets ``handler`` (``handler(args) -> exit status``); list it in :data:`COMMANDS`
(ARCHITECTURE.md, "Where to add"). Modules import what they use at the top; torch, ray and
matplotlib wait until a handler needs them (ARCHITECTURE.md, "Layering rules"), so ``her --help``
and the bag commands never load them.

Errors: a HER-ROS error (``HerError``, whose message names the input and the fix) is
printed as ``her <command>: error: <message>`` with exit status 2; anything else is a
bug, printed as one line with exit status 1. ``her --debug ...`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import typing
from collections.abc import Callable, Sequence
from typing import Any

from her_goals.errors import HerError
from her_policy.app.demo import add_demo_command
from her_policy.app.fleet import add_fleet_command
from her_policy.app.learn_command import add_learn_command
from her_policy.app.robot_loop import add_loop_command
from her_policy.app.robustness import add_robustness_command
from her_policy.app.sim import add_sim_command
from her_policy.app.train_command import add_eval_command, add_train_command
from her_recorder.audit import add_audit_command
from her_recorder.cli import add_bag_commands
from her_recorder.datasets.cli import add_export_command

Register = Callable[[Any], argparse.ArgumentParser]

COMMANDS: tuple[Register, ...] = (
    add_demo_command,
    add_train_command,
    add_eval_command,
    add_sim_command,
    add_learn_command,
    add_loop_command,
    add_fleet_command,
    add_robustness_command,
    add_audit_command,
    add_bag_commands,
    add_export_command,
)
"""Every ``her`` subcommand, in ``--help`` order."""

EXIT_USAGE_ERROR = 2
"""Exit status of a HER-ROS error (bad input), as argparse uses for bad flags."""
EXIT_BUG = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage block is one ``--help`` away)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(
            EXIT_USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="her",
        description="HER-ROS: goal-conditioned robot learning with Hindsight Experience Replay.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="print the full traceback of an error"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(
        args, "handler", None
    ) or getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 1
    command = " ".join(
        str(getattr(args, key)) for key in ("command", "bag_command") if getattr(args, key, None)
    )
    try:
        return handler(args)
    except HerError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"her {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE_ERROR
    except KeyboardInterrupt:
        print(f"her {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(
            f"her {command}: internal error: {type(exc).__name__}: {exc} "
            "(run again with her --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
