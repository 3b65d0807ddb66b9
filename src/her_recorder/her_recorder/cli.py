"""Command-line entry points of the bag layer: ``bag info``, ``bag check``, ``bag recover``.

The ``her`` CLI registers them with :func:`add_bag_commands`; ``python -m
her_recorder bag ...`` runs them standalone (``her_recorder/__main__.py``, which registers
the audit's command beside them: the bag commands do not import the audit). Every command prints a clear
message and exits non-zero on a bad bag, never a traceback:
0 = fine, 1 = episodes left out or bags needing recovery, 2 = unreadable input.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from her_goals import get_goal_space
from her_goals.checks import Count, ExistingPath
from her_goals.errors import ConfigError, HerError
from her_goals.settings_cli import add_settings_arguments, settings_from_args
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
    settings = settings_from_args(BagInfoSettings, args)
    status = 0
    for bag in find_bags(list(settings.path)):
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
    settings = settings_from_args(BagCheckSettings, args)
    result = read_episodes(
        list(settings.paths),
        goal_space=settings.goal_space,
        include_aborted=settings.include_aborted,
        log_summary=False,
    )
    report = result.report
    print(report.format(max_problems=settings.max_problems))
    return 0 if report.ok and not report.left_out.get("invalid") else 1


@_os_errors_are_bag_errors
def _cmd_recover(args: argparse.Namespace) -> int:
    settings = settings_from_args(BagRecoverSettings, args)
    for rep in recover(list(settings.path), dry_run=settings.dry_run):
        print(rep.format())
    return 0


@dataclass(frozen=True)
class BagInfoSettings:
    """``her bag info``: what a bag or session holds, and whether it was closed."""

    path: tuple[ExistingPath, ...] = field(metadata={"positional": True})
    """Bag or session directories."""


@dataclass(frozen=True)
class BagCheckSettings:
    """``her bag check``: read and validate episodes; report every problem."""

    paths: tuple[ExistingPath, ...] = field(metadata={"positional": True})
    """Bag or session directories."""
    goal_space: str | None = None
    """Goal space the bags must be in (a registered name); default: the bags' own."""
    include_aborted: bool = False
    """Count aborted episodes as usable (last step truncated)."""
    max_problems: Count = 50
    """Problems listed."""

    def __post_init__(self) -> None:
        if self.goal_space is not None:
            try:
                get_goal_space(self.goal_space)
            except HerError as exc:
                raise ConfigError(f"--goal-space: {exc}") from None


@dataclass(frozen=True)
class BagRecoverSettings:
    """``her bag recover``: repair bags left by a killed recorder (in place)."""

    path: tuple[ExistingPath, ...] = field(metadata={"positional": True})
    """Bag or session directories."""
    dry_run: bool = False
    """Say what would be done, change nothing."""


def add_bag_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bag info|check|recover`` on an argparse subparsers object.

    Each leaf parser sets ``handler`` (``args.handler(args) -> int``); call
    :func:`run` to get the HerError-to-message handling.
    """
    bag = subparsers.add_parser("bag", help="inspect, validate and recover episode bags")
    sub = bag.add_subparsers(dest="bag_command", required=True, metavar="{info,check,recover}")
    for name, settings, handler in (
        ("info", BagInfoSettings, _cmd_info),
        ("check", BagCheckSettings, _cmd_check),
        ("recover", BagRecoverSettings, _cmd_recover),
    ):
        text = (settings.__doc__ or "").split(": ", 1)[-1].rstrip(".")
        p = sub.add_parser(name, help=text, description=text)
        add_settings_arguments(p, settings)
        p.set_defaults(handler=handler)
    return bag


def run(args: argparse.Namespace) -> int:
    """Run a parsed bag command; a HerError becomes one line on stderr and exit code 2."""
    try:
        return int((getattr(args, "handler", None) or args.func)(args))
    except HerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
