"""Soak: the closed loop of ``her loop`` for an hour, watching memory, descriptors and ticks.

What ``her loop --task push`` runs, in the same two processes: the simulated arm (this
process: the full control loop - action limits, IK, safety monitor - exploring around the
newest version and recording every episode to ``RUN/session``; each new version measured on
held-out goals, recorded to ``RUN/eval``) and the continuous learner (a child process training
on every closed episode and publishing versions the arm swaps in between episodes). The arm
runs in this process so the bench reads its control loop's cadence meter
(``her_policy/deploy/cadence.py``); ``--no-learner`` runs the arm and recorder alone (the
ROS-free sim loop with the recorder).

Every minute, and at the end, one line per process: RSS (MiB) and open file descriptors. At the
end, after ``--warmup-minutes``:

* **RSS slope** of each process, MiB per 10 min (least squares over the samples after warm-up);
  target < 1 MiB / 10 min for the arm (the learner's replay buffer fills up to its capacity by
  design: its slope is shown, judged only once the buffer is full);
* **descriptor growth**, last sample minus the first after warm-up (target 0);
* **ticks over budget**: control ticks whose work exceeded the cadence meter's budget
  (1 / rate_hz), out of all ticks (target 0 beyond the budget).

    python bench/bench_soak.py --minutes 60 --task push
    python bench/bench_soak.py --minutes 5 --task push          # a quick check that it works
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from her_policy.app.arm_worker import ArmWorker
from her_policy.learn.config import build_train_config

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (``/proc/PID/statm``)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def open_fds(pid: int) -> int:
    """Open file descriptors of a process (``/proc/PID/fd``)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_10min(minutes: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` against ``minutes``, per 10 minutes (NaN for < 2 samples)."""
    if len(minutes) < 2:
        return float("nan")
    return float(np.polyfit(np.asarray(minutes), np.asarray(values), 1)[0] * 10.0)


def _learner(session: str, out: str, task: str, publish_every: int, stop: Any) -> None:
    # loads torch: in the learner process only
    from her_policy.learn.continuous import continuous_learner

    learner = continuous_learner([Path(session)], Path(out), task=task, publish_every=publish_every)
    learner.run(poll_s=0.5, until=lambda _lrn: bool(stop.is_set()))
    learner.checkpoint()


def soak(task: str, minutes: float, out: Path, *, learner: bool, warmup: float, eval_goals: int,
         publish_every: int) -> int:  # fmt: skip
    preset = build_train_config({"task": task})
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    child = None
    if learner:
        child = ctx.Process(
            target=_learner, args=(str(out / "session"), str(out / "learner"), task, publish_every, stop), daemon=True
        )
        child.start()
    arm = ArmWorker(
        task, out / "session", out / "learner" / "versions", seed=0,
        noise=preset.resolved_exploration_noise, random_eps=preset.resolved_random_eps, eval_session=out / "eval",
    )  # fmt: skip
    procs = {"arm": os.getpid(), **({"learner": child.pid} if child is not None and child.pid else {})}
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in procs}

    def sample(t_min: float) -> None:
        parts = []
        for name, pid in procs.items():
            try:
                rss, fds = rss_mib(pid), open_fds(pid)
            except FileNotFoundError:
                parts.append(f"{name} gone")
                continue
            samples[name].append((t_min, rss, fds))
            parts.append(f"{name} rss={rss:7.1f} MiB fds={fds:3d}")
        cadence = arm.loop.cadence()
        print(
            f"t={t_min:5.1f} min  " + "  ".join(parts) + f"  episodes={arm.episodes} env_steps={arm.env_steps} "
            f"versions={len(arm.swaps)} ticks={cadence.ticks} over_budget={cadence.over_budget}",
            flush=True,
        )

    start = time.monotonic()
    next_sample, seen_swaps = 0.0, 0
    try:
        while (elapsed := (time.monotonic() - start) / 60.0) < minutes:
            if elapsed >= next_sample:
                sample(elapsed)
                next_sample += 1.0
            arm.run(1)
            if child is not None and not child.is_alive():
                raise SystemExit(f"the learner process stopped (exit {child.exitcode})")
            if len(arm.swaps) != seen_swaps:
                seen_swaps = len(arm.swaps)
                arm.evaluate(eval_goals)  # as her loop does: each new version on held-out goals
        sample((time.monotonic() - start) / 60.0)
    finally:
        stop.set()
        arm.close()
        if child is not None:
            child.join(timeout=120)
            if child.is_alive():
                child.terminate()
    cadence = arm.loop.cadence()
    print(f"\nsoak task={task} minutes={minutes:g} warmup={warmup:g} min; cadence: {cadence.summary()}")
    failed = 0
    for name, rows in samples.items():
        after = [r for r in rows if r[0] >= warmup] or rows
        t = [r[0] for r in after]
        slope = slope_per_10min(t, [r[1] for r in after])
        growth = after[-1][2] - after[0][2] if after else 0
        judged = name == "arm"
        ok = slope < 1.0 and growth <= 0
        failed += int(judged and not ok)
        print(
            f"soak {name}: rss {after[0][1]:.1f} -> {after[-1][1]:.1f} MiB, slope {slope:+.2f} MiB/10min "
            f"(target < 1{'' if judged else ', not judged: the replay buffer fills by design'}), "
            f"fds {after[0][2]} -> {after[-1][2]} (growth {growth:+d}, target 0)"
            + (f": {'ok' if ok else 'NOT MET'}" if judged else "")
        )
    over = cadence.over_budget
    print(
        f"soak ticks over the {1e3 / cadence.target_hz:.0f} ms budget: {over} of {cadence.ticks} "
        f"(target 0): {'ok' if over == 0 else 'NOT MET'}"
    )
    return 1 if failed or over else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to run (default 60)")
    parser.add_argument("--task", default="push", help="registered task (default push)")
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="samples before this are not judged (default: 10, or a third of a shorter run)")  # fmt: skip
    parser.add_argument("--no-learner", action="store_true", help="the arm and recorder only")
    parser.add_argument("--eval-goals", type=int, default=20, help="held-out goals per new version")
    parser.add_argument("--publish-every", type=int, default=2000, help="learner updates between versions")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    args = parser.parse_args()
    warmup = args.warmup_minutes if args.warmup_minutes is not None else min(10.0, args.minutes / 3.0)
    with tempfile.TemporaryDirectory(prefix="her-soak-") as tmp:
        out = args.out or Path(tmp)
        return soak(args.task, args.minutes, out, learner=not args.no_learner, warmup=warmup,
                    eval_goals=args.eval_goals, publish_every=args.publish_every)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
