"""Command-line entry points of the bag layer: ``bag info``, ``bag check``, ``bag recover``.

The ``her`` CLI registers them with :func:`add_bag_commands`; ``python -m
her_recorder bag ...`` runs them standalone. Every command prints a clear
message and exits non-zero on a bad bag, never a traceback:
0 = fine, 1 = episodes left out or bags needing recovery, 2 = unreadable input.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from her_goals.errors import HerError
from her_recorder.errors import BagFormatError
from her_recorder.reader import bag_summary, find_bags, read_episodes
from her_recorder.recover import recover


def _os_errors_are_bag_errors(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """An unreadable file (permissions, I/O) is a clear BagFormatError, not a traceback,
    whichever CLI (``her`` or ``python -m her_recorder``) dispatches the command."""

    @functools.wraps(command)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except OSError as exc:
            raise BagFormatError(f"{exc}; check the path and its permissions") from exc

    return wrapper


@_os_errors_are_bag_errors
def _cmd_info(args: argparse.Namespace) -> int:
    status = 0
    for bag in find_bags(args.path):
        info = bag_summary(bag)
        print(f"{bag}: {info.state}, {info.size_bytes} bytes, {len(info.files)} file(s)")
        if info.needs_recovery:
            status = 1
            for reason in info.reasons:
                print(f"  ! {reason}")
            print(f"  ! run `her bag recover {bag}` to repair it for ROS 2 tools")
        meta = info.meta
        if meta is not None:
            gs = meta.goal_space
            print(
                f"  task: {meta.task}; goal space: {gs.name} (dim {gs.dim}, {gs.units} in "
                f"{gs.frame}, tolerance {gs.tolerance})"
            )
            print(
                f"  config hash: {meta.config_hash}; seeds: {json.dumps(meta.seeds)}; "
                f"session {meta.session[:8]} bag {meta.bag_index}"
            )
            plan = meta.plan
            if plan is not None:
                planned = f"{plan.planned_episodes} planned" if plan.planned_episodes else "open-ended"
                print(
                    f"  plan: {plan.split} ({planned}, stream seed {plan.stream_seed}, policy "
                    f"{plan.policy[:16] or 'unnamed'})"
                )
            else:
                print(f"  plan: {meta.plan_error or 'none (written before plans were recorded)'}")
            if meta.dropped_messages:
                print(f"  ! recorder dropped {meta.dropped_messages} message(s)")
            if meta.recovered:
                print(
                    f"  recovered: incomplete episodes {meta.recovered.get('incomplete_episodes')}"
                )
        else:
            print("  no HER metadata (not written by her_recorder)")
        ep = info.episodes
        if ep:
            print(
                f"  episodes: {ep.get('ended', 0)} ended, {ep.get('aborted', 0)} aborted, "
                f"{ep.get('discarded', 0)} discarded, {len(ep.get('incomplete') or [])} "
                f"incomplete; ids {ep.get('first_id')}..{ep.get('last_id')}"
            )
        for topic, (msgtype, count) in sorted(info.topics.items()):
            print(f"  {topic:<22} {msgtype:<34} {count}")
    return status


@_os_errors_are_bag_errors
def _cmd_check(args: argparse.Namespace) -> int:
    result = read_episodes(
        args.paths,
        goal_space=args.goal_space,
        include_aborted=args.include_aborted,
        log_summary=False,
    )
    report = result.report
    print(report.format(max_problems=args.max_problems))
    return 0 if report.ok and not report.left_out.get("invalid") else 1


@_os_errors_are_bag_errors
def _cmd_recover(args: argparse.Namespace) -> int:
    for rep in recover(args.path, dry_run=args.dry_run):
        print(rep.format())
    return 0


def add_bag_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bag info|check|recover`` on an argparse subparsers object.

    Each leaf parser sets ``func`` (``args.func(args) -> int``); call
    :func:`run` to get the HerError-to-message handling.
    """
    bag = subparsers.add_parser("bag", help="inspect, validate and recover episode bags")
    sub = bag.add_subparsers(dest="bag_command", required=True, metavar="{info,check,recover}")

    p = sub.add_parser("info", help="what a bag or session holds, and whether it was closed")
    p.add_argument("path", nargs="+", help="bag or session directory")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("check", help="read and validate episodes; report every problem")
    p.add_argument("paths", nargs="+", help="bag or session directories")
    p.add_argument("--goal-space", default=None, help="goal space the bags must be in")
    p.add_argument(
        "--include-aborted",
        action="store_true",
        help="count aborted episodes as usable (last step truncated)",
    )
    p.add_argument("--max-problems", type=int, default=50, help="problems listed (default 50)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("recover", help="repair bags left by a killed recorder (in place)")
    p.add_argument("path", nargs="+", help="bag or session directory")
    p.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    p.set_defaults(func=_cmd_recover)
    return bag


def run(args: argparse.Namespace) -> int:
    """Run a parsed bag command; a HerError becomes one line on stderr and exit code 2."""
    try:
        return int(args.func(args))
    except HerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m her_recorder {bag {info,check,recover},audit} ...``"""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m her_recorder")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bag_commands(sub)
    from her_recorder.audit import add_audit_command  # matplotlib only when needed

    add_audit_command(sub)
    return run(parser.parse_args(argv))
