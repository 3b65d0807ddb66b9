"""Record every decision of a seeded adversarial soak of the push task's control pipeline.

The fixture ``tests/her_policy/data/tick_decisions.npz`` was written by this script from the
tick as it was before the speed work of the control path (issue 24); the regression test
``tests/her_policy/test_tick_regression.py`` replays the same ticks through today's
pipeline and compares every field of every decision, bit for bit. Rewrite the fixture
only for a change that is meant to change decisions, and say so in the commit.

The soak is bench/bench_safety.py's (random, saturated, NaN/inf and misshapen policy outputs
mixed with the real numpy actor; states anywhere in and past the joint limits, NaN/inf/1e9
entries, stale and future stamps, e-stop pulses) through ``pipeline_for`` on the push rig,
the wiring the policy node and ``her sim`` use.

Usage::

    .venv/bin/python bench/tick_decisions.py --write tests/her_policy/data/tick_decisions.npz
    # a longer soak: write it from older code (a checkout of it), compare today's with it
    .venv/bin/python bench/tick_decisions.py --ticks 100000 --write /tmp/before.npz
    .venv/bin/python bench/tick_decisions.py --ticks 100000 --against /tmp/before.npz
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from her_goals import RobotState
from her_policy.artefact.weights import ActorWeights
from her_policy.deploy.pipeline import TickPipeline
from her_policy.deploy.runtime import RuntimeActor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_safety

GOAL = np.array([0.5, 0.1, 0.025])


class MixedActor:
    """Half the ticks the real numpy actor, half bench_safety's adversarial outputs."""

    def __init__(self, real: Any, rng: np.random.Generator) -> None:
        self.real = real
        self.rng = rng
        self.adversarial = bench_safety.AdversarialActor(rng)

    def __call__(self, obs: Any, goal: Any) -> Any:
        if self.rng.random() < 0.5:
            return self.real(obs, goal)
        return self.adversarial(obs, goal)


def push_arm(seed: int = 0) -> dict[str, Any]:
    """bench_safety's push arm (``pipeline_for`` on the MuJoCo arm) with a small seeded actor."""
    actor = RuntimeActor(
        ActorWeights.random(23, 3, 4, hidden=(64, 64), seed=seed, goal_space="object_position")
    )
    arm = bench_safety.make_arm(actor.numpy_actor)
    arm["actor"] = actor
    return arm


def run(ticks: int = 5_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Every field of every tick's result, as arrays (the fixture's content)."""
    arm = push_arm(seed)
    pipe: TickPipeline = arm["pipe"]
    states = bench_safety.realistic_states(arm, 300, seed=seed)
    rng = np.random.default_rng(seed + 1)
    pipe.actor = MixedActor(arm["actor"].numpy_actor, rng)
    m = pipe.monitor
    m.reset_estop()
    low, high = m.joint_low_rad, m.joint_high_rad
    names = states[0].joint_names
    n = m.n_joints
    out: dict[str, list[Any]] = {
        k: []
        for k in (
            "command", "gripper_m", "flags", "safety_cost", "status", "hold", "scale",
            "condition_number", "details_crc", "observation", "achieved_goal", "raw_action",
            "applied_action",
        )
    }
    nan7 = np.full(n, np.nan)
    now = 10**12
    previous: RobotState | None = None
    latched = False
    for _ in range(ticks):
        now += 40_000_000
        base = states[int(rng.integers(len(states)))]
        state = bench_safety.adversarial_state(rng, base, names, low, high, now)
        estop = rng.random() < 0.001
        if latched and rng.random() < 0.02:
            m.reset_estop()
            latched = False
        latched = latched or estop
        r = pipe.tick(state, now, GOAL, previous=previous, estop=estop)
        previous = state
        d = r.decision
        out["command"].append(nan7 if d.command is None else d.command)
        out["gripper_m"].append(np.nan if d.gripper_m is None else d.gripper_m)
        out["flags"].append(d.flags)
        out["safety_cost"].append(d.safety_cost)
        out["status"].append(int(d.status))
        out["hold"].append(d.hold)
        out["scale"].append(d.scale)
        out["condition_number"].append(d.condition_number)
        out["details_crc"].append(zlib.crc32("\n".join(d.details).encode()))
        out["observation"].append(_fixed(r.observation, 23))
        out["achieved_goal"].append(_crc(r.achieved_goal))
        out["raw_action"].append(_crc(r.raw_action))
        out["applied_action"].append(_fixed(r.applied_action, 4))
    return {k: np.asarray(v) for k, v in out.items()}


def _crc(x: np.ndarray | None) -> int:
    """CRC-32 of the array's bytes (-1 for None): bit-for-bit identity without storing it."""
    return -1 if x is None else zlib.crc32(np.ascontiguousarray(x, dtype=np.float64).tobytes())


def _fixed(x: np.ndarray | None, size: int) -> np.ndarray:
    """``x`` padded with NaN to ``size`` (misshapen actor outputs), NaN when None."""
    row = np.full(size + 1, np.nan)
    if x is not None:
        flat = np.asarray(x, dtype=np.float64).ravel()[:size]
        row[: flat.size] = flat
        row[size] = flat.size
    return row


def differing_ticks(recorded: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Per tick, whether any entry differs (NaN equals NaN; floats compared exactly)."""
    if recorded.shape != now.shape:
        return np.ones(len(recorded), dtype=bool)
    same = (recorded == now) | (np.isnan(recorded) & np.isnan(now)) if recorded.dtype.kind == "f" else recorded == now
    return ~same.reshape(len(recorded), -1).all(axis=1)


def compare(arrays: dict[str, np.ndarray], path: Path) -> int:
    """Print, per field, how many ticks differ from the recording at ``path``; 0 when none do."""
    with np.load(path) as f:
        recorded = {k: f[k] for k in f.files}
    ticks = len(arrays["flags"])
    if len(recorded.get("flags", ())) != ticks or set(recorded) != set(arrays):
        print(f"tick_decisions: error: {path} is not a recording of {ticks} ticks with these fields")
        return 2
    total = 0
    for key, now in arrays.items():
        n = int(differing_ticks(recorded[key], now).sum())
        total += n
        print(f"  {key:16s} {n} of {ticks} ticks differ")
    print(f"{'identical' if total == 0 else 'DIFFERENT'}: {ticks} ticks against {path}")
    return 0 if total == 0 else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=0)
    out = ap.add_mutually_exclusive_group(required=True)
    out.add_argument("--write", type=Path, help="the .npz fixture to write")
    out.add_argument(
        "--against", type=Path, help="a .npz written by --write: compare every field of every tick"
    )
    args = ap.parse_args(argv)
    if args.against is not None and not args.against.is_file():
        print(f"tick_decisions: error: --against {args.against}: no such file (write one with --write)")
        return 2
    with np.errstate(all="ignore"):
        arrays = run(args.ticks, args.seed)
    if args.against is not None:
        return compare(arrays, args.against)
    args.write.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.write, **arrays)
    held = int(arrays["hold"].sum())
    print(f"wrote {args.write}: {args.ticks} ticks, {held} holds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
