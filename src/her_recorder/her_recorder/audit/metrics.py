"""The audit's numbers: per-episode audit, requested-goal success, coverage, hindsight, safety, recompute.

Every function takes the gathered episodes (and their :class:`EpisodeAudit`)
and returns plain values for the report; nothing here reads files or labels
failures (see :mod:`~her_recorder.audit.rules`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from her_goals import GoalRegion, GoalSpace
from her_recorder import interfaces as ifc
from her_recorder.audit.episodes import AuditedEpisode
from her_recorder.audit.model import EpisodeAudit, Rate, Split, TrainingLogSummary, nanmean
from her_recorder.reader import ValidationReport

CELL_SIZE = 0.05
"""Edge of a coverage cell, in the goal space's units (5 cm for position goals)."""


# -- per episode -------------------------------------------------------------------------


def pairwise_success(space: GoalSpace, a: NDArray[np.float64], b: NDArray[np.float64]) -> Any:
    """(len(a), len(b)) is_success of every achieved goal in ``a`` against every goal in ``b``."""
    n, m = len(a), len(b)
    aa = np.broadcast_to(a[:, None, :], (n, m, a.shape[1]))
    bb = np.broadcast_to(b[None, :, :], (n, m, b.shape[1]))
    return space.is_success(aa, bb)


def hindsight_positive_fraction(
    space: GoalSpace, next_achieved: NDArray[np.float64], strategy: str
) -> float:
    """Expected share of reward-0 transitions when every goal is relabelled by ``strategy``.

    ``future`` is inclusive, as in her_policy's buffer: transition t draws from
    next_achieved[t..T-1], so each transition has at least one success (its own).
    """
    ok = pairwise_success(space, next_achieved, next_achieved).astype(np.float64)
    if strategy == "final":
        return float(ok[:, -1].mean())
    if strategy == "episode":
        return float(ok.mean())
    upper = np.triu(np.ones_like(ok))  # k >= t
    return float(((ok * upper).sum(axis=1) / upper.sum(axis=1)).mean())


def flag_counts(flags: NDArray[np.uint32]) -> dict[str, int]:
    """Steps with each safety flag set, by flag name (flags never set are left out)."""
    out: dict[str, int] = {}
    for flag in ifc.SafetyFlag:
        n = int(np.count_nonzero(flags & np.uint32(flag.value)))
        if n:
            out[str(flag.name)] = n
    return out


def episode_audit(
    ep: AuditedEpisode,
    space: GoalSpace,
    success_space: GoalSpace,
    split: Split,
    relabel: Mapping[str, Any],
) -> EpisodeAudit:
    """The numbers of one episode; success with ``success_space``, recompute with ``space``."""
    desired = np.broadcast_to(ep.requested_goal, ep.next_achieved_goal.shape)
    distance = success_space.distance(ep.next_achieved_goal, desired)
    requested = bool(success_space.is_success(ep.next_achieved_goal[-1], ep.requested_goal))
    recorded_reward_ok = ep.reward == space.compute_reward(ep.next_achieved_goal, desired)
    success_ok = ep.is_success == space.is_success(ep.next_achieved_goal, desired)
    recomputed_end = bool(space.is_success(ep.next_achieved_goal[-1], ep.requested_goal))
    final = ep.next_achieved_goal[-1]
    # The training strategy applied to the final transition: future (inclusive) and
    # final both draw the final next-achieved goal itself, episode any of them.
    relabelled = ep.next_achieved_goal if relabel.get("strategy") == "episode" else final[None, :]
    hindsight = float(
        success_space.is_success(np.broadcast_to(final, relabelled.shape), relabelled).mean()
    )
    return EpisodeAudit(
        bag=str(ep.bag),
        episode_id=ep.episode_id,
        split=split,
        status=ep.status,
        steps=len(ep.reward),
        desired_goal=ep.requested_goal.tolist(),
        final_achieved_goal=final.tolist(),
        final_distance=float(distance[-1]),
        min_distance=float(distance.min()),
        requested_success=requested,
        recorded_success=ep.end_success,
        hindsight_success=hindsight,
        reward_mismatches=int(np.count_nonzero(~recorded_reward_ok)),
        success_flag_mismatches=int(np.count_nonzero(~success_ok)),
        end_success_disagrees=ep.end_success is not None and ep.end_success != recomputed_end,
        safety_cost=float(ep.safety_cost.sum(dtype=np.float64)),
        interventions=int(np.count_nonzero(ep.safety_flags)),
        flag_counts=flag_counts(ep.safety_flags),
        end_reason=ep.end_reason,
        note=ep.note,
    )


# -- over episodes ------------------------------------------------------------------------


def requested_success(audits: list[EpisodeAudit]) -> dict[str, Rate]:
    """Requested-goal success of evaluation, training and all complete episodes, and of all
    episodes with aborted ones counted as failures."""

    def rate(sel: Iterable[EpisodeAudit]) -> Rate:
        chosen = list(sel)
        return Rate.of(sum(a.counted_success for a in chosen), len(chosen))

    complete = [a for a in audits if a.status == "complete"]
    return {
        "eval": rate(a for a in complete if a.split == "eval"),
        "train": rate(a for a in complete if a.split == "train"),
        "all": rate(complete),
        "all_counting_aborted_as_failures": rate(audits),
    }


@dataclass(frozen=True)
class Grid:
    """Coverage cells of edge ``cell`` anchored at the region's lower corner.

    Goals inside the region fall in one of its ``shape`` cells (a goal on the upper
    face in the last one); goals outside get cells beyond the grid.
    """

    region: GoalRegion
    cell: float

    @property
    def low(self) -> NDArray[np.float64]:
        return np.asarray(self.region.low, dtype=np.float64)

    @property
    def shape(self) -> NDArray[np.int64]:
        extent = np.asarray(self.region.high, dtype=np.float64) - self.low
        return np.maximum(1, np.ceil(extent / self.cell - 1e-9)).astype(np.int64)

    def index(self, goals: NDArray[np.float64]) -> NDArray[np.int64]:
        """(N, dim) integer cells of (N, dim) goals."""
        cells = np.floor((goals - self.low) / self.cell).astype(np.int64)
        inside = self.region.contains(goals, margin=1e-9)
        cells[inside] = np.clip(cells[inside], 0, self.shape - 1)
        return cells

    def cells(self, goals: NDArray[np.float64]) -> set[tuple[int, ...]]:
        return {tuple(c) for c in self.index(goals).tolist()}


def coverage(eps: list[AuditedEpisode], grid: Grid, source: str, units: str) -> dict[str, Any]:
    """Cells of the goal region and of the desired goals that some achieved goal reached."""
    shape = grid.shape
    out: dict[str, Any] = {
        "cell_size": grid.cell,
        "units": units,
        "region_low": list(grid.region.low),
        "region_high": list(grid.region.high),
        "region_source": source,
        "grid_shape": shape.tolist(),
        "region_cells": int(np.prod(shape)),
        "region_cells_reached": 0,
        "region_cell_fraction": math.nan,
        "desired_cells": 0,
        "desired_cells_reached": 0,
        "desired_cell_fraction": math.nan,
        "achieved_goals": 0,
        "rule": "a cell is reached when an achieved goal (before or after any step of any "
        "audited episode) lies in it",
    }
    if not eps:
        return out
    achieved = np.concatenate(
        [np.concatenate([e.achieved_goal, e.next_achieved_goal]) for e in eps]
    )
    reached = grid.cells(achieved)
    inside = grid.cells(achieved[grid.region.contains(achieved, margin=1e-9)])
    desired = grid.cells(np.stack([e.requested_goal for e in eps]))
    hit = len(desired & reached)
    out.update(
        region_cells_reached=len(inside),
        region_cell_fraction=len(inside) / out["region_cells"],
        desired_cells=len(desired),
        desired_cells_reached=hit,
        desired_cell_fraction=hit / len(desired),
        achieved_goals=len(achieved),
    )
    return out


def _original_positive_share(eps: list[AuditedEpisode], space: GoalSpace) -> float:
    """Share of recorded transitions that succeed for their requested goal."""
    steps = sum(len(e.reward) for e in eps)
    if not steps:
        return math.nan
    hits = 0
    for e in eps:
        desired = np.broadcast_to(e.requested_goal, e.next_achieved_goal.shape)
        hits += int(np.count_nonzero(space.is_success(e.next_achieved_goal, desired)))
    return hits / steps


def hindsight(
    eps: list[AuditedEpisode],
    audits: list[EpisodeAudit],
    space: GoalSpace,
    relabel: Mapping[str, Any],
    log: TrainingLogSummary | None,
) -> dict[str, Any]:
    """The hindsight figures (NOT results), from the bags and from the training log."""
    strategy = str(relabel.get("strategy") or "future")
    positive = [hindsight_positive_fraction(space, e.next_achieved_goal, strategy) for e in eps]
    return {
        "what": "NOT results: goals relabelled to achieved goals of the same episode succeed "
        "trivially often; requested-goal success is the result",
        "episode_success": nanmean([a.hindsight_success for a in audits]),
        "episode_success_rule": "success of each episode's final step for a goal relabelled "
        "by the training strategy (future/final: its own final achieved goal, so 1 by "
        "construction; episode: the share of its achieved goals), averaged over episodes",
        "positive_fraction_relabelled_bags": nanmean(positive),
        "positive_fraction_original_bags": _original_positive_share(eps, space),
        "strategy_used": strategy,
        "strategy_source": relabel.get("source"),
        "hindsight_ratio_training": log.hindsight_ratio_mean if log else None,
        "hindsight_ratio_configured": relabel.get("probability"),
        "positive_fraction_relabelled_training": log.positive_fraction_relabelled_mean
        if log
        else None,
        "positive_fraction_original_training": log.positive_fraction_original_mean if log else None,
    }


def safety(audits: list[EpisodeAudit]) -> dict[str, Any]:
    """Safety cost per episode and interventions by flag."""
    flags: Counter[str] = Counter()
    for a in audits:
        flags.update(a.flag_counts)
    costs = [a.safety_cost for a in audits]
    return {
        "total_cost": float(sum(costs)),
        "mean_cost_per_episode": nanmean(costs),
        "max_cost_per_episode": max(costs) if costs else math.nan,
        "episodes_with_interventions": sum(1 for a in audits if a.interventions),
        "intervention_steps": sum(a.interventions for a in audits),
        "steps_by_flag": dict(sorted(flags.items())),
        "aborted": sum(1 for a in audits if a.status == "aborted"),
    }


def sensing(
    eps: list[AuditedEpisode], space: GoalSpace, splits: dict[Any, str]
) -> dict[str, Any]:
    """Honest sensing: how close calls were, how often sensing noise changed a verdict, and
    (randomised simulation) success by physics parameter."""
    tol = float(space.tolerance)
    margins, flips, with_truth = [], 0, 0
    flips_by_split: Counter[str] = Counter()
    for e in eps:
        if e.status != "complete" or not len(e.next_achieved_goal):
            continue
        measured = e.next_achieved_goal[-1]
        margins.append(tol - float(space.distance(measured, e.requested_goal)))
        if e.true_next_achieved_goal is not None and len(e.true_next_achieved_goal):
            with_truth += 1
            truth = e.true_next_achieved_goal[-1]
            if bool(space.is_success(measured, e.requested_goal)) != bool(space.is_success(truth, e.requested_goal)):
                flips += 1
                flips_by_split[splits.get((str(e.bag), e.episode_id), "?")] += 1
    close = [m for m in margins if abs(m) < 0.1 * tol]
    return {
        "episodes": len(margins),
        "margin_min": min(margins) if margins else math.nan,
        "margin_median": float(np.median(margins)) if margins else math.nan,
        "close_calls": len(close),
        "close_call_band": 0.1 * tol,
        "episodes_with_true_state": with_truth,
        "verdict_flips": flips,
        "verdict_flips_by_split": dict(flips_by_split),
        "by_sim_params": _success_by_params(eps, space),
    }


def _success_by_params(eps: list[AuditedEpisode], space: GoalSpace) -> dict[str, Any]:
    """For each parameter that varies across episodes: success below and above its median."""
    rows = [(e.sim_params, bool(space.is_success(e.next_achieved_goal[-1], e.requested_goal)))
            for e in eps if e.sim_params and e.status == "complete" and len(e.next_achieved_goal)]  # fmt: skip
    out: dict[str, Any] = {}
    if len(rows) < 4:
        return out
    names = sorted({k for params, _ in rows for k, v in params.items() if isinstance(v, int | float)})
    for name in names:
        values = np.array([float(p.get(name) or 0.0) for p, _ in rows])
        if np.ptp(values) == 0:
            continue
        wins = np.array([ok for _, ok in rows])
        cut = float(np.median(values))
        low, high = values <= cut, values > cut
        out[name] = {
            "median": cut,
            "success_low": float(wins[low].mean()) if low.any() else math.nan,
            "success_high": float(wins[high].mean()) if high.any() else math.nan,
            "n_low": int(low.sum()),
            "n_high": int(high.sum()),
        }
    return out


def _recompute_examples(
    eps: list[AuditedEpisode], audits: list[EpisodeAudit], space: GoalSpace
) -> list[dict[str, Any]]:
    """Up to 10 mismatching steps (3 per episode): recorded against recomputed reward."""
    examples: list[dict[str, Any]] = []
    for ep, a in zip(eps, audits):
        if not a.reward_mismatches or len(examples) >= 10:
            continue
        desired = np.broadcast_to(ep.requested_goal, ep.next_achieved_goal.shape)
        expected = space.compute_reward(ep.next_achieved_goal, desired)
        for i in np.flatnonzero(ep.reward != expected)[:3]:
            examples.append(
                {
                    "bag": a.bag,
                    "episode_id": a.episode_id,
                    "step": int(i),
                    "recorded": float(ep.reward[i]),
                    "recomputed": float(expected[i]),
                }
            )
    return examples


def recompute(
    eps: list[AuditedEpisode], audits: list[EpisodeAudit], space: GoalSpace
) -> dict[str, Any]:
    """The reward-recompute test: every recorded reward, success flag and END success."""
    steps = sum(a.steps for a in audits)
    mismatches = sum(a.reward_mismatches for a in audits)
    flag_mismatches = sum(a.success_flag_mismatches for a in audits)
    end_disagreements = [
        {
            "bag": a.bag,
            "episode_id": a.episode_id,
            "recorded": a.recorded_success,
            "recomputed": not a.recorded_success,
        }
        for a in audits
        if a.end_success_disagrees
    ]
    passed = not mismatches and not flag_mismatches and not end_disagreements
    status = (
        f"PASS ({steps} steps)"
        if passed
        else f"FAIL ({mismatches} reward mismatches, {flag_mismatches} is_success mismatches, "
        f"{len(end_disagreements)} END-success disagreements in {steps} steps)"
    )
    return {
        "status": "PASS" if passed else "FAIL",
        "status_line": f"reward-recompute test: {status}",
        "steps": steps,
        "reward_mismatches": mismatches,
        "success_flag_mismatches": flag_mismatches,
        "end_success_disagreements": end_disagreements,
        "examples": _recompute_examples(eps, audits, space),
        "function": f"GoalSpace({space.name!r}, tolerance={space.tolerance}).compute_reward("
        "next_achieved_goal, desired_goal)",
    }


def read_info(report: ValidationReport, rebuilt: int) -> dict[str, Any]:
    """What the reader read and left out, for the report."""
    return {
        "summary": report.summary_line(),
        "episodes_read": report.episodes_read,
        "left_out": dict(report.left_out),
        "audited_from_raw_messages": rebuilt,
        "bags_needing_recovery": [str(b.path) for b in report.bags if b.needs_recovery],
        "problems": [str(p) for p in report.problems[:50]],
    }
