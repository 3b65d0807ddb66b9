"""Benchmark of the policy runtime under action limits and the safety monitor.

1. Actor alone: p50/p99 of one forward pass, numpy vs torch eager (3x256 MLP).
2. Tick latency of the push task's pipeline (``pipeline_for``: observation, actor, limits,
   IK, safety monitor, FK and Jacobian of the MuJoCo arm included), p50/p99 over ``--ticks``
   ticks, with the numpy and the torch actor, and the p50 of every stage,
   under the normal scheduler and, when permitted (root), under SCHED_FIFO.
   Target (issue 24): whole tick p99 <= 150 us, p50 <= 80 us, numpy actor; one line per
   scheduler states both targets, MET or MISSED, beside the torch actor peer of the same run
   and the load average. ``--profile N`` adds a cProfile of N ticks (calls and kinematics
   passes per tick, the functions with the most own time).
3. Adversarial soak: ``--soak-ticks`` ticks (default 10^6) of random and adversarial
   states (NaN, inf, 1e9, out of limits, stale and future stamps, e-stop pulses) and
   policy outputs through the whole pipeline; every command is checked against the
   invariant of her_policy/safety.py. Target: 0 out-of-limit commands.

Usage::

    .venv/bin/python bench/bench_safety.py                  # everything (several minutes)
    .venv/bin/python bench/bench_safety.py --ticks 20000 --soak-ticks 100000   # quicker
    .venv/bin/python bench/bench_safety.py --json bench/results/safety.json

The machine is shared: the load average is printed with the figures; quote both.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from transforms3d.euler import quat2euler

import her_mujoco as mj
from her_goals import RobotState, robot
from her_goals.robot.observation import quat_to_rpy
from her_goals.robot.rig import TaskRig
from her_policy.artefact.weights import ActorWeights
from her_policy.deploy.loop import set_realtime_priority
from her_policy.deploy.pipeline import TickPipeline, pipeline_for
from her_policy.deploy.runtime import RuntimeActor
from her_policy.deploy.safety import SafetyDecision, SafetyMonitor
from her_policy.deploy.settings import SafetyStackConfig
from her_policy.learn.torch_actor import TorchActor, check_parity, time_forward

EPS = 1e-9


def percentiles_us(samples_ns: np.ndarray) -> dict[str, float]:
    us = samples_ns.astype(np.float64) * 1e-3
    return {
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "max_us": float(us.max()),
        "n": int(us.size),
    }


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return math.nan


# -- the arm ---------------------------------------------------------------------------------


def make_arm(actor: Callable[..., Any]) -> dict[str, Any]:
    """The push task on the MuJoCo arm, wired by ``pipeline_for`` as the policy node wires it."""
    cfg = SafetyStackConfig()
    sim = mj.ArmSim()
    rig = TaskRig.build("push", sim.config, kinematics=robot.Kinematics(sim.config, model=sim.model))
    pipe = pipeline_for(rig, cfg, actor)
    return {"mj": mj, "sim": sim, "rig": rig, "pipe": pipe, "cfg": cfg}


def realistic_states(arm: dict[str, Any], n: int, seed: int = 0) -> list[RobotState]:
    """States of the Push arm under a wandering scripted policy, driven through the pipeline."""
    rng = np.random.default_rng(seed)
    sim, pipe = arm["sim"], arm["pipe"]
    states: list[RobotState] = []
    goal = np.array([0.5, 0.1, 0.025])
    previous = None
    direction = rng.uniform(-1, 1, 3)
    while len(states) < n:
        sim.reset(seed=int(rng.integers(1 << 30)))
        previous = None
        for _ in range(50):
            if rng.random() < 0.1:
                direction = rng.uniform(-1, 1, 3)
            state = sim.state()
            pipe.actor = lambda o, g, d=direction: np.append(d, 0.0)
            d = pipe.tick(state, sim.time_ns, goal, previous=previous).decision
            if d.command is not None:
                sim.set_joint_targets(d.command, d.gripper_m)
            sim.step()
            states.append(state)
            previous = state
    return states[:n]


# -- 1 + 2: latency --------------------------------------------------------------------------


def bench_quat_to_rpy(calls: int) -> dict[str, float]:
    """Per-call median (us) of the observation's quat->rpy beside transforms3d's quat2euler."""
    q = np.array([0.9, 0.1, -0.3, 0.2])
    q /= np.linalg.norm(q)
    out = {}
    for name, fn in (("ours", lambda: quat_to_rpy(q)), ("transforms3d", lambda: quat2euler(q, "sxyz"))):
        samples = []
        for _ in range(20):
            t0 = time.perf_counter_ns()
            for _ in range(calls // 20):
                fn()
            samples.append((time.perf_counter_ns() - t0) / (calls // 20) * 1e-3)
        out[name] = float(np.median(samples))
    return out


def bench_actor(
    actor: RuntimeActor, twin: TorchActor, calls: int
) -> dict[str, dict[str, float]]:
    out = {}
    for backend, fn in (("numpy", actor.numpy_actor), ("torch", twin)):
        p50, p99 = time_forward(fn, actor.weights, calls)
        out[backend] = {"p50_us": p50, "p99_us": p99, "n": calls}
    return out


def bench_ticks(
    pipe: TickPipeline, states: list[RobotState], fn: Callable[..., Any], ticks: int
) -> dict[str, Any]:
    """Time ``ticks`` pipeline ticks with actor ``fn``; cycle through the recorded states."""
    pipe.actor = fn
    goal = np.array([0.5, 0.1, 0.025])
    pipe.monitor.reset_estop()
    n_states = len(states)
    total = np.empty(ticks, dtype=np.int64)
    no_obs = np.empty(ticks, dtype=np.int64)
    stages = np.empty((ticks, 4), dtype=np.int64)
    clock = time.perf_counter_ns
    holds = 0
    for i in range(min(2000, ticks)):  # warm-up
        s = states[i % n_states]
        pipe.tick(s, s.stamp_ns, goal, previous=states[i % n_states - 1])
    for i in range(ticks):
        k = i % n_states
        s = states[k]
        t0 = clock()
        r = pipe.tick(s, s.stamp_ns, goal, previous=states[k - 1])
        total[i] = clock() - t0
        st = r.stage_ns
        no_obs[i] = st[1] + st[2] + st[3]
        stages[i] = st
        holds += r.decision.hold
    return {
        "actor_limits_ik_safety": percentiles_us(no_obs),
        "whole_tick_with_observation": percentiles_us(total),
        "stage_p50_us": dict(
            zip(
                ("observe", "actor", "limits_ik", "safety"),
                (np.percentile(stages, 50, axis=0) * 1e-3).round(2).tolist(),
            )
        ),
        "holds": holds,
    }


def profile_ticks(
    pipe: TickPipeline, states: list[RobotState], fn: Callable[..., Any], ticks: int, top: int = 12
) -> dict[str, Any]:
    """cProfile over ``ticks`` ticks: Python-level calls per tick, kinematics passes per tick and
    the functions with the most own time (us per tick, inflated by the profiler's own cost).

    cProfile sees Python functions and builtins, not numpy ufunc calls (``np.add``, ``np.minimum``):
    the call count is a lower bound of the interpreter's work per tick.
    """
    pipe.actor = fn
    goal = np.array([0.5, 0.1, 0.025])
    pipe.monitor.reset_estop()
    kin = getattr(pipe.ik, "kin", None)
    misses0 = getattr(kin, "misses", 0)
    n_states = len(states)
    prof = cProfile.Profile()
    prof.enable()
    for i in range(ticks):
        k = i % n_states
        s = states[k]
        pipe.tick(s, s.stamp_ns, goal, previous=states[k - 1])
    prof.disable()
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    functions = [
        {
            "function": f"{Path(f).name}:{line}({name})",
            "calls_per_tick": round(v[1] / ticks, 2),
            "own_us_per_tick": round(v[2] / ticks * 1e6, 2),
            "cumulative_us_per_tick": round(v[3] / ticks * 1e6, 2),
        }
        for (f, line, name), v in rows
    ]
    return {
        "ticks": ticks,
        "calls_per_tick": round(stats.total_calls / ticks, 1),  # type: ignore[attr-defined]
        "kinematics_passes_per_tick": round((getattr(kin, "misses", 0) - misses0) / ticks, 2),
        "top_own_time": functions,
    }


TARGET_P50_US = 80.0
TARGET_P99_US = 150.0
"""Issue 24's targets for the whole tick of the push task, numpy actor, on this machine."""


def targets(numpy_tick: dict[str, Any]) -> dict[str, Any]:
    """Whether the numpy actor's whole tick met the p50 and p99 targets."""
    w = numpy_tick["whole_tick_with_observation"]
    return {
        "p50_target_us": TARGET_P50_US,
        "p99_target_us": TARGET_P99_US,
        "p50_met": w["p50_us"] <= TARGET_P50_US,
        "p99_met": w["p99_us"] <= TARGET_P99_US,
    }


def verdict_line(sched: str, by_backend: dict[str, Any], load: float) -> str:
    """One line: numpy tick p50/p99 against the targets (MET/MISSED), beside the torch peer."""
    w = by_backend["numpy"]["whole_tick_with_observation"]
    t = by_backend["torch"]["whole_tick_with_observation"]
    ok = targets(by_backend["numpy"])

    def mark(met: bool) -> str:
        return "MET" if met else "MISSED"

    return (
        f"{sched}: whole tick, numpy actor p50 {w['p50_us']:.1f} us (target <= {TARGET_P50_US:g}: "
        f"{mark(ok['p50_met'])}), p99 {w['p99_us']:.1f} us (target <= {TARGET_P99_US:g}: "
        f"{mark(ok['p99_met'])}); torch actor peer p50 {t['p50_us']:.1f} us, p99 {t['p99_us']:.1f} us "
        f"(torch/numpy {t['p50_us'] / w['p50_us']:.2f}x at p50, {t['p99_us'] / w['p99_us']:.2f}x at p99); "
        f"load average {load:.2f} on {os.cpu_count()} CPUs"
    )


# -- 3: soak --------------------------------------------------------------------------------


class AdversarialActor:
    """Policy outputs: sane, saturated, huge, NaN/inf, wrong shape, or raising."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def __call__(self, o: Any, g: Any) -> Any:
        rng = self.rng
        r = rng.random()
        if r < 0.5:
            return rng.uniform(-1.0, 1.0, 4)
        if r < 0.7:
            return rng.choice([-1.0, 1.0], 4) * rng.choice([1.0, 3.0, 1e9])
        if r < 0.85:
            a = rng.uniform(-2.0, 2.0, 4)
            a[rng.integers(4)] = rng.choice([np.nan, np.inf, -np.inf, 1e300])
            return a
        if r < 0.9:
            return rng.uniform(-1.0, 1.0, int(rng.integers(0, 8)))
        if r < 0.92:
            raise RuntimeError("policy crashed")
        return np.zeros(4)


def adversarial_state(
    rng: np.random.Generator,
    base: RobotState,
    names: tuple[str, ...],
    low: np.ndarray,
    high: np.ndarray,
    now: int,
) -> RobotState:
    q = base.position.copy()
    n_arm = low.size
    r = rng.random()
    if r < 0.3:
        pass  # a realistic state
    elif r < 0.5:
        q[:n_arm] = rng.uniform(low, high)  # anywhere in the hard limits (margin zones too)
    elif r < 0.6:
        q[:n_arm] = rng.uniform(low - 0.3, high + 0.3)  # past the hard limits
    elif r < 0.7:
        q[:n_arm] = np.where(rng.random(n_arm) < 0.5, low, high) + rng.normal(0, 0.05, n_arm)
    elif r < 0.85:
        q[int(rng.integers(q.size))] = rng.choice([np.nan, np.inf, -np.inf, 1e9, -1e9, 1e300])
    else:
        q[:n_arm] += rng.normal(0, 0.2, n_arm)
    a = rng.random()
    if a < 0.8:
        age = int(rng.integers(0, 50_000_000))
    elif a < 0.9:
        age = int(rng.integers(100_000_001, 10**10))
    elif a < 0.95:
        age = -int(rng.integers(100_000_001, 10**10))
    else:
        age = int(rng.choice([100_000_000, 100_000_001, -100_000_001]))
    vel = base.velocity.copy()
    if rng.random() < 0.05:
        vel[int(rng.integers(vel.size))] = rng.choice([np.nan, 1e9, 10.0])
    return RobotState(names, q, velocity=vel, stamp_ns=now - age, object_pose=base.object_pose)


def out_of_limit(m: SafetyMonitor, d: SafetyDecision, last_finite: np.ndarray | None) -> str:
    """'' when the command keeps the invariant, else what it broke."""
    if last_finite is None:
        return "" if d.command is None else "command without any finite measurement"
    c = d.command
    if c is None:
        return "no command although a finite measurement exists"
    if c.shape != (m.n_joints,) or not np.isfinite(c).all():
        return "non-finite command"
    ref = np.clip(last_finite, m.joint_low_rad, m.joint_high_rad)
    if (c < m.joint_low_rad).any() or (c > m.joint_high_rad).any():
        return "outside hard joint limits"
    if (np.abs(c - ref) > m.joint_step_cap_rad + EPS).any():
        return "joint step above its cap"
    if (c < np.minimum(m.band_low_rad, ref) - EPS).any() or (
        c > np.maximum(m.band_high_rad, ref) + EPS
    ).any():
        return "past the joint-limit margin"
    if d.hold and not np.array_equal(c, ref):
        return "hold is not the measured position"
    return ""


def soak(arm: dict[str, Any], states: list[RobotState], ticks: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    pipe: TickPipeline = arm["pipe"]
    m = pipe.monitor
    low, high = m.joint_low_rad, m.joint_high_rad
    names = states[0].joint_names
    n_arm = low.size
    pipe.actor = AdversarialActor(rng)
    m.reset_estop()
    m._last_finite = None
    goal = np.array([0.5, 0.1, 0.025])
    last_finite: np.ndarray | None = None
    latched = False
    broken: dict[str, int] = {}
    holds = 0
    flag_ticks: dict[str, int] = {}
    stale_not_held = 0
    estop_not_held = 0
    now = 10**12
    previous = None
    t_start = time.perf_counter()
    report_every = max(1, ticks // 10)
    for i in range(ticks):
        now += 40_000_000
        base = states[int(rng.integers(len(states)))]
        state = adversarial_state(rng, base, names, low, high, now)
        estop = rng.random() < 0.001
        if latched and rng.random() < 0.02:
            m.reset_estop()
            latched = False
        r = pipe.tick(state, now, goal, previous=previous, estop=estop)
        previous = state
        d = r.decision
        q_arm = state.position[:n_arm]
        if np.isfinite(q_arm).all():
            last_finite = q_arm.copy()
        latched = latched or estop
        why = out_of_limit(m, d, last_finite)
        if why:
            broken[why] = broken.get(why, 0) + 1
        age = now - state.stamp_ns
        if (age > 100_000_000 or age < -100_000_000) and not d.hold:
            stale_not_held += 1
        if latched and not d.hold:
            estop_not_held += 1
        holds += d.hold
        for name in d.reasons:
            flag_ticks[name] = flag_ticks.get(name, 0) + 1
        if (i + 1) % report_every == 0:
            rate = (i + 1) / (time.perf_counter() - t_start)
            print(
                f"  soak {i + 1:>9d}/{ticks} ticks, {sum(broken.values())} out-of-limit, {rate:.0f} ticks/s",
                file=sys.stderr,
                flush=True,
            )
    return {
        "ticks": ticks,
        "out_of_limit_commands": sum(broken.values()),
        "out_of_limit_by_kind": broken,
        "stale_ticks_not_held": stale_not_held,
        "estop_ticks_not_held": estop_not_held,
        "holds": holds,
        "ticks_with_flag": dict(sorted(flag_ticks.items())),
        "seconds": round(time.perf_counter() - t_start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=100_000, help="timed ticks per actor backend")
    ap.add_argument(
        "--actor-calls", type=int, default=100_000, help="timed calls per actor backend"
    )
    ap.add_argument(
        "--soak-ticks", type=int, default=1_000_000, help="adversarial soak ticks (0: skip)"
    )
    ap.add_argument("--states", type=int, default=2000, help="recorded arm states to cycle through")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--fifo-priority",
        type=int,
        default=40,
        help="also time the ticks under SCHED_FIFO at this priority when permitted (MoveIt Servo: 40; 0: skip)",
    )
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        help="also profile this many numpy-actor ticks with cProfile (0: skip)",
    )
    args = ap.parse_args(argv)

    import torch

    weights = ActorWeights.random(
        23, 3, 4, hidden=(256, 256, 256), seed=args.seed, goal_space="object_position"
    )
    actor, twin = RuntimeActor(weights), TorchActor(weights)
    parity = check_parity(weights)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
        "actor": {
            "mlp": "3x256 relu, tanh out, obs 23 + goal 3 -> 4",
            "robot_path": "numpy (RuntimeActor); torch twin timed for comparison",
            "parity_max_abs_diff": parity,
        },
    }
    print(f"load average at start: {load_average():.2f} on {os.cpu_count()} CPUs", flush=True)

    print(f"1. actor alone, {args.actor_calls} calls per backend ...", flush=True)
    results["actor"]["latency"] = bench_actor(actor, twin, args.actor_calls)
    for b, r in results["actor"]["latency"].items():
        print(f"   {b:5s}  p50 {r['p50_us']:7.1f} us  p99 {r['p99_us']:7.1f} us")

    rpy = results["quat_to_rpy_us"] = bench_quat_to_rpy(args.actor_calls)
    print(f"   quat->rpy per call: ours {rpy['ours']:.2f} us, transforms3d {rpy['transforms3d']:.2f} us")

    arm = make_arm(actor.numpy_actor)
    states = realistic_states(arm, args.states, seed=args.seed)
    print(
        f"2. tick latency, {args.ticks} ticks per backend (Push arm, {len(states)} recorded states) ...",
        flush=True,
    )
    results["tick"] = {}
    schedulers = ["normal"]
    if args.fifo_priority:
        # Only the latency runs are real-time (a few seconds each); the soak runs normally.
        if set_realtime_priority(args.fifo_priority):
            schedulers.append(f"SCHED_FIFO {args.fifo_priority}")
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        else:
            print(f"   SCHED_FIFO priority {args.fifo_priority}: not permitted (run as root)")
    for sched in schedulers:
        if sched != "normal":
            set_realtime_priority(args.fifo_priority)
        results["tick"][sched] = {}
        for b, fn in (("numpy", actor.numpy_actor), ("torch", twin)):
            r = bench_ticks(arm["pipe"], states, fn, args.ticks)
            results["tick"][sched][b] = r
            a, w = r["actor_limits_ik_safety"], r["whole_tick_with_observation"]
            print(
                f"   {sched:13s} {b:5s}  whole tick p50 {w['p50_us']:6.1f} us  p99 {w['p99_us']:6.1f} us"
                f"   (actor+limits+IK+safety: p50 {a['p50_us']:6.1f}, p99 {a['p99_us']:6.1f})"
                f"  stage p50 {r['stage_p50_us']}",
                flush=True,
            )
        if sched != "normal":  # back to the normal scheduler
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        print("   " + verdict_line(sched, results["tick"][sched], load_average()), flush=True)
        results["tick"][sched]["targets"] = targets(results["tick"][sched]["numpy"])
    results["load_average_after_latency"] = load_average()

    if args.profile:
        prof = results["profile"] = profile_ticks(arm["pipe"], states, actor.numpy_actor, args.profile)
        print(
            f"   cProfile, {args.profile} numpy ticks: {prof['calls_per_tick']} Python-level calls and "
            f"{prof['kinematics_passes_per_tick']} kinematics passes per tick; most own time (us/tick, "
            "profiler overhead included):"
        )
        for row in prof["top_own_time"]:
            print(
                f"     {row['own_us_per_tick']:6.2f} own {row['cumulative_us_per_tick']:7.2f} cum "
                f"{row['calls_per_tick']:5.2f} calls  {row['function']}"
            )

    if args.soak_ticks:
        print(f"3. adversarial soak, {args.soak_ticks} ticks ...", flush=True)
        arm["pipe"].actor = actor.numpy_actor
        s = soak(arm, states, args.soak_ticks, args.seed + 1)
        results["soak"] = s
        print(
            f"   out-of-limit commands: {s['out_of_limit_commands']} {s['out_of_limit_by_kind'] or ''}; "
            f"stale ticks not held: {s['stale_ticks_not_held']}; e-stop ticks not held: "
            f"{s['estop_ticks_not_held']}; holds {s['holds']}; {s['seconds']} s"
        )
        print(f"   ticks per flag: {s['ticks_with_flag']}")
    results["load_average_end"] = load_average()
    print(f"load average at end: {results['load_average_end']:.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json}")
    ok = results.get("soak", {}).get("out_of_limit_commands", 0) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
