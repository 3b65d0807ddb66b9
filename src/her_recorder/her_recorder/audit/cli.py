"""The audit's command line: ``her audit`` (via :func:`add_audit_command`) and ``python -m her_recorder.audit``.

Exit status: 0 verified, 3 unverified (0 with ``--allow-unverified``), 1 failed,
2 unreadable input (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from her_goals.errors import HerError
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


def _cmd_audit(args: argparse.Namespace) -> int:
    region = None
    if args.region is not None:
        low, high = args.region
        region = region_from({"low": list(low), "high": list(high)}, "--region")
    try:
        report = run_audit(
            [Path(p) for p in args.bags],
            out_dir=Path(args.out),
            training_log=Path(args.training_log) if args.training_log else None,
            artefact=Path(args.artefact) if args.artefact else None,
            goal_region=region,
            tolerance=args.tolerance,
            cell_size=args.cell_size,
        )
    except OSError as exc:
        raise BagFormatError(f"{exc}; check the paths and their permissions") from exc
    _print_summary(report)
    return exit_status(report.verdict, allow_unverified=args.allow_unverified)


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
    p.add_argument("bags", nargs="+", help="bag or session directories")
    p.add_argument("--out", required=True, help="directory for report.md, report.json and PNGs")
    p.add_argument(
        "--training-log", default=None, help="trainer's JSON-lines log (train_log.jsonl)"
    )
    p.add_argument("--artefact", default=None, help="policy artefact directory (names its hash)")
    p.add_argument(
        "--region",
        nargs=2,
        type=_floats,
        metavar=("LOW", "HIGH"),
        default=None,
        help="task goal region corners, e.g. 0.35,-0.15,0.05 0.65,0.15,0.35 "
        "(default: the bags' config goal_region)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="success tolerance (default: the goal space's)",
    )
    p.add_argument(
        "--cell-size",
        type=float,
        default=CELL_SIZE,
        help=f"coverage cell edge (default {CELL_SIZE})",
    )
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="exit 0 instead of 3 when the evaluation cannot be verified (older bags, no artefact)",
    )
    p.set_defaults(func=_cmd_audit)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m her_recorder.audit BAGS... --out DIR``"""
    parser = argparse.ArgumentParser(prog="python -m her_recorder.audit")
    sub = parser.add_subparsers(dest="command")
    add_audit_command(sub)
    args = parser.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except HerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
