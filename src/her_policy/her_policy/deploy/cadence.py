"""How well a control loop held its rate: LeRobot's cadence summary plus tick percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from her_policy.deploy.pipeline import STAGES

# -- cadence -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CadenceReport:
    """How well the loop held its rate (LeRobot's cadence summary, plus tick percentiles)."""

    ticks: int
    target_hz: float
    achieved_hz: float
    """Ticks per second of wall time between the first and last tick start (NaN if < 2 ticks)."""
    over_budget: int
    """Ticks whose work (everything but the pacing sleep) exceeded 1 / rate_hz."""
    tick_p50_us: float
    tick_p99_us: float
    tick_max_us: float
    stage_mean_us: dict[str, float]
    """Mean time per stage of the tick (observe, actor, limits_ik, safety, io)."""
    sleep_mean_us: float
    """Pacing headroom: mean sleep per tick (near zero means the loop is saturated)."""

    def summary(self) -> str:
        """One line for logs."""
        stages = ", ".join(f"{k} {v:.0f}" for k, v in self.stage_mean_us.items())
        return (
            f"{self.achieved_hz:.2f} Hz vs {self.target_hz:g} Hz target, {self.ticks} ticks, "
            f"{self.over_budget} over the {1e3 / self.target_hz:.1f} ms budget; tick p50 "
            f"{self.tick_p50_us:.0f} us, p99 {self.tick_p99_us:.0f} us, max {self.tick_max_us:.0f} us "
            f"(mean us: {stages}); slept {self.sleep_mean_us / 1e3:.1f} ms/tick"
        )


MAX_TICK_SAMPLES = 1 << 18
"""Tick work times a meter keeps for its percentiles (2 MiB: 2.9 h at 25 Hz): a loop that runs
for days keeps the latest ones, so its memory stays flat (``bench/bench_soak.py``). Counts,
the rate, ticks over budget, the maximum and stage means cover every tick."""


class CadenceMeter:
    """Accumulates per-tick work time, stage times and tick start times; percentiles are over
    the last :data:`MAX_TICK_SAMPLES` ticks (a ring), everything else over every tick."""

    def __init__(self, rate_hz: float, capacity: int = 1 << 16, *, max_samples: int = MAX_TICK_SAMPLES) -> None:
        self.rate_hz = rate_hz
        self.budget_ns = round(1e9 / rate_hz)
        self.max_samples = max(1, int(max_samples))
        self._work = np.zeros(min(capacity, self.max_samples), dtype=np.int64)
        self._n = 0
        self._over = 0
        self._max_ns = 0
        self._stages = np.zeros(len(STAGES) + 1, dtype=np.int64)
        self._first_start = 0
        self._last_start = 0
        self._sleep_ns = 0

    def add(
        self, start_ns: int, work_ns: int, stage_ns: Sequence[int], io_ns: int, sleep_ns: int
    ) -> None:
        if self._n == 0:
            self._first_start = start_ns
        self._last_start = start_ns
        if self._n >= self._work.size and self._work.size < self.max_samples:
            grown = min(2 * self._work.size, self.max_samples)
            self._work = np.concatenate((self._work, np.zeros(grown - self._work.size, np.int64)))
        self._work[self._n % self._work.size] = work_ns
        self._n += 1
        if work_ns > self.budget_ns:
            self._over += 1
        if work_ns > self._max_ns:
            self._max_ns = work_ns
        for i, v in enumerate(stage_ns):
            self._stages[i] += v
        self._stages[-1] += io_ns
        self._sleep_ns += sleep_ns

    def report(self) -> CadenceReport:
        n = self._n
        work = self._work[: min(n, self._work.size)] * 1e-3
        span = (self._last_start - self._first_start) * 1e-9
        hz = (n - 1) / span if n > 1 and span > 0 else math.nan
        p50, p99, mx = (
            (float(np.percentile(work, 50)), float(np.percentile(work, 99)), self._max_ns * 1e-3)
            if n
            else (math.nan,) * 3
        )
        names = (*STAGES, "io")
        stage = {k: float(v) * 1e-3 / n if n else math.nan for k, v in zip(names, self._stages)}
        return CadenceReport(
            ticks=n,
            target_hz=self.rate_hz,
            achieved_hz=hz,
            over_budget=self._over,
            tick_p50_us=p50,
            tick_p99_us=p99,
            tick_max_us=mx,
            stage_mean_us=stage,
            sleep_mean_us=self._sleep_ns * 1e-3 / n if n else math.nan,
        )


