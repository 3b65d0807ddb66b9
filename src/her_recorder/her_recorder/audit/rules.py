"""The failure labels of the audit: one per failed episode, by the first rule of :data:`RULES` that fires.

Each rule's thresholds are the constants below; the label carries the numbers
that fired it (its evidence), so a reader of the report can check the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from her_goals import GoalRegion, GoalSpace
from her_goals.tasks import GOAL_FIELDS
from her_recorder.audit.episodes import AuditedEpisode
from her_recorder.audit.metrics import Grid
from her_recorder.audit.model import EpisodeAudit, FailureLabel

NEAR_FACTOR = 2.0
"""Exploration failure: the achieved goal never came within NEAR_FACTOR x tolerance."""
RARE_EPISODES = 2
"""Exploration failure: fewer than this many other training episodes reached the goal's cell."""
STATIC_FRACTION = 0.1
"""Goal-representation failure: the achieved goal moved less than this x tolerance."""
MEASURED_FIELD = GOAL_FIELDS
"""Observation field (her_mujoco layout names) that each goal space's achieved goal measures."""
OBJECT_SPACES = frozenset({"object_position", "joint_position"})
"""Goal spaces whose achieved goal is an object the arm must first reach (a block, a drawer)."""
REACH_FIELD = {"object_position": "object_pos", "joint_position": "handle_pos"}
"""Observation field (a position, m) the tool must come near to move an object space's goal."""

LABEL_REWARD = "reward-recompute bug"
LABEL_MISMATCH = "evaluation-distribution mismatch"
LABEL_REPRESENTATION = "goal-representation failure"
LABEL_EXPLORATION = "exploration failure"
LABEL_UNCLASSIFIED = "unclassified"
LABELS = (LABEL_REWARD, LABEL_MISMATCH, LABEL_REPRESENTATION, LABEL_EXPLORATION, LABEL_UNCLASSIFIED)

RULES: dict[str, str] = {
    LABEL_REWARD: (
        "the episode's recorded rewards or is_success flags differ from the goal space's "
        "compute_reward/is_success(next_achieved_goal, desired_goal) on at least one step, "
        "or its END success differs from is_success(final achieved goal, desired goal)"
    ),
    LABEL_MISMATCH: (
        "the desired goal lies outside the task's goal region (bag config goal_region or "
        "--region), or an evaluation episode's desired goal lies outside the box of the "
        "training episodes' desired goals grown by one tolerance"
    ),
    LABEL_REPRESENTATION: (
        "the achieved goal disagrees with the observation field it measures (tcp_pos for "
        "ee_position, object_pos for object_position, drawer_pos for joint_position) by more "
        f"than the tolerance; or it moved less than {STATIC_FRACTION} x tolerance over the "
        "episode while the robot moved (tcp_pos moved >= tolerance and, for object goals, came "
        f"within {NEAR_FACTOR} x tolerance of the object or the drawer's handle_pos; without an "
        "observation layout: the "
        "observation vector changed by >= tolerance, not applied to object goals)"
    ),
    LABEL_EXPLORATION: (
        f"no achieved goal of the episode came within {NEAR_FACTOR} x tolerance of the "
        f"desired goal, and fewer than {RARE_EPISODES} other training episodes reached the "
        "desired goal's coverage cell"
    ),
    LABEL_UNCLASSIFIED: (
        "none of the rules above fired (e.g. a near miss in a well-covered cell): a "
        "learning or precision failure the four labels do not describe"
    ),
}
"""The rule of each failure label; the first that fires, in this order, is the label."""


@dataclass
class LabelContext:
    """What the labelling rules look at besides the episode itself."""

    space: GoalSpace
    tolerance: float
    region: GoalRegion | None
    train_box: tuple[NDArray[np.float64], NDArray[np.float64]] | None
    fields: dict[str, tuple[int, int]]
    grid: Grid
    cell_episodes: dict[tuple[int, ...], set[int]]
    """Cell -> indices of training episodes whose achieved goals reached it."""


def training_cells(
    eps: list[AuditedEpisode], training: list[int], grid: Grid
) -> dict[tuple[int, ...], set[int]]:
    """Cell -> indices (into ``eps``) of the ``training`` episodes whose achieved goals reached it."""
    cell_episodes: dict[tuple[int, ...], set[int]] = {}
    for i in training:
        goals = np.concatenate([eps[i].achieved_goal, eps[i].next_achieved_goal])
        for cell in grid.cells(goals):
            cell_episodes.setdefault(cell, set()).add(i)
    return cell_episodes


def label_failure(
    index: int, ep: AuditedEpisode, audit: EpisodeAudit, ctx: LabelContext
) -> FailureLabel:
    """The first rule of :data:`RULES` that fires for a failed episode (``index`` into the
    audited episodes, so it does not count itself as another episode in its cell)."""
    for rule in (_reward_rule, _mismatch_rule):
        label = rule(ep, audit, ctx)
        if label is not None:
            return label
    rep = representation_evidence(ep, ctx)
    if rep is not None:
        return FailureLabel(LABEL_REPRESENTATION, RULES[LABEL_REPRESENTATION], rep)
    return _exploration_rule(index, ep, audit, ctx)


def _reward_rule(ep: AuditedEpisode, audit: EpisodeAudit, ctx: LabelContext) -> FailureLabel | None:
    if not (
        audit.reward_mismatches or audit.success_flag_mismatches or audit.end_success_disagrees
    ):
        return None
    return FailureLabel(
        LABEL_REWARD,
        RULES[LABEL_REWARD],
        {
            "reward_mismatches": audit.reward_mismatches,
            "success_flag_mismatches": audit.success_flag_mismatches,
            "end_success_recorded": audit.recorded_success,
            "end_success_recomputed": audit.requested_success,
            "steps": audit.steps,
        },
    )


def _mismatch_rule(
    ep: AuditedEpisode, audit: EpisodeAudit, ctx: LabelContext
) -> FailureLabel | None:
    goal = ep.requested_goal
    if ctx.region is not None and not bool(ctx.region.contains(goal, margin=1e-9)):
        return FailureLabel(
            LABEL_MISMATCH,
            RULES[LABEL_MISMATCH],
            {
                "desired_goal": goal.tolist(),
                "region_low": list(ctx.region.low),
                "region_high": list(ctx.region.high),
            },
        )
    if audit.split == "eval" and ctx.train_box is not None:
        lo, hi = ctx.train_box
        tol = ctx.tolerance
        if ((goal < lo - tol) | (goal > hi + tol)).any():
            return FailureLabel(
                LABEL_MISMATCH,
                RULES[LABEL_MISMATCH],
                {
                    "desired_goal": goal.tolist(),
                    "training_desired_low": lo.tolist(),
                    "training_desired_high": hi.tolist(),
                    "grown_by": tol,
                },
            )
    return None


def _exploration_rule(
    index: int, ep: AuditedEpisode, audit: EpisodeAudit, ctx: LabelContext
) -> FailureLabel:
    """Exploration failure if the goal was never approached in a rarely reached cell,
    else unclassified; both with the same evidence."""
    tol = ctx.tolerance
    cell = next(iter(ctx.grid.cells(ep.requested_goal[None, :])))
    others = len(ctx.cell_episodes.get(cell, set()) - {index})
    evidence = {
        "min_distance": audit.min_distance,
        "near_threshold": NEAR_FACTOR * tol,
        "desired_goal_cell": list(cell),
        "other_training_episodes_in_cell": others,
    }
    if audit.min_distance > NEAR_FACTOR * tol and others < RARE_EPISODES:
        return FailureLabel(LABEL_EXPLORATION, RULES[LABEL_EXPLORATION], evidence)
    return FailureLabel(LABEL_UNCLASSIFIED, RULES[LABEL_UNCLASSIFIED], evidence)


def _field(
    obs: NDArray[np.float64], name: str | None, ctx: LabelContext, size: int | None = None
) -> NDArray[np.float64] | None:
    """Observation columns of layout field ``name``, if the layout has it with ``size`` columns
    (default: the goal's size)."""
    if name is None or name not in ctx.fields:
        return None
    lo, hi = ctx.fields[name]
    if hi > obs.shape[1] or hi - lo != (ctx.space.dim if size is None else size):
        return None
    return obs[:, lo:hi]


def representation_evidence(ep: AuditedEpisode, ctx: LabelContext) -> dict[str, Any] | None:
    """The goal-representation rule's numbers if it fires for ``ep``, else None."""
    tol = ctx.tolerance
    measured = MEASURED_FIELD.get(ctx.space.name)
    obs = ep.observation
    seen = _field(obs, measured, ctx)
    if seen is not None:
        gap = float(np.max(np.linalg.norm(ep.achieved_goal - seen, axis=-1)))
        if gap > tol:
            return {"observation_field": measured, "max_disagreement": gap, "tolerance": tol}
    moved = float(np.max(np.linalg.norm(ep.next_achieved_goal - ep.achieved_goal[0], axis=-1)))
    if moved >= STATIC_FRACTION * tol:
        return None
    evidence: dict[str, Any] = {
        "achieved_goal_moved": moved,
        "static_threshold": STATIC_FRACTION * tol,
    }
    tcp = _field(obs, "tcp_pos", ctx, size=3)
    if tcp is not None:
        return _robot_moved(tcp, obs, evidence, ctx)
    if ctx.space.name in OBJECT_SPACES:
        return None  # without tcp and object positions, an untouched object is exploration
    obs_moved = float(np.max(np.linalg.norm(obs - obs[0], axis=-1)))
    evidence["observation_moved"] = obs_moved
    return evidence if obs_moved >= tol else None


def _robot_moved(
    tcp: NDArray[np.float64],
    obs: NDArray[np.float64],
    evidence: dict[str, Any],
    ctx: LabelContext,
) -> dict[str, Any] | None:
    """``evidence`` if the tool moved (and, for object goals, reached the object), else None."""
    tol = ctx.tolerance
    tcp_moved = float(np.max(np.linalg.norm(tcp - tcp[0], axis=-1)))
    evidence["tcp_moved"] = tcp_moved
    if tcp_moved < tol:
        return None
    if ctx.space.name in OBJECT_SPACES:
        obj = _field(obs, REACH_FIELD.get(ctx.space.name), ctx, size=3)
        if obj is None:
            return None
        closest = float(np.min(np.linalg.norm(tcp - obj, axis=-1)))
        evidence["tcp_closest_to_object"] = closest
        if closest > NEAR_FACTOR * tol:
            return None
    return evidence
