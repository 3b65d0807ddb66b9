"""The audit's findings: one stable code per invariant an evaluation relies on.

Each code has a severity - ``failed`` (an invariant is violated: the number is wrong or
cannot be the evaluation it claims to be), ``unverified`` (something needed to verify it
is missing: bags written before provenance was recorded, no artefact) or ``warning``
(accounted for, shown, not a violation) - what it means and how to fix it. The verdict of
an audit is ``failed`` if any finding failed, else ``unverified`` if any is unverified,
else ``verified``. README.md ("Audit") lists the codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from her_recorder.audit.model import Finding

Severity = Literal["failed", "unverified", "warning"]
Verdict = Literal["verified", "unverified", "failed"]


@dataclass(frozen=True)
class Code:
    """What a finding code means and what to do about it."""

    severity: Severity
    meaning: str
    fix: str


RERUN = "re-run the evaluation as planned (her demo, her sim --split eval, or the ROS nodes with split heldout)"

CODES: dict[str, Code] = {
    # -- nothing to audit ------------------------------------------------------------
    "AUDIT_NO_USABLE_EPISODE": Code(
        "failed",
        "no evaluation episode could be audited to its end: there is no result to report",
        "check the bags with `her bag check`; " + RERUN,
    ),
    "EVAL_NONE": Code(
        "unverified",
        "the bags hold no evaluation episode (held-out requested goals); the success of "
        "training episodes is not a result",
        "audit the bags of an evaluation (split eval/heldout)",
    ),
    # -- the plan ----------------------------------------------------------------------
    "EVAL_NO_PLAN": Code(
        "unverified",
        "evaluation episodes in bags without an evaluation plan (written before provenance was "
        "recorded, or by another writer): their goals, count and policy cannot be re-derived",
        "record the evaluation again with this version (the plan goes into every bag)",
    ),
    "EVAL_PROVENANCE_MISSING": Code(
        "unverified",
        "episodes whose messages lack the split, stream index or acting policy (an older "
        "message definition): which goal and which policy they had cannot be checked",
        "record the evaluation again with this version",
    ),
    "EVAL_PLAN_MALFORMED": Code(
        "failed",
        "a bag's evaluation plan cannot be read: it was edited or damaged",
        "use the bags as the recorder wrote them",
    ),
    "EVAL_PLANS_DIFFER": Code(
        "failed",
        "the evaluation bags carry different plans: their episodes are not one evaluation",
        "audit each evaluation (one plan) separately",
    ),
    "EVAL_OPEN_ENDED": Code(
        "unverified",
        "the evaluation plan names no planned episode count: whether every planned episode is "
        "accounted for cannot be checked",
        "plan the number of episodes (--episodes, --eval-goals, num_episodes)",
    ),
    "EVAL_PLAN_TASK_MISMATCH": Code(
        "failed",
        "the plan's task is not registered, or differs from the bag's or an episode's task",
        "record each task's evaluation with its own plan",
    ),
    "EVAL_GOAL_SPACE_MISMATCH": Code(
        "failed",
        "the goal space in the bags (plan, metadata, episodes, desired-goal messages) is not "
        "the one the task registers (name, dimension, frame)",
        "record with the task's registered goal space",
    ),
    "EVAL_UNITS_MISMATCH": Code(
        "failed",
        "the units in the bags differ from the goal-space registry's: distances and the "
        "tolerance mean something else",
        "record in the registered units",
    ),
    "EVAL_TOLERANCE_MISMATCH": Code(
        "failed",
        "the success tolerance in the bags (or the artefact's) differs from the task's "
        "registered tolerance: the success rate is not the task's",
        "evaluate with the registered tolerance (tolerance_m 0 = the task's)",
    ),
    "AUDIT_TOLERANCE_OVERRIDDEN": Code(
        "unverified",
        "the audit measured success with a tolerance given on its command line, not the "
        "registered one: the headline is not the task's requested-goal success",
        "audit without --tolerance",
    ),
    "EVAL_REGION_MISMATCH": Code(
        "failed",
        "the plan's goal region differs from the task's registered region (or the --region "
        "given): the goals come from another distribution",
        "evaluate on the task's registered goal region",
    ),
    "EVAL_SAMPLER_MISMATCH": Code(
        "failed",
        "the plan splits goal cells with other settings (cell size, heldout_every) than the "
        "training: held-out goals may lie in training cells",
        "use the same GoalSampler settings for training and evaluation",
    ),
    "EVAL_EXPLORING_POLICY": Code(
        "failed",
        "the evaluated policy acted with exploration noise: the success is not the policy's",
        "evaluate without random_eps and noise (--noise 0)",
    ),
    # -- the policy --------------------------------------------------------------------
    "EVAL_NO_ARTEFACT": Code(
        "unverified",
        "the plan names an artefact, but none was given to the audit: that the audited "
        "policy acted cannot be checked",
        "pass the evaluated artefact: her audit ... --artefact DIR",
    ),
    "EVAL_ARTEFACT_MISMATCH": Code(
        "failed",
        "the artefact given to the audit is not the policy the plan names (hash, task or goal space)",
        "audit with the artefact that was evaluated, or evaluate this one",
    ),
    "EVAL_CONFIG_MISMATCH": Code(
        "failed",
        "an evaluation bag's recorded configuration names another policy than its plan (the "
        "artefact hash or path it names, or the training config hash, is another run's)",
        "record the evaluation of one artefact with its own config (her eval --record, her demo); "
        "audit with that artefact",
    ),
    "EVAL_TRAINED_ON_EVAL": Code(
        "failed",
        "the evaluated artefact trained on evaluation episodes or goals: an evaluation episode "
        "(observations, actions and goal) or its requested goal is in the artefact's training data",
        "train without the evaluation's episodes (no --allow-eval-episodes on evaluation bags), "
        "or evaluate on goals it never saw (another --heldout-seed / stream seed)",
    ),
    "EVAL_TRAINING_DATA_UNKNOWN": Code(
        "unverified",
        "the artefact records no training data (written before artefacts did): whether it "
        "trained on the evaluation's episodes or goals cannot be checked",
        "retrain with this version (artefacts carry training_data.npz), or audit with --allow-unverified",
    ),
    "EVAL_POLICY_MISMATCH": Code(
        "failed",
        "steps of evaluation episodes were produced by another policy than the plan's",
        RERUN + " with one policy",
    ),
    # -- each episode ------------------------------------------------------------------
    "EVAL_SPLIT_MISMATCH": Code(
        "failed",
        "an episode's START split differs from its bag's plan (a training episode among the "
        "evaluation episodes, or the other way round)",
        "record training and evaluation episodes in separate bags, each with its plan",
    ),
    "EVAL_INDEX_MISSING": Code(
        "failed",
        "an evaluation episode names no index in the planned goal stream (a goal asked for by hand?)",
        RERUN,
    ),
    "EVAL_INDEX_OUT_OF_PLAN": Code(
        "failed",
        "an evaluation episode's stream index is beyond the planned episodes",
        RERUN,
    ),
    "EVAL_INDEX_DUPLICATE": Code(
        "failed",
        "two evaluation episodes have the same stream index: a goal was evaluated twice (a "
        "re-run or a copied episode); one of them could have been chosen",
        RERUN + " in a fresh session",
    ),
    "EVAL_INDEX_GAP": Code(
        "failed",
        "planned stream indices below the highest recorded one have no episode: episodes "
        "were deleted or never recorded",
        "keep every planned episode: aborted and discarded ones count as failures",
    ),
    "EVAL_PLANNED_NOT_ACCOUNTED": Code(
        "failed",
        "fewer episodes than planned are in the bags (the last ones are missing): the "
        "evaluation was cut short, or episodes were deleted",
        RERUN + " to its end, or audit all of its bags",
    ),
    "EVAL_EPISODE_INCOMPLETE": Code(
        "failed",
        "an evaluation episode has a START and no end (the recording stopped mid-episode)",
        "recover the bag (her bag recover) and " + RERUN,
    ),
    "EVAL_END_WITHOUT_REASON": Code(
        "failed",
        "an aborted or discarded evaluation episode gives no reason",
        "abort and discard episodes with their reason",
    ),
    "EVAL_EPISODE_INVALID": Code(
        "failed",
        "the reader rejected an evaluation episode (duplicate events, missing steps, bad "
        "values): its result cannot be measured",
        "see `her bag check` on the bag; " + RERUN,
    ),
    "EVAL_GOAL_NOT_FROM_STREAM": Code(
        "failed",
        "an evaluation episode's requested goal is not the goal the plan's held-out stream "
        "gives at its index",
        "evaluate on the plan's goals, in order (never edit requested goals)",
    ),
    "EVAL_GOAL_NOT_HELDOUT": Code(
        "failed",
        "an evaluation goal lies in a training cell: it may have been trained on",
        "evaluate on held-out goals only",
    ),
    "EVAL_GOAL_IN_TRAINING_DATA": Code(
        "failed",
        "an evaluation goal is the requested goal of a training episode in the audited bags",
        "evaluate on held-out goals only",
    ),
    "EVAL_GOAL_OUTSIDE_REGION": Code(
        "failed",
        "an evaluation goal lies outside the task's goal region",
        "evaluate on goals of the task's region",
    ),
    "EVAL_VALUES_IMPLAUSIBLE": Code(
        "failed",
        "goal values or the tolerance are physically implausible for the units (degrees where "
        "radians, centimetres where metres, beyond the arm's reach)",
        "record in the goal space's units",
    ),
    "EVAL_GOAL_EQUALS_ACHIEVED": Code(
        "failed",
        "an evaluation episode's requested goal equals one of its own achieved goals (to "
        "float precision): a hindsight relabel passed off as a requested goal",
        "never relabel requested goals; " + RERUN,
    ),
    "EVAL_GOAL_CHANGED": Code(
        "failed",
        "an evaluation episode's requested goal changes during the episode (steps or "
        "desired-goal messages differ from the START)",
        "keep the requested goal fixed for the whole episode; " + RERUN,
    ),
    "EVAL_DUPLICATE_TRAJECTORY": Code(
        "failed",
        "two evaluation episodes have identical trajectories: one was copied",
        RERUN,
    ),
    "EVAL_BAG_COUNTS_MISMATCH": Code(
        "failed",
        "a bag's episode counts (written when it was closed) differ from the episodes it holds: "
        "episodes were added or removed afterwards",
        "use the bags as the recorder wrote them",
    ),
    "RECOMPUTE_FAILED": Code(
        "failed",
        "recorded rewards, success flags or END success differ from the goal space's own "
        "compute_reward/is_success",
        "record rewards with the goal space's function (ARCHITECTURE.md rule 2)",
    ),
    "TRAIN_GOAL_IN_HELDOUT_CELL": Code(
        "failed",
        "a training episode's requested goal lies in a held-out cell: training saw the "
        "evaluation's goal distribution",
        "draw training goals from the training stream only",
    ),
    # -- accounted, shown --------------------------------------------------------------
    "EVAL_EPISODES_NOT_COMPLETED": Code(
        "warning",
        "evaluation episodes were aborted or discarded (with their reasons): they count as "
        "failures in the headline",
        "look at their reasons (safety, operator); nothing to fix if they are right",
    ),
}
"""Every finding code the audit can report."""


def finding(
    code: str,
    message: str,
    *,
    bags: Iterable[str] = (),
    episodes: Iterable[tuple[str, int]] = (),
) -> Finding:
    """A :class:`Finding` of ``code`` with its severity, meaning and fix from :data:`CODES`."""
    info = CODES[code]
    eps = sorted(set(episodes))
    return Finding(
        code=code,
        severity=info.severity,
        message=message,
        meaning=info.meaning,
        fix=info.fix,
        bags=sorted(set(bags) | {bag for bag, _ in eps}),
        episodes=[[bag, episode_id] for bag, episode_id in eps],
    )


def verdict(findings: Iterable[Finding]) -> Verdict:
    """``failed`` if any finding failed, else ``unverified`` if any is, else ``verified``."""
    severities = {f.severity for f in findings}
    if "failed" in severities:
        return "failed"
    if "unverified" in severities:
        return "unverified"
    return "verified"
