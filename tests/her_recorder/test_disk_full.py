"""A full disk while recording: one StorageError naming the path, the free space and what was
kept; the bag recoverable with ``her bag recover``; every completed episode readable after it.

Two ways to fill the disk: an injected writer error (the MCAP file's ``write`` raises ENOSPC
once a byte budget is spent, as the kernel does when the filesystem is full), and, where the
test may mount one (root), a real 2 MiB tmpfs.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from her_recorder_testlib import SPACE

from her_goals.errors import HerError, StorageError
from her_recorder import EpisodeRecorder
from her_recorder.reader import bag_summary, find_bags, read_episodes
from her_recorder.recover import recover


class FillingFile:
    """A file whose ``write`` raises ENOSPC once ``budget`` bytes are written (nothing of
    the failing write reaches the file), like a filesystem that fills up."""

    def __init__(self, real: Any, budget: list[int]) -> None:
        self._real, self._budget = real, budget

    def write(self, data: Any) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self._budget[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= n
        return int(self._real.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def disk_budget(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every MCAP file opened from now on writes at most ``budget[0]`` more bytes (shared)."""
    budget = [10**12]
    real_open = Path.open

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = real_open(self, mode, *args, **kwargs)
        return FillingFile(fh, budget) if self.suffix == ".mcap" and "x" in mode else fh

    monkeypatch.setattr(Path, "open", open_)
    return budget


def record(rec: EpisodeRecorder, n_episodes: int, n_steps: int = 20, seed: int = 0,
           ended: list[int] | None = None) -> int:  # fmt: skip
    """Record up to ``n_episodes`` episodes; returns how many ended (also counted in ``ended``,
    which an error leaves counted)."""
    rng = np.random.default_rng(seed)
    ended = ended if ended is not None else [0]
    for _ in range(n_episodes):
        rec.start_episode(rng.uniform(-0.5, 0.5, 3))
        for _ in range(n_steps):
            rec.record_step(
                observation=rng.normal(size=64), next_observation=rng.normal(size=64),
                action_raw=rng.uniform(-1, 1, 4), achieved_goal=rng.uniform(-0.5, 0.5, 3),
                next_achieved_goal=rng.uniform(-0.5, 0.5, 3),
            )  # fmt: skip
        rec.end_episode()
        ended[0] += 1
    return ended[0]


def episodes_after_recover(session: Path) -> list[Any]:
    recover([session])
    for bag in find_bags([session]):
        assert not bag_summary(bag).needs_recovery, bag
    return read_episodes(session, log_summary=False).episodes


@pytest.mark.parametrize("queue_size", [0, 1000])
def test_a_full_disk_is_one_clear_error_and_every_completed_episode_survives(
    tmp_path: Path, disk_budget: list[int], queue_size: int
) -> None:
    session = tmp_path / "session"
    counted = [0]
    with pytest.raises(StorageError) as err:
        with EpisodeRecorder(session, goal_space=SPACE, task="reach", queue_size=queue_size) as rec:
            record(rec, 3, ended=counted)  # ~10 kB each: these fit
            disk_budget[0] = 50_000  # the disk fills during the next episodes
            record(rec, 10, seed=1, ended=counted)
    ended = counted[0]
    message = str(err.value)
    assert isinstance(err.value, HerError) and isinstance(err.value, OSError)
    assert err.value.errno == errno.ENOSPC
    assert "bag_0000" in message and "the disk is full" in message and "MiB free" in message
    assert 3 <= ended < 13
    assert f"the {ended} completed episodes of this run are in {session / 'bag_0000'}" in message
    assert f"her bag recover {session}" in message
    assert "\n" not in message
    disk_budget[0] = 10**12  # space freed: the bag can be repaired
    read = episodes_after_recover(session)
    assert len(read) == ended and all(e.status == "complete" and e.n_steps == 20 for e in read)


def test_every_call_after_the_failure_raises_the_same_error(tmp_path: Path, disk_budget: list[int]) -> None:
    rec = EpisodeRecorder(tmp_path / "s", goal_space=SPACE, task="reach")
    rec.open()
    record(rec, 1)
    disk_budget[0] = 0
    with pytest.raises(StorageError) as first:
        record(rec, 5)
    with pytest.raises(StorageError) as again:
        rec.start_episode(np.zeros(3))
    assert str(again.value) == str(first.value)
    with pytest.raises(StorageError):
        rec.close()  # closes what it can; the error is said once more, not swallowed
    rec.close()  # already closed: nothing more


def test_an_unwritable_session_directory_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError) as err:
        EpisodeRecorder(blocker / "session", goal_space=SPACE, task="reach").open()
    assert str(blocker) in str(err.value) and "nothing was recorded" in str(err.value)


def test_the_summary_that_does_not_fit_on_close_leaves_a_recoverable_bag(
    tmp_path: Path, disk_budget: list[int]
) -> None:
    session = tmp_path / "s"
    with pytest.raises(StorageError) as err:
        with EpisodeRecorder(session, goal_space=SPACE, task="reach") as rec:
            record(rec, 2)
            disk_budget[0] = 0  # the episodes are on disk; the summary written on close is not
    assert "the 2 completed episodes" in str(err.value)
    disk_budget[0] = 10**12
    assert len(episodes_after_recover(session)) == 2


# -- a real full filesystem ---------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs the right to mount: skipped otherwise)."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_real_full_tmpfs(small_tmpfs: Path, tmp_path: Path) -> None:
    session = small_tmpfs / "session"
    counted = [0]
    with pytest.raises(StorageError) as err:
        with EpisodeRecorder(session, goal_space=SPACE, task="reach") as rec:
            record(rec, 2000, ended=counted)
    ended = counted[0]
    message = str(err.value)
    assert "the disk is full" in message and "MiB free on its filesystem" in message, message
    assert ended > 5 and f"the {ended} completed episodes" in message
    # Repair where there is space: a copy of the session on the ordinary disk.
    copy = tmp_path / "copy"
    shutil.copytree(session, copy)
    read = episodes_after_recover(copy)
    assert len(read) == ended and all(e.status == "complete" for e in read)
