"""The audit (``her audit``): what recorded episodes say about a policy, traced to its config.

From bags (and, when given, the trainer's log and the policy artefact) the audit
reports, in ``report.md``, ``report.json`` and PNG plots:

* **the verdict** on the evaluation - ``verified``, ``unverified`` or ``failed`` - with
  its findings, each under a stable code (:data:`CODES`): the evaluation plan each bag
  carries (her_goals.evaluation) is checked against the registry, every requested goal
  is re-derived from the plan's held-out stream, every planned episode is accounted for
  and every step names the audited policy. The headline requested-goal success counts
  aborted and discarded evaluation episodes as failures and is printed as a result only
  when verified; ``her audit`` exits 0 verified, 3 unverified, 1 failed;
* **requested-goal success** with a Wilson 95% interval, from each episode's
  original desired goal (the START event's) and the goal space's own tolerance,
  for evaluation episodes and for all episodes, each labelled; the recorded
  END success is cross-checked and every disagreement is listed;
* **hindsight figures, shown beside it and labelled as not a result**: the
  success an episode would have had for a goal relabelled to one of its own
  achieved goals, the positive-reward share of relabelled transitions computed
  from the bags, and the hindsight ratio the trainer logged;
* **goal coverage**: cells (5 cm by default) of the goal region and of the
  desired goals reached by some achieved goal, with a heat map;
* **safety cost** per episode and interventions by flag;
* **reward recompute**: every recorded reward against
  ``goal_space.compute_reward(next_achieved_goal, desired_goal)``;
* a **failure label** per failed episode, the rule that assigned it and the
  numbers that triggered it (see :data:`RULES`).

Every figure names the bags, the config hash and the artefact hash it came from
(on the figure and in the PNG's text metadata).

The package, one module per responsibility:

* :mod:`~her_recorder.audit.run`: :func:`run_audit`, the orchestration;
* :mod:`~her_recorder.audit.episodes`: the episodes audited, and their split;
* :mod:`~her_recorder.audit.inputs`: artefact, training log, goal region, layout;
* :mod:`~her_recorder.audit.metrics`: success, coverage, hindsight, safety, recompute;
* :mod:`~her_recorder.audit.rules`: the failure labels and their rules;
* :mod:`~her_recorder.audit.ledger`, :mod:`~her_recorder.audit.verify`,
  :mod:`~her_recorder.audit.findings`: every episode's provenance, the invariants, the verdict;
* :mod:`~her_recorder.audit.model`: the report's dataclasses;
* :mod:`~her_recorder.audit.report` (``report.md``) and :mod:`~her_recorder.audit.plots` (PNGs);
* :mod:`~her_recorder.audit.cli`: ``her audit`` and ``python -m her_recorder.audit``.
"""

from her_recorder.audit.cli import EXIT_CODES, add_audit_command, exit_status, main
from her_recorder.audit.episodes import (
    EVAL_WORDS,
    RECOMPUTE_KINDS,
    TRAIN_WORDS,
    AuditedEpisode,
)
from her_recorder.audit.findings import CODES
from her_recorder.audit.inputs import (
    load_artefact_metadata,
    read_training_log,
)
from her_recorder.audit.metrics import CELL_SIZE, hindsight_positive_fraction
from her_recorder.audit.model import (
    AuditReport,
    EpisodeAudit,
    FailureLabel,
    Finding,
    Rate,
    Split,
    TrainingLogSummary,
)
from her_recorder.audit.rules import (
    LABEL_EXPLORATION,
    LABEL_MISMATCH,
    LABEL_REPRESENTATION,
    LABEL_REWARD,
    LABEL_UNCLASSIFIED,
    LABELS,
    MEASURED_FIELD,
    NEAR_FACTOR,
    OBJECT_SPACES,
    RARE_EPISODES,
    RULES,
    STATIC_FRACTION,
)
from her_recorder.audit.run import TRACE_FILE, run_audit
from her_recorder.errors import AuditError

__all__ = [
    "CELL_SIZE",
    "CODES",
    "EVAL_WORDS",
    "EXIT_CODES",
    "LABELS",
    "LABEL_EXPLORATION",
    "LABEL_MISMATCH",
    "LABEL_REPRESENTATION",
    "LABEL_REWARD",
    "LABEL_UNCLASSIFIED",
    "MEASURED_FIELD",
    "NEAR_FACTOR",
    "OBJECT_SPACES",
    "RARE_EPISODES",
    "RECOMPUTE_KINDS",
    "RULES",
    "STATIC_FRACTION",
    "TRACE_FILE",
    "TRAIN_WORDS",
    "AuditError",
    "AuditReport",
    "AuditedEpisode",
    "EpisodeAudit",
    "FailureLabel",
    "Finding",
    "Rate",
    "Split",
    "TrainingLogSummary",
    "add_audit_command",
    "exit_status",
    "hindsight_positive_fraction",
    "load_artefact_metadata",
    "main",
    "read_training_log",
    "run_audit",
]
