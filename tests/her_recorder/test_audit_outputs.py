"""``her audit --out``: an existing report is never replaced silently, and a report that cannot be
written whole (a full disk) never replaces a good one."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from her_recorder_testlib import Recorded

from her_goals.errors import StorageError
from her_recorder.audit import main, run_audit


def test_an_existing_report_is_refused_without_overwrite(
    session: tuple[Path, Recorded], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bags, _ = session
    out = tmp_path / "report"
    assert main([str(bags), "--out", str(out), "--allow-unverified"]) == 0
    first = (out / "report.md").read_text()
    capsys.readouterr()
    assert main([str(bags), "--out", str(out), "--allow-unverified"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err and "report.md" in err
    assert (out / "report.md").read_text() == first
    assert main([str(bags), "--out", str(out), "--allow-unverified", "--overwrite"]) == 0
    assert not list(out.glob(".staging-*"))


def test_a_full_disk_while_writing_leaves_the_previous_report(
    session: tuple[Path, Recorded], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bags, _ = session
    out = tmp_path / "report"
    run_audit([bags], out_dir=out, plots=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = Path.write_text

    def full(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if self.name == "report.md":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(StorageError) as err:
        run_audit([bags], out_dir=out, plots=False)
    message = str(err.value)
    assert "the disk is full" in message and "MiB free" in message and "report.md" in message
    assert f"the previous report.json, report.md in {out} are unchanged" in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing half-written, no staging left


def test_an_unwritable_out_is_one_line(session: tuple[Path, Recorded], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    bags, _ = session
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from her_policy.app import cli

    assert cli.main(["audit", str(bags), "--out", str(blocker / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "Traceback" not in err
