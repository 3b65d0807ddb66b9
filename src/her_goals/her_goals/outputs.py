"""Output directories of the commands outside training: never replaced silently, never half-written.

Two rules every report writer keeps (``her audit --out``, ``her robustness --out``):

* **An existing output is not replaced silently.** :func:`refuse_existing` raises a
  :class:`~her_goals.errors.ConfigError` naming the files already there and the two ways out
  (``--overwrite``, or a new directory) before any work starts.
* **A partial output never replaces a good one.** :class:`StagedOutput` writes every file into
  a hidden staging directory beside the final one (the same filesystem, so a rename is atomic),
  then renames each into place, the file that says "this report is complete" (``report.md``)
  last. A full disk or an unwritable directory while writing is one
  :class:`~her_goals.errors.StorageError` naming the file and the free space, the staging
  directory is removed, and the previous files stay as they were.

Why not ``tempfile.TemporaryDirectory`` in ``/tmp``: a rename across filesystems is a copy,
which can itself fill the disk half-way; the staging directory lives inside the output.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

from her_goals.errors import ConfigError, StorageError, storage_error


def refuse_existing(out: Path, names: Iterable[str], *, overwrite: bool, what: str) -> None:
    """Refuse to write into ``out`` when it already holds any of ``names`` (unless ``overwrite``)."""
    if overwrite:
        return
    there = [n for n in names if (Path(out) / n).exists()]
    if there:
        raise ConfigError(
            f"{out} already holds {what} ({', '.join(there)}); pass --overwrite to replace it, "
            "or choose another --out"
        )


class StagedOutput:
    """Files written into a staging directory, then renamed into ``out`` (see the module doc).

    Usage::

        with StagedOutput(out, last=("report.md",)) as staged:
            (staged.dir / "report.json").write_text(...)
            (staged.dir / "report.md").write_text(...)
        # every file is in out now, report.md renamed last; staged.final("report.md") is its path
    """

    def __init__(self, out: Path, *, last: Sequence[str] = ()) -> None:
        self.out = Path(out)
        self.last = tuple(last)
        self.dir = self.out / f".staging-{uuid.uuid4().hex[:12]}"

    def final(self, name: str) -> Path:
        """Where the staged file ``name`` ends up."""
        return self.out / name

    def __enter__(self) -> StagedOutput:
        try:
            self.dir.mkdir(parents=True)
        except OSError as exc:
            raise storage_error(exc.filename or self.dir, exc, kept=self._kept()) from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            if exc_type is None:
                self._commit()
            elif isinstance(exc_val, OSError) and not isinstance(exc_val, StorageError):
                raise storage_error(exc_val.filename or self.dir, exc_val, kept=self._kept()) from None
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def _commit(self) -> None:
        names = sorted(p.name for p in self.dir.iterdir())
        order = [n for n in names if n not in self.last] + [n for n in self.last if n in names]
        for name in order:
            try:
                os.replace(self.dir / name, self.out / name)
            except OSError as exc:
                raise storage_error(self.out / name, exc, kept=self._kept()) from None

    def _kept(self) -> str:
        previous = [n for n in self.last if (self.out / n).exists()]
        if previous:
            return f"the previous {', '.join(previous)} in {self.out} {'are' if len(previous) > 1 else 'is'} unchanged"
        return f"nothing was written to {self.out}"
