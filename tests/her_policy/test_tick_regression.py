"""Today's tick decides exactly what the tick decided before its speed work (issue 24).

``tests/her_policy/data/tick_decisions.npz`` holds every field of 5000 ticks of a seeded
adversarial soak of the push pipeline (``pipeline_for``), recorded by
``bench/tick_decisions.py`` from the code before the fast path; the same ticks run again
here and every field must match bit for bit.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from her_goals.safety_flags import SafetyFlag

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "her_policy" / "data" / "tick_decisions.npz"


def _recorder() -> Any:
    pytest.importorskip("mujoco")
    spec = importlib.util.spec_from_file_location("tick_decisions", ROOT / "bench" / "tick_decisions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def replayed() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with np.load(FIXTURE) as f:
        recorded = {k: f[k] for k in f.files}
    with np.errstate(all="ignore"):
        now = _recorder().run(ticks=len(recorded["flags"]), seed=0)
    return recorded, now


EXACT = (
    "flags", "status", "hold", "safety_cost", "details_crc", "gripper_m", "achieved_goal",
    "raw_action", "command", "scale", "condition_number", "observation", "applied_action",
)


@pytest.mark.parametrize("field", EXACT)
def test_every_tick_decides_what_it_decided_before(
    replayed: tuple[dict[str, np.ndarray], dict[str, np.ndarray]], field: str
) -> None:
    recorded, now = replayed
    a, b = recorded[field], now[field]
    assert a.shape == b.shape
    same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
    rows = same.reshape(len(a), -1).all(axis=1)
    first = int(np.argmin(rows)) if not rows.all() else -1
    assert rows.all(), (
        f"{field}: {int((~rows).sum())} of {len(a)} ticks differ, first at tick {first}: "
        f"recorded {a[first]!r}, now {b[first]!r}"
    )


def test_the_soak_exercises_every_path(
    replayed: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
) -> None:
    """The fixture is worth comparing: holds, free moves, and every monitor flag occur."""
    recorded, _ = replayed
    hold = recorded["hold"]
    assert 0.2 < hold.mean() < 0.8
    seen = np.bitwise_or.reduce(recorded["flags"])
    for flag in ("CLIPPED", "STEP_LIMITED", "VELOCITY_LIMIT", "JOINT_LIMIT", "WORKSPACE",
                 "STALE_STATE", "NON_FINITE", "ESTOP", "SINGULARITY"):
        assert seen & int(SafetyFlag[flag]), flag


def _bench_safety() -> Any:
    spec = importlib.util.spec_from_file_location("bench_safety", ROOT / "bench" / "bench_safety.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tick(p50: float, p99: float) -> dict[str, Any]:
    return {"whole_tick_with_observation": {"p50_us": p50, "p99_us": p99}}


@pytest.mark.parametrize(
    ("p50", "p99", "want"),
    [(70.0, 140.0, ("MET", "MET")), (95.0, 140.0, ("MISSED", "MET")), (70.0, 151.0, ("MET", "MISSED"))],
)
def test_the_bench_line_states_the_targets_and_whether_they_were_met(
    p50: float, p99: float, want: tuple[str, str]
) -> None:
    pytest.importorskip("mujoco")
    pytest.importorskip("torch")
    bench = _bench_safety()
    line = bench.verdict_line("normal", {"numpy": _tick(p50, p99), "torch": _tick(2 * p50, 3 * p99)}, 4.0)
    assert f"p50 {p50:.1f} us (target <= 80: {want[0]})" in line
    assert f"p99 {p99:.1f} us (target <= 150: {want[1]})" in line
    assert "torch/numpy 2.00x at p50, 3.00x at p99" in line
    assert "load average 4.00" in line


def test_the_soak_comparison_finds_one_changed_tick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``tick_decisions.py --against`` says identical for the same code and names a changed field."""
    recorder = _recorder()
    with np.errstate(all="ignore"):
        arrays = recorder.run(ticks=60, seed=0)
    path = tmp_path / "before.npz"
    np.savez(path, **arrays)
    assert recorder.compare(arrays, path) == 0
    assert "identical: 60 ticks" in capsys.readouterr().out
    changed = dict(arrays)
    changed["command"] = arrays["command"].copy()
    changed["command"][7, 2] = np.nextafter(changed["command"][7, 2], np.inf)  # one ulp, one tick
    assert recorder.compare(changed, path) == 1
    out = capsys.readouterr().out
    assert "command          1 of 60 ticks differ" in out and "DIFFERENT" in out
