"""The audit's report as data: success rates, per-episode audits, failure labels, the log summary.

:class:`AuditReport` is what :func:`~her_recorder.audit.run.run_audit` returns;
:meth:`AuditReport.to_json` is ``report.json``; ``report.md`` is rendered from it outside the
model, by :func:`her_recorder.audit.report.markdown`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from her_goals.config import to_plain
from her_goals.stats import wilson_interval

Split = Literal["eval", "train", "unknown"]
"""Which episodes an episode belongs to: held-out evaluation goals, training, or not recorded."""


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_null(v) for v in value]
    return value


def nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


@dataclass(frozen=True)
class Rate:
    """A success rate over episodes with its Wilson 95% interval (NaN rate when n = 0)."""

    successes: int
    n: int
    rate: float
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, successes: int, n: int) -> Rate:
        lo, hi = wilson_interval(successes, n)
        return cls(successes, n, successes / n if n else math.nan, lo, hi)

    def text(self) -> str:
        if not self.n:
            return "no episodes"
        return f"{self.rate:.3f} ({self.successes}/{self.n}; 95% CI {self.ci_low:.3f}-{self.ci_high:.3f})"


@dataclass(frozen=True)
class FailureLabel:
    """Why one failed episode failed: one label, its rule, and the numbers that fired it."""

    label: str
    rule: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One thing the audit found about the evaluation, under a stable code
    (:data:`her_recorder.audit.findings.CODES`)."""

    code: str
    severity: str
    """``failed``, ``unverified`` or ``warning``."""
    message: str
    """What was found, with the numbers."""
    meaning: str
    """What it means for the result."""
    fix: str
    """What to do."""
    bags: list[str]
    episodes: list[list[Any]]
    """``[bag, episode_id]`` of every episode it concerns."""

    def line(self) -> str:
        """``FAILED EVAL_GOAL_NOT_FROM_STREAM: message``."""
        return f"{self.severity.upper()} {self.code}: {self.message}"


@dataclass
class EpisodeAudit:
    """The audit of one episode."""

    bag: str
    episode_id: int
    split: Split
    """``eval`` (held-out goals), ``train`` (exploration) or ``unknown`` (not recorded)."""
    status: Literal["complete", "aborted"]
    steps: int
    desired_goal: list[float]
    final_achieved_goal: list[float]
    final_distance: float
    """Distance of the final achieved goal to the requested goal, in the goal space's units."""
    min_distance: float
    requested_success: bool
    """is_success(final achieved goal, requested goal) with the audited tolerance."""
    recorded_success: bool | None
    """Success the END event recorded (None for an aborted episode)."""
    hindsight_success: float
    """Success of the final step for a goal relabelled by the training strategy (NOT a result):
    1 by construction for ``future`` and ``final`` (the goal is the final achieved goal
    itself); for ``episode``, the share of the episode's achieved goals it is within
    tolerance of."""
    reward_mismatches: int
    success_flag_mismatches: int
    end_success_disagrees: bool
    safety_cost: float
    interventions: int
    """Steps with any safety flag set."""
    flag_counts: dict[str, int]
    end_reason: str
    failure: FailureLabel | None = None
    note: str = ""

    @property
    def counted_success(self) -> bool:
        """Success that counts: requested-goal success of a complete episode."""
        return self.requested_success and self.status == "complete"


@dataclass
class TrainingLogSummary:
    """What the trainer's log says about hindsight, per update window."""

    path: str
    records: int
    hindsight_ratio_mean: float
    hindsight_ratio_last: float
    positive_fraction_original_mean: float
    positive_fraction_relabelled_mean: float
    relabel_strategy: str | None
    replay_k: float | None
    relabel_prob: float | None
    step: list[float] = field(default_factory=list)
    hindsight_ratio: list[float] = field(default_factory=list)
    positive_fraction_original: list[float] = field(default_factory=list)
    positive_fraction_relabelled: list[float] = field(default_factory=list)
    requested_success: list[float] = field(default_factory=list)
    """The trainer's own periodic requested-goal evaluations, where it logged them."""


@dataclass
class AuditReport:
    """Everything :func:`run_audit` found; :meth:`to_json` is ``report.json``."""

    bags: list[str]
    config_hashes: list[str]
    artefact_hash: str
    goal_space: dict[str, Any]
    tolerance: float
    """Tolerance requested-goal success was measured with, in the goal space's units."""
    tasks: list[str]
    seeds: dict[str, Any]
    requested_success: dict[str, Rate]
    """``eval`` (held-out goals, when recorded), ``train``, ``all`` complete episodes, and
    ``all_counting_aborted_as_failures``."""
    hindsight: dict[str, Any]
    training_log: TrainingLogSummary | None
    relabel: dict[str, Any]
    coverage: dict[str, Any]
    safety: dict[str, Any]
    reward_recompute: dict[str, Any]
    failures: dict[str, int]
    episodes: list[EpisodeAudit]
    read: dict[str, Any]
    audit_record: dict[str, Any]
    notes: list[str]
    verdict: str = "unverified"
    """``verified``, ``unverified`` or ``failed`` (her_recorder.audit.findings)."""
    findings: list[Finding] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)
    """The evaluation the verdict is about: its plan(s), episode accounting and the
    headline requested-goal success (aborted, discarded and invalid episodes as failures)."""
    files: dict[str, str] = field(default_factory=dict)
    sensing: dict[str, Any] = field(default_factory=dict)
    """Success margins against the tolerance, verdicts sensing noise changed (simulation with
    true states), and success by randomised physics parameter."""

    def headline(self) -> str:
        """The requested-goal success line: the number only when verified, else labelled."""
        rate: Rate | None = self.evaluation.get("headline")
        what = "requested-goal success (evaluation"
        if rate is None or not rate.n:
            return f"{what}): none - verdict {self.verdict}"
        if self.verdict == "verified":
            return f"{what}, verified): {rate.text()}"
        codes = ", ".join(f.code for f in self.findings if f.severity == self.verdict)
        return f"{what}): {self.verdict.upper()} {rate.text()} [{codes}]"

    def to_json(self) -> str:
        """``report.json``: plain JSON (NaN written as null)."""
        return json.dumps(finite_or_null(to_plain(asdict(self))), indent=1, sort_keys=True)
