"""Nothing lost on a crash: SIGKILL a recording process at random moments.

Each trial starts a real recorder process (``_crash_child.py``), kills it with
SIGKILL after a random delay, then checks that every episode the child reported
as ended (it prints after ``end_episode()`` returns) is readable and complete,
with the content it recorded, both through the tolerant read of the unrecovered
session and after ``recover``; and that the episode in progress is flagged
incomplete and never returned as a complete episode.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from her_recorder import find_bags, read_episodes, recover

CHILD = Path(__file__).with_name("_crash_child.py")
KILLS_DEFAULT = 24
KILLS_SLOW = 200


def _trial(root: Path, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    session = root / f"s{seed}"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(session), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("READY"):
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if rng.random() < 0.15:
        time.sleep(rng.uniform(0.0, 0.4))  # sometimes kill during start-up or open()
    else:
        if not ready.wait(30):
            proc.kill()
            raise AssertionError(
                f"child never got ready: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(rng.uniform(0.0, 0.8))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    ended = {int(p[1]): int(p[2]) for p in (ln.split() for ln in lines) if p and p[0] == "END"}
    gone = {int(p[1]) for p in (ln.split() for ln in lines) if p and p[0] == "GONE"}
    return {"session": session, "ended": ended, "gone": gone, "seed": seed}


def _check(trial: dict[str, object]) -> tuple[int, int]:
    """Return (lost completed episodes, incomplete episodes flagged)."""
    session = trial["session"]
    ended: dict[int, int] = trial["ended"]  # type: ignore[assignment]
    gone: set[int] = trial["gone"]  # type: ignore[assignment]
    assert isinstance(session, Path)
    if not session.exists() or not any(session.iterdir()):
        assert not ended  # killed before anything was recorded
        return 0, 0
    before = read_episodes(session, log_summary=False)
    recover(session)
    after = read_episodes(session, log_summary=False)
    for bag in find_bags(session):
        with Reader(bag) as r:  # every recovered bag is an indexed rosbag2 bag again
            assert sum(1 for _ in r.messages()) == r.message_count
    lost = 0
    for result in (before, after):
        got = {ep.episode_id: ep for ep in result.episodes}
        assert not (set(got) & gone)
        for episode_id, n_steps in ended.items():
            ep = got.get(episode_id)
            if ep is None or len(ep) != n_steps:
                lost += 1
                continue
            steps = np.arange(n_steps)
            np.testing.assert_array_equal(ep.observation[:, 0], episode_id + steps / 1000.0)
            np.testing.assert_array_equal(
                ep.next_achieved_goal[:, 0], episode_id + (steps + 1) / 1000.0
            )
            assert ep.truncated[-1] and not ep.truncated[:-1].any()
        errors = [p for p in result.report.problems if p.severity == "error"]
        assert not errors, errors
        incomplete = [p for p in result.report.problems if p.kind == "incomplete"]
        for p in incomplete:
            assert p.episode_id not in got and p.episode_id not in ended
    flagged = sum(1 for p in after.report.problems if p.kind == "incomplete")
    assert after.report.ok, after.report.format()
    return lost, flagged


def _run(tmp_path: Path, kills: int, base_seed: int) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        trials = list(pool.map(lambda s: _trial(tmp_path, s), range(base_seed, base_seed + kills)))
    lost = flagged = completed = 0
    for trial in trials:
        n_lost, n_flagged = _check(trial)
        lost += n_lost
        flagged += n_flagged
        completed += len(trial["ended"])  # type: ignore[arg-type]
    print(
        f"\ncrash test: {kills} SIGKILLs, {completed} episodes reported ended, "
        f"{lost} lost, {flagged} in-progress episodes flagged incomplete"
    )
    assert lost == 0
    assert completed > 0


def test_sigkill_at_random_moments_loses_no_completed_episode(tmp_path: Path) -> None:
    _run(tmp_path, KILLS_DEFAULT, base_seed=1000)


@pytest.mark.slow
def test_sigkill_many_times(tmp_path: Path) -> None:
    _run(tmp_path, KILLS_SLOW, base_seed=5000)
