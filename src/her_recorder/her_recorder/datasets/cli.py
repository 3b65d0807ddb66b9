"""``her export``: bags as a LeRobotDataset (v3.0) or a Minari dataset (``export.py``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Annotated, Any

from her_goals.checks import ExistingPath, OutputDir, Registered
from her_goals.settings_cli import add_settings_arguments, settings_from_args
from her_recorder.datasets.export import export_bags
from her_recorder.datasets.model import FORMATS

DatasetFormatName = Annotated[str, Registered("dataset format", lambda: FORMATS)]


@dataclass(frozen=True)
class ExportSettings:
    """``her export``: closed bags as a LeRobotDataset (v3.0) or a Minari dataset, with their
    provenance (bag hashes, task, goal space) and splits; `her train --bags/--demos` read it back."""

    bags: tuple[ExistingPath, ...] = field(metadata={"positional": True})
    """Bag or session directories (closed cleanly: `her bag recover` repairs an open one)."""
    format: DatasetFormatName
    """The dataset format: lerobot (parquet, meta/info.json) or minari (HDF5, data/metadata.json)."""
    out: OutputDir
    """The dataset directory to write (refused if it holds anything, unless --overwrite)."""
    overwrite: bool = False
    """Replace a dataset `her export` wrote at --out (never other files)."""


def _cmd_export(args: argparse.Namespace) -> int:
    settings = settings_from_args(ExportSettings, args)
    result = export_bags(list(settings.bags), settings.format, settings.out, overwrite=settings.overwrite)
    print(result.summary)
    print(result.format_line())
    return 0


def add_export_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her export``."""
    text = (ExportSettings.__doc__ or "").split(": ", 1)[-1].replace("\n", " ").rstrip(".")
    parser: argparse.ArgumentParser = subparsers.add_parser("export", help=text, description=text)
    add_settings_arguments(parser, ExportSettings)
    parser.set_defaults(handler=_cmd_export)
    return parser
