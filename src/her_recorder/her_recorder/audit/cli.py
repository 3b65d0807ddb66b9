"""The audit's command line: ``her audit`` (via :func:`add_audit_command`) and ``python -m her_recorder.audit``.

Exit status: 0 verified, 3 unverified (0 with ``--allow-unverified``), 1 failed,
2 unreadable input (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from her_goals.checks import ExistingFile, ExistingPath, OutputDir, PositiveFloat
from her_goals.errors import ConfigError, HerError, StorageError
from her_goals.outputs import refuse_existing
from her_goals.settings_cli import add_settings_arguments, settings_from_args
from her_recorder.audit.inputs import region_from
from her_recorder.audit.metrics import CELL_SIZE
from her_recorder.audit.model import AuditReport
from her_recorder.audit.report import fmt
from her_recorder.audit.run import run_audit
from her_recorder.errors import BagFormatError

EXIT_CODES = {"verified": 0, "failed": 1, "unverified": 3}
"""``her audit``'s exit status per verdict (2: unreadable input)."""


def exit_status(verdict: str, *, allow_unverified: bool = False) -> int:
    """0 verified, 1 failed, 3 unverified (0 when ``allow_unverified``)."""
    if verdict == "unverified" and allow_unverified:
        return 0
    return EXIT_CODES.get(verdict, 1)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.35,-0.15,0.05, got {text!r}"
        ) from None


REPORT_FILES = ("report.md", "report.json")
"""What makes a directory hold a report (``--overwrite`` replaces it)."""


def _cmd_audit(args: argparse.Namespace) -> int:
    settings = settings_from_args(AuditSettings, args)
    refuse_existing(Path(settings.out), REPORT_FILES, overwrite=settings.overwrite, what="an audit report")
    region = None
    corners = settings.corners()
    if corners is not None:
        region = region_from({"low": list(corners[0]), "high": list(corners[1])}, "--region")
    try:
        report = run_audit(
            list(settings.bags),
            out_dir=Path(settings.out),
            training_log=settings.training_log,
            artefact=settings.artefact,
            goal_region=region,
            tolerance=settings.tolerance,
            cell_size=settings.cell_size,
        )
    except StorageError:
        raise
    except OSError as exc:
        raise BagFormatError(f"{exc}; check the paths and their permissions") from exc
    _print_summary(report)
    return exit_status(report.verdict, allow_unverified=settings.allow_unverified)


def _print_summary(report: AuditReport) -> None:
    req = report.requested_success
    print(f"verdict: {report.verdict}")
    print(report.headline())
    for f in report.findings:
        print(f"  {f.line()}")
    print(f"requested-goal success (all complete episodes, any split): {req['all'].text()}")
    print(
        f"hindsight episode success (NOT a result): {fmt(report.hindsight['episode_success'])}; "
        f"training hindsight ratio: {fmt(report.hindsight['hindsight_ratio_training'])}"
    )
    print(
        f"coverage: {fmt(report.coverage['desired_cell_fraction'])} of desired-goal cells; "
        f"safety cost {fmt(report.safety['total_cost'])}"
    )
    print(report.reward_recompute["status_line"])
    labelled = ", ".join(f"{k} {v}" for k, v in report.failures.items() if v)
    print(f"failures: {labelled or 'none'}")
    print(f"report: {report.files['report.md']}")


@dataclass(frozen=True)
class AuditSettings:
    """``her audit``: verify the evaluation in bags and report what they say about a policy."""

    bags: tuple[ExistingPath, ...] = field(metadata={"positional": True})
    """Bag or session directories."""
    out: OutputDir
    """Directory for report.md, report.json and the plots."""
    training_log: ExistingFile | None = None
    """The trainer's JSON-lines log (train_log.jsonl)."""
    artefact: ExistingPath | None = None
    """Policy artefact directory: the audit checks the evaluation was recorded by it."""
    region: tuple[str, ...] | None = None
    """Task goal region corners LOW HIGH, each comma-separated (0.35,-0.15,0.05 0.65,0.15,0.35)
    or all values in a row; default: the bags' plan or config."""
    tolerance: PositiveFloat | None = None
    """Success tolerance (default: the goal space's; overriding it leaves the verdict unverified)."""
    cell_size: PositiveFloat = CELL_SIZE
    """Coverage cell edge, in the goal space's units."""
    allow_unverified: bool = False
    """Exit 0 instead of 3 when the evaluation cannot be verified (older bags, no artefact)."""
    overwrite: bool = False
    """Replace a report already in --out (refused by default: a report others cite is never
    replaced silently). The new report is written beside it and renamed into place whole."""

    def corners(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """The region's (low, high) corners, or None when not given."""
        if self.region is None:
            return None
        values = tuple(v for text in self.region for v in _floats(text))
        half = len(values) // 2
        return values[:half], values[half:]

    def __post_init__(self) -> None:
        if self.region is None:
            return
        try:
            values = [v for text in self.region for v in _floats(text)]
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--region: {exc}") from None
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"--region {' '.join(self.region)}: every value must be finite")
        if len(values) < 2 or len(values) % 2:
            raise ConfigError(
                f"--region {' '.join(self.region)}: give the low corner then the high "
                "corner, the same number of values each (e.g. 0.35 -0.15 0.05 0.65 0.15 0.35)"
            )


def add_audit_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``audit BAGS... --out DIR [--training-log F] [--artefact A]`` on argparse subparsers.

    Exit status: 0 verified, 3 unverified (0 with --allow-unverified), 1 failed, 2 unreadable input.
    """
    p = subparsers.add_parser(
        "audit",
        help="bags (and a training log) to a report with plots",
        description="Audit recorded episodes: verify the evaluation against what its bags "
        "promise (verdict verified | unverified | failed, with findings), requested-goal success "
        "beside hindsight figures, coverage, safety cost, reward recompute and a failure label "
        "per failed episode. Exit 0 verified, 3 unverified (0 with --allow-unverified), "
        "1 failed, 2 unreadable input.",
    )
    add_settings_arguments(p, AuditSettings)
    p.set_defaults(handler=_cmd_audit)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m her_recorder.audit BAGS... --out DIR``"""
    parser = argparse.ArgumentParser(prog="python -m her_recorder.audit")
    sub = parser.add_subparsers(dest="command")
    add_audit_command(sub)
    args = parser.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.handler(args))
    except HerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
