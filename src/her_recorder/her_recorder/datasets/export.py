"""``her export``: closed bags to a LeRobotDataset (v3.0) or a Minari dataset, with provenance.

Everything is checked before any work: the format (and that its library is installed), every
bag closed cleanly (an open or torn bag: ``her bag recover`` first), the output directory (an
existing one is refused without ``--overwrite``; ``--overwrite`` replaces only a dataset that
``her export`` wrote, never the bags or other files), one task. The reader then validates every
episode (invalid and incomplete ones are left out, as for training, and the summary line says
so). The dataset is written into a staging directory beside ``--out`` and renamed into place
at the end: a full disk or a crash never leaves half a dataset over a good one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from her_goals.errors import storage_error
from her_goals.outputs import refuse_existing
from her_goals.provenance import sha256_file
from her_recorder.datasets.formats import detect_format, format_module
from her_recorder.datasets.model import DatasetError, Provenance, grouped_by_split
from her_recorder.reader import find_bags, inspect_bag, read_episodes


@dataclass(frozen=True)
class ExportResult:
    """What ``her export`` wrote."""

    out: Path
    format: str
    episodes: int
    steps: int
    splits: dict[str, str]
    summary: str

    def format_line(self) -> str:
        splits = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        return (
            f"wrote {self.format} dataset {self.out}: {self.episodes} episodes ({self.steps} steps); "
            f"episode ranges: {splits}"
        )


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def check_out(out: Path, bags: Sequence[Path], *, overwrite: bool) -> None:
    """Refuse an ``--out`` that would replace the bags, other files or, without ``--overwrite``,
    anything at all."""
    out = Path(out).resolve()
    for bag in bags:
        bag = Path(bag).resolve()
        if _inside(out, bag) or _inside(bag, out):
            raise DatasetError(
                f"--out {out} is, holds or lies inside {bag}, which is being exported; "
                "choose a directory outside the bags"
            )
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file; choose a directory for the dataset")
    there = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not there:
        return
    refuse_existing(out, there, overwrite=overwrite, what="files")
    if detect_format(out) is None:
        raise DatasetError(
            f"--out {out} holds files that are not a dataset `her export` wrote "
            f"({', '.join(there[:3])}{' ...' if len(there) > 3 else ''}); --overwrite replaces only "
            "an exported dataset: choose another --out"
        )


def export_bags(paths: Sequence[str | Path], fmt: str, out: str | Path, *, overwrite: bool = False) -> ExportResult:
    """Export the complete episodes of ``paths`` as ``fmt`` into ``out`` (see the module doc)."""
    module = format_module(fmt)
    out = Path(out)
    bags = find_bags([Path(p) for p in paths])
    tasks: dict[str, Path] = {}
    for bag in bags:
        info = inspect_bag(bag)
        if info.needs_recovery:
            raise DatasetError(
                f"{bag} was not closed cleanly ({'; '.join(info.reasons)}): run `her bag recover {bag}` "
                "first, then export it"
            )
        if info.meta is not None:
            tasks.setdefault(info.meta.task, bag)
    _one_task(tasks)
    check_out(out, [*bags, *(Path(p) for p in paths)], overwrite=overwrite)
    result = read_episodes(bags, log_summary=False)
    summary = result.report.summary_line()
    if not result.episodes:
        raise DatasetError(f"no complete episode could be read from the bags ({summary}); run `her bag check` on them")
    _one_task({e.task: e.bag for e in reversed(result.episodes)})
    episodes, splits = grouped_by_split(result.episodes)
    first = episodes[0]
    prov = Provenance(
        task=first.task,
        goal_space=first.goal_space,
        bags=[{"path": str(b), "files": {p.name: sha256_file(p) for p in sorted(b.glob("*.mcap"))}} for b in bags],
        splits=splits,
        episodes=len(episodes),
        steps=sum(len(e) for e in episodes),
        reader_summary=summary,
    )
    _write_staged(out, lambda staging: module.write(staging, episodes, prov, final=out))
    return ExportResult(out, fmt, prov.episodes, prov.steps, splits, summary)


def _one_task(tasks: dict[str, Path]) -> None:
    if len(tasks) > 1:
        named = ", ".join(f"{task!r} ({bag})" for task, bag in tasks.items())
        raise DatasetError(f"the bags hold episodes of {len(tasks)} tasks: {named}; export the bags of one task at a time")


def _write_staged(out: Path, write: Callable[[Path], None]) -> None:
    """``write(staging)`` into a directory beside ``out``, then renamed into place; a replaced
    dataset is moved aside first and removed only once the new one is in place."""
    parent = out.resolve().parent
    tag = uuid.uuid4().hex[:12]
    staging = parent / f".{out.name}.staging-{tag}"
    old = parent / f".{out.name}.replaced-{tag}"
    try:
        staging.mkdir(parents=True)
        write(staging)
        if out.exists() and any(out.iterdir()):
            os.replace(out, old)
        elif out.exists():
            out.rmdir()
        os.replace(staging, out)
    except OSError as exc:
        if old.exists() and not out.exists():
            os.replace(old, out)
        kept = "the previous dataset is unchanged" if out.exists() else f"nothing was written to {out}"
        raise storage_error(exc.filename or staging, exc, kept=kept) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
