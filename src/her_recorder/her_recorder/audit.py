"""The audit (``her audit``): what recorded episodes say about a policy, traced to its config.

From bags (and, when given, the trainer's log and the policy artefact) the audit
reports, in ``report.md``, ``report.json`` and PNG plots:

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

Episodes the reader leaves out only because their recorded reward or success
disagrees with the goal space are audited from their raw messages: those are
exactly the episodes a reward-recompute audit exists for.

Every figure names the bags, the config hash and the artefact hash it came from
(on the figure and in the PNG's text metadata).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from her_goals import GoalRegion, GoalSpace
from her_goals.config import from_mapping, to_plain
from her_goals.errors import ConfigError, HerError
from her_goals.provenance import metadata_hash
from her_goals.stats import wilson_interval
from her_recorder import interfaces as ifc
from her_recorder.bagmeta import BagMeta
from her_recorder.errors import BagError
from her_recorder.reader import (
    Episode,
    ValidationReport,
    _BagSource,
    _collect,
    bag_summary,
    find_bags,
    inspect_bag,
    read_episodes,
    read_events,
)

# -- the rules' numbers -------------------------------------------------------------------

CELL_SIZE = 0.05
"""Edge of a coverage cell, in the goal space's units (5 cm for position goals)."""
NEAR_FACTOR = 2.0
"""Exploration failure: the achieved goal never came within NEAR_FACTOR x tolerance."""
RARE_EPISODES = 2
"""Exploration failure: fewer than this many other training episodes reached the goal's cell."""
STATIC_FRACTION = 0.1
"""Goal-representation failure: the achieved goal moved less than this x tolerance."""
MEASURED_FIELD = {"ee_position": "tcp_pos", "object_position": "object_pos"}
"""Observation field (her_mujoco layout names) that each goal space's achieved goal measures."""
OBJECT_SPACES = frozenset({"object_position"})
"""Goal spaces whose achieved goal is an object the arm must first reach."""

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
        "ee_position, object_pos for object_position) by more than the tolerance; or it "
        f"moved less than {STATIC_FRACTION} x tolerance over the episode while the robot "
        "moved (tcp_pos moved >= tolerance and, for object goals, came within "
        f"{NEAR_FACTOR} x tolerance of the object; without an observation layout: the "
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

TRACE_FILE = "trace.npz"
"""Per-step goals and rewards the audit read and recomputed."""

RECOMPUTE_KINDS = frozenset({"reward_mismatch", "success_mismatch", "requested_success_mismatch"})
"""Reader problems that only say the recorded reward/success disagrees with the goal space."""

EVAL_WORDS = frozenset({"eval", "evaluation", "heldout", "held_out", "held-out", "test"})
TRAIN_WORDS = frozenset({"train", "training", "explore", "exploration", "collect"})
Split = Literal["eval", "train", "unknown"]

TRAINING_LOG_FIELDS: dict[str, tuple[str, ...]] = {
    "step": ("step", "env_steps"),
    "hindsight_ratio": ("hindsight_ratio",),
    "positive_fraction_original": ("positive_fraction_original", "original_positive_fraction"),
    "positive_fraction_relabelled": (
        "positive_fraction_relabelled",
        "hindsight_positive_fraction",
    ),
    "relabel_strategy": ("relabel_strategy", "strategy"),
    "replay_k": ("replay_k", "k"),
    "relabel_prob": ("relabel_prob", "probability"),
    "requested_success": ("requested_success",),
}
"""Fields of one training-log record (JSON lines) -> accepted names, first preferred.

The trainer's ``train_log.jsonl`` rows (``her_policy.train.EvalRow``) use the
second names; ``hindsight_ratio`` is required, everything else optional."""


class AuditError(BagError, ValueError):
    """Input the audit cannot use: a bad training log, artefact or region."""


# -- report data --------------------------------------------------------------------------


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
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """``report.json``: plain JSON (NaN written as null)."""
        return json.dumps(_finite_or_null(to_plain(asdict(self))), indent=1, sort_keys=True)

    def to_markdown(self) -> str:
        """``report.md``."""
        return _markdown(self)


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


# -- gathering the episodes ---------------------------------------------------------------


@dataclass
class _Ep:
    """One audited episode's arrays, from a validated Episode or from raw messages."""

    bag: Path
    episode_id: int
    status: Literal["complete", "aborted"]
    end_success: bool | None
    end_reason: str
    start_reason: str
    observation: NDArray[np.float64]
    achieved_goal: NDArray[np.float64]
    next_achieved_goal: NDArray[np.float64]
    desired_goal: NDArray[np.float64]
    """(dim,): the requested goal of the START event."""
    reward: NDArray[np.float32]
    is_success: NDArray[np.bool_]
    safety_flags: NDArray[np.uint32]
    safety_cost: NDArray[np.float32]
    note: str = ""

    @classmethod
    def from_episode(cls, ep: Episode, start_reason: str) -> _Ep:
        return cls(
            bag=ep.bag,
            episode_id=ep.episode_id,
            status=ep.status,
            end_success=ep.success if ep.status == "complete" else None,
            end_reason=ep.end_reason,
            start_reason=start_reason,
            observation=ep.observation,
            achieved_goal=ep.achieved_goal,
            next_achieved_goal=ep.next_achieved_goal,
            desired_goal=ep.desired_goal[0],
            reward=ep.reward,
            is_success=ep.is_success,
            safety_flags=ep.safety_flags,
            safety_cost=ep.safety_cost,
        )


def _raw_episodes(bag: Path, wanted: set[int], dim: int) -> dict[int, _Ep]:
    """Rebuild episodes the reader left out for recompute mismatches, from their messages."""
    problems: list[Any] = []
    accs = _collect(bag, _BagSource(inspect_bag(bag)), problems)
    out: dict[int, _Ep] = {}
    for episode_id in sorted(wanted & set(accs)):
        acc = accs[episode_id]
        start = next((e for e in acc.events if e.event == ifc.EventKind.START), None)
        end = next((e for e in acc.events if e.event != ifc.EventKind.START), None)
        if start is None or end is None or not acc.steps:
            continue
        steps = sorted(acc.steps, key=lambda s: s.step)

        def stack(name: str, steps: list[Any] = steps) -> NDArray[np.float64]:
            return np.asarray(np.stack([getattr(s, name) for s in steps]), dtype=np.float64)

        complete = int(end.event) == ifc.EventKind.END
        out[episode_id] = _Ep(
            bag=bag,
            episode_id=episode_id,
            status="complete" if complete else "aborted",
            end_success=bool(end.success) if complete else None,
            end_reason=str(end.reason),
            start_reason=str(start.reason),
            observation=stack("observation"),
            achieved_goal=stack("achieved_goal").reshape(len(steps), dim),
            next_achieved_goal=stack("next_achieved_goal").reshape(len(steps), dim),
            desired_goal=np.asarray(start.desired_goal, dtype=np.float64),
            reward=np.array([s.reward for s in steps], dtype=np.float32),
            is_success=np.array([s.is_success for s in steps], dtype=bool),
            safety_flags=np.array([s.safety_flags for s in steps], dtype=np.uint32),
            safety_cost=np.array([s.safety_cost for s in steps], dtype=np.float32),
            note="left out by the reader (recorded reward/success disagrees with the goal "
            "space); audited from its raw messages",
        )
    return out


def _start_reasons(bag: Path) -> dict[int, str]:
    """Episode id -> the START event's reason (where a writer may say ``eval``/``train``)."""
    return {
        int(ev.episode_id): str(ev.reason)
        for ev in read_events(bag)
        if ev.event == ifc.EventKind.START
    }


def _bag_meta(bag: Path) -> BagMeta | None:
    info = inspect_bag(bag)
    if info.meta is None and info.needs_recovery:
        info = bag_summary(bag)
    return info.meta


def _split_word(text: str) -> Split | None:
    value = text.strip().lower()
    if "split=" in value:
        value = value.split("split=", 1)[1].split()[0].strip(",;")
    if value in EVAL_WORDS:
        return "eval"
    if value in TRAIN_WORDS:
        return "train"
    return None


def _bag_split(meta: BagMeta | None) -> Split | None:
    config = meta.config if meta is not None else None
    if isinstance(config, Mapping):
        for key in ("split", "mode"):
            if isinstance(config.get(key), str):
                found = _split_word(config[key])
                if found is not None:
                    return found
    return None


def _find_key(data: Any, key: str, depth: int = 3) -> Any:
    """The value of ``key`` in a nested mapping (breadth-first, ``depth`` levels)."""
    level = [data]
    for _ in range(depth):
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, Mapping):
                if key in item:
                    return item[key]
                nxt.extend(v for v in item.values() if isinstance(v, Mapping))
        level = nxt
    return None


# -- artefact, training log, region -------------------------------------------------------


def load_artefact_metadata(path: Path) -> dict[str, Any]:
    """``policy.json`` of a policy artefact (a directory or the file), its hash verified.

    Read directly (no her_policy import), hashed by the function that wrote it.
    """
    meta_path = path / "policy.json" if path.is_dir() else path
    if not meta_path.is_file():
        raise AuditError(f"{path} is not a policy artefact: policy.json is missing")
    try:
        metadata = json.loads(meta_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditError(f"{meta_path} cannot be read as JSON: {exc}") from None
    if not isinstance(metadata, dict) or "artefact_hash" not in metadata:
        raise AuditError(f"{meta_path} has no artefact_hash: not a her_policy artefact")
    digest = metadata_hash(metadata)
    if digest != metadata["artefact_hash"]:
        raise AuditError(
            f"{meta_path} was modified after it was written (artefact hash "
            f"{metadata['artefact_hash']} != {digest}); the audit will not name it"
        )
    return metadata


def _pick(record: Mapping[str, Any], name: str) -> Any:
    for key in TRAINING_LOG_FIELDS[name]:
        if key in record:
            return record[key]
    return None


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def read_training_log(path: Path) -> TrainingLogSummary:
    """Read a JSON-lines training log (see :data:`TRAINING_LOG_FIELDS`)."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"training log {path} cannot be read: {exc}") from None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditError(f"training log {path}:{number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise AuditError(f"training log {path}:{number} is not a JSON object")
        if _pick(record, "hindsight_ratio") is None:
            raise AuditError(
                f"training log {path}:{number} has no hindsight_ratio; each record needs "
                f"{', '.join(k[0] for k in TRAINING_LOG_FIELDS.values())} (hindsight_ratio required)"
            )
        records.append(record)
    if not records:
        raise AuditError(f"training log {path} holds no records")

    def series(name: str) -> list[float]:
        return [_num(_pick(r, name)) for r in records]

    last = records[-1]
    steps = series("step")
    ratio = series("hindsight_ratio")
    strategy = next(
        (str(v) for v in (_pick(r, "relabel_strategy") for r in reversed(records)) if v), None
    )
    k = _num(_pick(last, "replay_k"))
    prob = _num(_pick(last, "relabel_prob"))
    return TrainingLogSummary(
        path=str(path),
        records=len(records),
        hindsight_ratio_mean=_nanmean(ratio),
        hindsight_ratio_last=ratio[-1],
        positive_fraction_original_mean=_nanmean(series("positive_fraction_original")),
        positive_fraction_relabelled_mean=_nanmean(series("positive_fraction_relabelled")),
        relabel_strategy=strategy,
        replay_k=k if math.isfinite(k) else None,
        relabel_prob=prob if math.isfinite(prob) else None,
        step=[s if math.isfinite(s) else float(i) for i, s in enumerate(steps)],
        hindsight_ratio=ratio,
        positive_fraction_original=series("positive_fraction_original"),
        positive_fraction_relabelled=series("positive_fraction_relabelled"),
        requested_success=series("requested_success"),
    )


def _region_from(value: Any, where: str) -> GoalRegion:
    try:
        return from_mapping(GoalRegion, value, where=where)
    except ConfigError as exc:
        raise AuditError(f"{where}: not a goal region: {exc}") from None


# -- per-episode numbers ------------------------------------------------------------------


def _pairwise_success(space: GoalSpace, a: NDArray[np.float64], b: NDArray[np.float64]) -> Any:
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
    ok = _pairwise_success(space, next_achieved, next_achieved).astype(np.float64)
    if strategy == "final":
        return float(ok[:, -1].mean())
    if strategy == "episode":
        return float(ok.mean())
    upper = np.triu(np.ones_like(ok))  # k >= t
    return float(((ok * upper).sum(axis=1) / upper.sum(axis=1)).mean())


def _flag_counts(flags: NDArray[np.uint32]) -> dict[str, int]:
    out: dict[str, int] = {}
    for flag in ifc.SafetyFlag:
        n = int(np.count_nonzero(flags & np.uint32(flag.value)))
        if n:
            out[str(flag.name)] = n
    return out


@dataclass(frozen=True)
class _Grid:
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


@dataclass
class _Context:
    """What the labelling rules look at besides the episode itself."""

    space: GoalSpace
    tolerance: float
    region: GoalRegion | None
    train_box: tuple[NDArray[np.float64], NDArray[np.float64]] | None
    fields: dict[str, tuple[int, int]]
    grid: _Grid
    cell_episodes: dict[tuple[int, ...], set[int]]
    """Cell -> indices of training episodes whose achieved goals reached it."""


def _label(index: int, ep: _Ep, audit: EpisodeAudit, ctx: _Context) -> FailureLabel:
    """The first rule of :data:`RULES` that fires for a failed episode."""
    tol = ctx.tolerance
    if audit.reward_mismatches or audit.success_flag_mismatches or audit.end_success_disagrees:
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
    goal = ep.desired_goal
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
    rep = _representation(ep, ctx)
    if rep is not None:
        return FailureLabel(LABEL_REPRESENTATION, RULES[LABEL_REPRESENTATION], rep)
    cell = next(iter(ctx.grid.cells(goal[None, :])))
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


def _representation(ep: _Ep, ctx: _Context) -> dict[str, Any] | None:
    tol = ctx.tolerance
    space = ctx.space
    measured = MEASURED_FIELD.get(space.name)
    obs = ep.observation

    def field_of(name: str | None) -> NDArray[np.float64] | None:
        if name is None or name not in ctx.fields:
            return None
        lo, hi = ctx.fields[name]
        if hi > obs.shape[1] or hi - lo != space.dim:
            return None
        return obs[:, lo:hi]

    seen = field_of(measured)
    if seen is not None:
        gap = float(np.max(np.linalg.norm(ep.achieved_goal - seen, axis=-1)))
        if gap > tol:
            return {"observation_field": measured, "max_disagreement": gap, "tolerance": tol}
    moved = float(np.max(np.linalg.norm(ep.next_achieved_goal - ep.achieved_goal[0], axis=-1)))
    if moved >= STATIC_FRACTION * tol:
        return None
    tcp = field_of("tcp_pos")
    evidence: dict[str, Any] = {
        "achieved_goal_moved": moved,
        "static_threshold": STATIC_FRACTION * tol,
    }
    if tcp is not None:
        tcp_moved = float(np.max(np.linalg.norm(tcp - tcp[0], axis=-1)))
        evidence["tcp_moved"] = tcp_moved
        if tcp_moved < tol:
            return None
        if space.name in OBJECT_SPACES:
            obj = field_of("object_pos")
            if obj is None:
                return None
            closest = float(np.min(np.linalg.norm(tcp - obj, axis=-1)))
            evidence["tcp_closest_to_object"] = closest
            if closest > NEAR_FACTOR * tol:
                return None
        return evidence
    if space.name in OBJECT_SPACES:
        return None  # without tcp and object positions, an untouched object is exploration
    obs_moved = float(np.max(np.linalg.norm(obs - obs[0], axis=-1)))
    evidence["observation_moved"] = obs_moved
    return evidence if obs_moved >= tol else None


# -- the audit ------------------------------------------------------------------------------


def run_audit(
    bags: Sequence[Path],
    *,
    out_dir: Path,
    training_log: Path | None = None,
    artefact: Path | None = None,
    goal_region: GoalRegion | None = None,
    tolerance: float | None = None,
    cell_size: float = CELL_SIZE,
    plots: bool = True,
) -> AuditReport:
    """Audit the episodes in ``bags``; write report.md, report.json and PNGs to ``out_dir``.

    Args:
        bags: Bag or session directories.
        out_dir: Where the report and plots go (created).
        training_log: The trainer's JSON-lines log (see :data:`TRAINING_LOG_FIELDS`);
            by default ``train_log.jsonl`` beside the artefact directory, if there is one.
        artefact: Policy artefact directory (or its policy.json): names its hash.
        goal_region: The task's goal region; by default the bags' config ``goal_region``,
            else the box of the desired goals.
        tolerance: Success tolerance for requested-goal success, in the goal space's
            units; by default the bags' goal space's own. Rewards are always
            recomputed with the goal space the bags were recorded in.
        cell_size: Coverage cell edge, in the goal space's units.
        plots: Write the PNGs (matplotlib).

    Raises:
        BagFormatError, BagMismatchError: unreadable bags, or bags of different goal spaces.
        AuditError: a bad training log, artefact or region.
    """
    if not cell_size > 0:
        raise AuditError(f"cell size must be > 0, got {cell_size}")
    bag_paths = find_bags(bags)
    notes: list[str] = []
    metas = {bag: _bag_meta(bag) for bag in bag_paths}
    result = read_episodes(bag_paths, include_aborted=True, log_summary=False)
    report = result.report
    space = _goal_space(result.episodes, metas)
    audit_tol = space.tolerance if tolerance is None else float(tolerance)
    success_space = space if tolerance is None else space.with_tolerance(audit_tol)
    if tolerance is not None and not math.isclose(audit_tol, space.tolerance):
        notes.append(
            f"requested-goal success uses tolerance {audit_tol} {space.units} (given), not the "
            f"recorded goal space's {space.tolerance}; rewards are recomputed with the recorded one"
        )

    # Episodes: validated ones, plus those left out only for recompute mismatches.
    errors: dict[tuple[Path, int], set[str]] = {}
    for p in report.problems:
        if p.severity == "error" and p.episode_id is not None:
            errors.setdefault((p.bag, p.episode_id), set()).add(p.kind)
    recompute_only = {key for key, kinds in errors.items() if kinds <= RECOMPUTE_KINDS}
    eps: list[_Ep] = []
    by_bag: dict[Path, list[Episode]] = {}
    for ep in result.episodes:
        by_bag.setdefault(ep.bag, []).append(ep)
    for bag in bag_paths:
        reasons = _start_reasons(bag)
        for ep in by_bag.get(bag, []):
            eps.append(_Ep.from_episode(ep, reasons.get(ep.episode_id, "")))
        wanted = {eid for (b, eid) in recompute_only if b == bag}
        if wanted:
            eps.extend(_raw_episodes(bag, wanted, space.dim).values())
    order = {bag: i for i, bag in enumerate(bag_paths)}
    eps.sort(key=lambda e: (order[e.bag], e.episode_id))

    # Provenance: artefact, training log, relabelling, region, layout.
    art_meta = load_artefact_metadata(Path(artefact)) if artefact is not None else None
    artefact_hash = str(art_meta["artefact_hash"]) if art_meta is not None else "none"
    art_config = (art_meta or {}).get("provenance", {}).get("config") or {}
    if training_log is None and artefact is not None:
        beside = Path(artefact).parent if Path(artefact).is_dir() else Path(artefact).parent.parent
        if (beside / "train_log.jsonl").is_file():
            training_log = beside / "train_log.jsonl"
            notes.append(f"training log: {training_log} (found beside the artefact)")
    log_summary = read_training_log(Path(training_log)) if training_log is not None else None
    config_hashes = sorted(
        {m.config_hash for m in metas.values() if m is not None and m.config_hash}
    )
    if len(config_hashes) > 1:
        notes.append(f"the bags were recorded with {len(config_hashes)} different configs")
    if art_meta is not None:
        art_space = GoalSpace.from_spec(art_meta["goal_space"])
        if not art_space.same_as(space):
            notes.append(
                f"the artefact was trained in goal space {art_space.spec()}, the bags were "
                f"recorded in {space.spec()}: its rewards and success differ from the bags'"
            )
        art_hash = (art_meta.get("provenance") or {}).get("config_hash")
        if art_hash and config_hashes and art_hash not in config_hashes:
            notes.append(
                f"the artefact's training config hash {art_hash} is not a bag config hash "
                f"({', '.join(config_hashes)}): these bags were not recorded by its training run"
            )
    bag_configs = [m.config for m in metas.values() if m is not None]
    relabel = _relabel_settings(log_summary, art_config, bag_configs)
    region, region_source = _region(goal_region, bag_configs, eps, notes)
    fields, fields_source = _observation_fields(art_meta, bag_configs)

    # Per-episode numbers.
    bag_split = {bag: _bag_split(meta) for bag, meta in metas.items()}
    audits: list[EpisodeAudit] = []
    for e in eps:
        audits.append(_episode_audit(e, space, success_space, bag_split[e.bag], relabel))
    splits = Counter(a.split for a in audits)
    if audits and not splits["eval"]:
        notes.append(
            "no episode is marked as an evaluation episode (held-out goals): the success "
            "of all episodes mixes in exploration episodes. The writer must record the split "
            "(bag config 'split': 'eval'|'train', or START reason 'eval'|'train')."
        )

    # Coverage and the cells training episodes reached.
    grid = _Grid(region, cell_size)
    # The exploration rule asks which cells the training data reached: the training
    # episodes when the bags say which they are, else every episode (the note says so).
    training = [i for i, a in enumerate(audits) if a.split == "train"]
    if not training:
        training = list(range(len(audits)))
        if audits:
            notes.append(
                "no episode is marked as a training episode: the exploration rule counts "
                "the cells reached by all audited episodes"
            )
    cell_episodes: dict[tuple[int, ...], set[int]] = {}
    for i in training:
        goals = np.concatenate([eps[i].achieved_goal, eps[i].next_achieved_goal])
        for cell in grid.cells(goals):
            cell_episodes.setdefault(cell, set()).add(i)
    coverage = _coverage(eps, grid, region_source, space.units)
    train_box = None
    if splits["train"] and splits["eval"]:
        desired = np.stack([eps[i].desired_goal for i in training])
        train_box = (desired.min(axis=0), desired.max(axis=0))
    ctx = _Context(
        space,
        audit_tol,
        region if region_source != "desired goals" else None,
        train_box,
        fields,
        grid,
        cell_episodes,
    )
    if region_source == "desired goals":
        notes.append(
            "the task's goal region is unknown (no goal_region in the bag config, none given): "
            "coverage cells span the desired goals' box and the out-of-region rule is not applied"
        )
    if not fields:
        notes.append(
            "no observation layout (artefact observation_layout or bag config observation_fields): "
            "the goal-representation rule uses the whole observation vector"
        )
    # Aborted episodes did not run to their end: they are counted (and shown under
    # safety), not labelled; a label explains a complete episode that missed its goal.
    for i, (e, audit) in enumerate(zip(eps, audits)):
        if audit.status == "complete" and not audit.requested_success:
            audit.failure = _label(i, e, audit, ctx)

    def rate(sel: Iterable[EpisodeAudit]) -> Rate:
        chosen = list(sel)
        return Rate.of(sum(a.counted_success for a in chosen), len(chosen))

    complete = [a for a in audits if a.status == "complete"]
    requested = {
        "eval": rate(a for a in complete if a.split == "eval"),
        "train": rate(a for a in complete if a.split == "train"),
        "all": rate(complete),
        "all_counting_aborted_as_failures": rate(audits),
    }
    hindsight = _hindsight(eps, audits, space, relabel, log_summary)
    safety = _safety(audits)
    recompute = _recompute(eps, audits, space)
    failures = Counter(a.failure.label for a in audits if a.failure is not None)
    seeds: dict[str, Any] = {}
    for bag in bag_paths:
        meta = metas[bag]
        seeds[str(bag)] = meta.seeds if meta is not None else None
    read_info = _read_info(report, len(audits) - len(result.episodes))
    audit_record = {
        "goal_space": space.spec(),
        "tolerance": audit_tol,
        "relabel_strategy": relabel,
        "reward_recompute_test": recompute["status_line"],
        "reported_metrics": {
            "requested_success_eval": asdict(requested["eval"]),
            "requested_success_all": asdict(requested["all"]),
            "hindsight_ratio_training": log_summary.hindsight_ratio_mean if log_summary else None,
            "hindsight_success_not_a_result": hindsight["episode_success"],
            "coverage_desired_cells": coverage["desired_cell_fraction"],
            "coverage_region_cells": coverage["region_cell_fraction"],
            "safety_cost_total": safety["total_cost"],
            "failure_labels": dict(failures),
        },
        "bags": [str(b) for b in bag_paths],
        "config_hashes": config_hashes,
        "artefact_hash": artefact_hash,
        "seeds": seeds,
        "saved": f"{TRACE_FILE}: per step the desired, achieved and next-achieved goals "
        "(relabel candidates are the next-achieved goals of the same episode), the recorded "
        "and recomputed rewards; report.json: per episode the rules' numbers",
    }
    audit_report = AuditReport(
        bags=[str(b) for b in bag_paths],
        config_hashes=config_hashes,
        artefact_hash=artefact_hash,
        goal_space=space.spec(),
        tolerance=audit_tol,
        tasks=sorted({m.task for m in metas.values() if m is not None}),
        seeds=seeds,
        requested_success=requested,
        hindsight=hindsight,
        training_log=log_summary,
        relabel=relabel,
        coverage=coverage,
        safety=safety,
        reward_recompute=recompute,
        failures={label: failures.get(label, 0) for label in LABELS},
        episodes=audits,
        read={**read_info, "observation_fields_source": fields_source},
        audit_record=audit_record,
        notes=notes,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        from her_recorder.audit_plots import write_plots

        audit_report.files.update(write_plots(audit_report, eps, region, out))
    audit_report.files[TRACE_FILE] = str(_write_trace(out / TRACE_FILE, eps, space))
    audit_report.files["report.json"] = str(out / "report.json")
    audit_report.files["report.md"] = str(out / "report.md")
    (out / "report.json").write_text(audit_report.to_json() + "\n", "utf-8")
    (out / "report.md").write_text(audit_report.to_markdown(), "utf-8")
    return audit_report


def _goal_space(episodes: list[Episode], metas: Mapping[Path, BagMeta | None]) -> GoalSpace:
    if episodes:
        return episodes[0].goal_space
    for meta in metas.values():
        if meta is not None:
            return meta.goal_space
    raise AuditError("the bags hold no readable episodes and no HER metadata: nothing to audit")


def _relabel_settings(
    log: TrainingLogSummary | None, art_config: Mapping[str, Any], bag_configs: list[Any]
) -> dict[str, Any]:
    """Relabel strategy, k and probability, with where they came from."""
    candidates: list[tuple[str, Mapping[str, Any]]] = []
    if log is not None:
        candidates.append(
            (
                f"training log {log.path}",
                {
                    "relabel_strategy": log.relabel_strategy,
                    "replay_k": log.replay_k,
                    "relabel_prob": log.relabel_prob,
                },
            )
        )
    if art_config:
        candidates.append(("artefact config", art_config))
    candidates.extend(("bag config", c) for c in bag_configs if isinstance(c, Mapping))
    for source, data in candidates:
        strategy = data.get("relabel_strategy")
        if strategy:
            k = data.get("replay_k")
            prob = data.get("relabel_prob")
            if prob is None and isinstance(k, int | float) and k >= 0:
                prob = float(k) / (float(k) + 1.0)
            return {"strategy": str(strategy), "k": k, "probability": prob, "source": source}
    return {"strategy": None, "k": None, "probability": None, "source": "not recorded"}


def _region(
    given: GoalRegion | None, configs: list[Any], eps: list[_Ep], notes: list[str]
) -> tuple[GoalRegion, str]:
    if given is not None:
        return given, "given"
    for config in configs:
        value = _find_key(config, "goal_region")
        if value is not None:
            return _region_from(value, "bag config goal_region"), "bag config"
    if not eps:
        return GoalRegion(low=(0.0,), high=(0.0,)), "desired goals"
    desired = np.stack([e.desired_goal for e in eps])
    return (
        GoalRegion(
            low=tuple(desired.min(axis=0).tolist()), high=tuple(desired.max(axis=0).tolist())
        ),
        "desired goals",
    )


def _observation_fields(
    art_meta: Mapping[str, Any] | None, configs: list[Any]
) -> tuple[dict[str, tuple[int, int]], str]:
    sources: list[tuple[str, Any]] = []
    if art_meta is not None:
        sources.append(
            (
                "artefact observation_layout",
                (art_meta.get("observation_layout") or {}).get("observation_fields"),
            )
        )
    sources.extend(
        ("bag config observation_fields", _find_key(c, "observation_fields")) for c in configs
    )
    for source, value in sources:
        if not value:
            continue
        try:
            return {str(n): (int(a), int(b)) for n, a, b in value}, source
        except (TypeError, ValueError):
            raise AuditError(
                f"{source}: expected a list of [name, start, stop], got {value!r}"
            ) from None
    return {}, "none"


def _episode_audit(
    ep: _Ep,
    space: GoalSpace,
    success_space: GoalSpace,
    bag_split: Split | None,
    relabel: Mapping[str, Any],
) -> EpisodeAudit:
    T = len(ep.reward)
    desired = np.broadcast_to(ep.desired_goal, ep.next_achieved_goal.shape)
    distance = success_space.distance(ep.next_achieved_goal, desired)
    requested = bool(success_space.is_success(ep.next_achieved_goal[-1], ep.desired_goal))
    recorded_reward_ok = ep.reward == space.compute_reward(ep.next_achieved_goal, desired)
    success_ok = ep.is_success == space.is_success(ep.next_achieved_goal, desired)
    recomputed_end = bool(space.is_success(ep.next_achieved_goal[-1], ep.desired_goal))
    split = _split_word(ep.start_reason) or bag_split or "unknown"
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
        steps=T,
        desired_goal=ep.desired_goal.tolist(),
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
        flag_counts=_flag_counts(ep.safety_flags),
        end_reason=ep.end_reason,
        note=ep.note,
    )


def _coverage(eps: list[_Ep], grid: _Grid, source: str, units: str) -> dict[str, Any]:
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
    desired = grid.cells(np.stack([e.desired_goal for e in eps]))
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


def _hindsight(
    eps: list[_Ep],
    audits: list[EpisodeAudit],
    space: GoalSpace,
    relabel: Mapping[str, Any],
    log: TrainingLogSummary | None,
) -> dict[str, Any]:
    strategy = str(relabel.get("strategy") or "future")
    positive = [hindsight_positive_fraction(space, e.next_achieved_goal, strategy) for e in eps]
    steps = sum(len(e.reward) for e in eps)
    original = (
        sum(
            int(
                np.count_nonzero(
                    space.is_success(
                        e.next_achieved_goal,
                        np.broadcast_to(e.desired_goal, e.next_achieved_goal.shape),
                    )
                )
            )
            for e in eps
        )
        / steps
        if steps
        else math.nan
    )
    return {
        "what": "NOT results: goals relabelled to achieved goals of the same episode succeed "
        "trivially often; requested-goal success is the result",
        "episode_success": _nanmean([a.hindsight_success for a in audits]),
        "episode_success_rule": "success of each episode's final step for a goal relabelled "
        "by the training strategy (future/final: its own final achieved goal, so 1 by "
        "construction; episode: the share of its achieved goals), averaged over episodes",
        "positive_fraction_relabelled_bags": _nanmean(positive),
        "positive_fraction_original_bags": original,
        "strategy_used": strategy,
        "strategy_source": relabel.get("source"),
        "hindsight_ratio_training": log.hindsight_ratio_mean if log else None,
        "hindsight_ratio_configured": relabel.get("probability"),
        "positive_fraction_relabelled_training": log.positive_fraction_relabelled_mean
        if log
        else None,
        "positive_fraction_original_training": log.positive_fraction_original_mean if log else None,
    }


def _safety(audits: list[EpisodeAudit]) -> dict[str, Any]:
    flags: Counter[str] = Counter()
    for a in audits:
        flags.update(a.flag_counts)
    costs = [a.safety_cost for a in audits]
    return {
        "total_cost": float(sum(costs)),
        "mean_cost_per_episode": _nanmean(costs),
        "max_cost_per_episode": max(costs) if costs else math.nan,
        "episodes_with_interventions": sum(1 for a in audits if a.interventions),
        "intervention_steps": sum(a.interventions for a in audits),
        "steps_by_flag": dict(sorted(flags.items())),
        "aborted": sum(1 for a in audits if a.status == "aborted"),
    }


def _recompute(eps: list[_Ep], audits: list[EpisodeAudit], space: GoalSpace) -> dict[str, Any]:
    steps = sum(a.steps for a in audits)
    examples: list[dict[str, Any]] = []
    for ep, a in zip(eps, audits):
        if not a.reward_mismatches or len(examples) >= 10:
            continue
        desired = np.broadcast_to(ep.desired_goal, ep.next_achieved_goal.shape)
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
        "examples": examples,
        "function": f"GoalSpace({space.name!r}, tolerance={space.tolerance}).compute_reward("
        "next_achieved_goal, desired_goal)",
    }


def _read_info(report: ValidationReport, rebuilt: int) -> dict[str, Any]:
    return {
        "summary": report.summary_line(),
        "episodes_read": report.episodes_read,
        "left_out": dict(report.left_out),
        "audited_from_raw_messages": rebuilt,
        "bags_needing_recovery": [str(b.path) for b in report.bags if b.needs_recovery],
        "problems": [str(p) for p in report.problems[:50]],
    }


def _write_trace(path: Path, eps: list[_Ep], space: GoalSpace) -> Path:
    """Every audited step's goals and rewards, so each number traces back to the bags."""
    dim = space.dim
    rows = [len(e.reward) for e in eps]

    def cat(parts: list[NDArray[Any]], empty: NDArray[Any]) -> NDArray[Any]:
        return np.concatenate(parts) if parts else empty

    desired = [np.broadcast_to(e.desired_goal, e.next_achieved_goal.shape) for e in eps]
    np.savez_compressed(
        path,
        bag=np.repeat(np.array([str(e.bag) for e in eps], dtype=str), rows),
        episode_id=np.repeat(np.array([e.episode_id for e in eps], dtype=np.int64), rows),
        step=cat([np.arange(n) for n in rows], np.zeros(0, np.int64)),
        desired_goal=cat(desired, np.zeros((0, dim))),
        achieved_goal=cat([e.achieved_goal for e in eps], np.zeros((0, dim))),
        next_achieved_goal=cat([e.next_achieved_goal for e in eps], np.zeros((0, dim))),
        reward_recorded=cat([e.reward for e in eps], np.zeros(0, np.float32)),
        reward_recomputed=cat(
            [space.compute_reward(e.next_achieved_goal, d) for e, d in zip(eps, desired)],
            np.zeros(0, np.float32),
        ),
    )
    return path


# -- report.md ------------------------------------------------------------------------------


def _bag_name(path: str) -> str:
    """``session/bag_0003``: bag directory names repeat across sessions."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def _markdown(r: AuditReport) -> str:
    gs = r.goal_space
    units = gs.get("units", "")
    lines = [
        "# HER audit",
        "",
        f"- bags: {', '.join(r.bags)}",
        f"- config hash: {', '.join(r.config_hashes) or 'none'}",
        f"- artefact hash: {r.artefact_hash}",
        f"- task: {', '.join(r.tasks) or 'unknown'}; goal space: {gs['name']} (dim {gs['dim']}, "
        f"{units} in {gs['frame']}); success tolerance {r.tolerance} {units}",
        f"- seeds: {json.dumps(r.seeds)}",
        "",
        "## Requested-goal success (the result)",
        "",
        "From each episode's original desired goal (START event) and the final achieved goal, "
        "`goal_space.is_success` with the tolerance above; Wilson 95% interval.",
        "",
        "| episodes | successes / n | success | 95% CI |",
        "|---|---|---|---|",
    ]
    names = {
        "eval": "evaluation (held-out goals)",
        "train": "training (exploration)",
        "all": "all complete episodes",
        "all_counting_aborted_as_failures": "all, aborted counted as failures",
    }
    for key, label in names.items():
        rate = r.requested_success[key]
        lines.append(
            f"| {label} | {rate.successes} / {rate.n} | {_fmt(rate.rate)} | "
            f"{_fmt(rate.ci_low)}-{_fmt(rate.ci_high)} |"
            if rate.n
            else f"| {label} | 0 / 0 | n/a | n/a |"
        )
    disagree = r.reward_recompute["end_success_disagreements"]
    lines += [
        "",
        f"Recorded END success disagrees with the goal space in {len(disagree)} episode(s)"
        + (
            ": " + ", ".join(f"{_bag_name(d['bag'])} ep {d['episode_id']}" for d in disagree[:10])
            if disagree
            else "."
        ),
        "",
        "## Hindsight figures (NOT results)",
        "",
        f"{r.hindsight['what']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| hindsight episode success (final step, goal relabelled by the training strategy) "
        f"| {_fmt(r.hindsight['episode_success'])} |",
        f"| positive-reward share of relabelled transitions, from the bags ({r.hindsight['strategy_used']}) "
        f"| {_fmt(r.hindsight['positive_fraction_relabelled_bags'])} |",
        f"| positive-reward share with the requested goals, from the bags "
        f"| {_fmt(r.hindsight['positive_fraction_original_bags'])} |",
        f"| hindsight ratio used in training (training log) | {_fmt(r.hindsight['hindsight_ratio_training'])} |",
        f"| hindsight ratio configured (k/(k+1) or relabel_prob) | {_fmt(r.hindsight['hindsight_ratio_configured'])} |",
        f"| positive share of relabelled samples (training log) | "
        f"{_fmt(r.hindsight['positive_fraction_relabelled_training'])} |",
        "",
        f"Relabel strategy: {r.relabel['strategy'] or 'not recorded'} (k {_fmt(r.relabel['k'])}, "
        f"probability {_fmt(r.relabel['probability'])}; from {r.relabel['source']}).",
        "",
    ]
    log = r.training_log
    if log is not None:
        lines += [
            "## Training log",
            "",
            f"{log.path}: {log.records} update windows; hindsight ratio mean "
            f"{_fmt(log.hindsight_ratio_mean)}, last {_fmt(log.hindsight_ratio_last)}; positive "
            f"share original {_fmt(log.positive_fraction_original_mean)}, relabelled "
            f"{_fmt(log.positive_fraction_relabelled_mean)}.",
            "",
        ]
    c = r.coverage
    lines += [
        "## Goal coverage",
        "",
        f"Cells of {c['cell_size']} {c['units']} over the goal region {c['region_low']} .. "
        f"{c['region_high']} ({c['region_source']}; grid {c['grid_shape']}).",
        "",
        f"- desired-goal cells reached by some achieved goal: {c['desired_cells_reached']} / "
        f"{c['desired_cells']} ({_fmt(c['desired_cell_fraction'])})",
        f"- region cells reached by some achieved goal: {c['region_cells_reached']} / "
        f"{c['region_cells']} ({_fmt(c['region_cell_fraction'])})",
        "",
        "## Safety cost",
        "",
        f"Total {_fmt(r.safety['total_cost'])}; per episode mean "
        f"{_fmt(r.safety['mean_cost_per_episode'])}, max {_fmt(r.safety['max_cost_per_episode'])}; "
        f"{r.safety['episodes_with_interventions']} episode(s) with interventions, "
        f"{r.safety['intervention_steps']} step(s); {r.safety['aborted']} aborted. Steps by flag: "
        f"{json.dumps(r.safety['steps_by_flag'])}.",
        "",
        "| bag | episode | split | status | safety cost | interventions | flags |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in r.episodes:
        if a.safety_cost or a.interventions or a.status == "aborted":
            lines.append(
                f"| {_bag_name(a.bag)} | {a.episode_id} | {a.split} | {a.status} "
                f"({a.end_reason}) | {_fmt(a.safety_cost)} | {a.interventions} | "
                f"{json.dumps(a.flag_counts)} |"
            )
    rc = r.reward_recompute
    lines += [
        "",
        "## Reward recompute",
        "",
        f"{rc['status_line']}: every recorded reward against {rc['function']}.",
        "",
    ]
    lines += [
        f"- {_bag_name(e['bag'])} episode {e['episode_id']} step {e['step']}: recorded "
        f"{e['recorded']}, recomputed {e['recomputed']}"
        for e in rc["examples"]
    ]
    lines += [
        "",
        "## Failed episodes",
        "",
        "Counts: " + ", ".join(f"{k}: {v}" for k, v in r.failures.items()) + ".",
        "",
        "| bag | episode | split | label | final distance | numbers |",
        "|---|---|---|---|---|---|",
    ]
    for a in r.episodes:
        if a.failure is not None:
            lines.append(
                f"| {_bag_name(a.bag)} | {a.episode_id} | {a.split} | {a.failure.label} | "
                f"{_fmt(a.final_distance, 4)} {units} | {json.dumps(_finite_or_null(to_plain(a.failure.evidence)))} |"
            )
    lines += [
        "",
        "Aborted episodes are not labelled (they did not run to their end); they are listed "
        "under Safety cost.",
        "",
        "### Rules (the first that fires is the label)",
        "",
    ]
    lines += [f"{i}. **{label}**: {RULES[label]}." for i, label in enumerate(LABELS, 1)]
    lines += [
        "",
        "## Audit record (seeds)",
        "",
        "```json",
        json.dumps(_finite_or_null(to_plain(r.audit_record)), indent=1, sort_keys=True),
        "```",
        "",
        "## What was read",
        "",
        r.read["summary"],
        "",
    ]
    if r.read["audited_from_raw_messages"]:
        lines.append(
            f"{r.read['audited_from_raw_messages']} episode(s) the reader left out for reward/"
            "success mismatches were audited from their raw messages."
        )
        lines.append("")
    if r.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    if r.files:
        lines += ["## Files", ""] + [f"- {k}: {v}" for k, v in sorted(r.files.items())] + [""]
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.35,-0.15,0.05, got {text!r}"
        ) from None


def _cmd_audit(args: argparse.Namespace) -> int:
    region = None
    if args.region is not None:
        low, high = args.region
        region = _region_from({"low": list(low), "high": list(high)}, "--region")
    try:
        report = run_audit(
            [Path(p) for p in args.bags],
            out_dir=Path(args.out),
            training_log=Path(args.training_log) if args.training_log else None,
            artefact=Path(args.artefact) if args.artefact else None,
            goal_region=region,
            tolerance=args.tolerance,
            cell_size=args.cell_size,
        )
    except OSError as exc:
        raise BagError(str(exc)) from exc
    req = report.requested_success
    print(f"requested-goal success (evaluation): {req['eval'].text()}")
    print(f"requested-goal success (all complete episodes): {req['all'].text()}")
    print(
        f"hindsight episode success (NOT a result): {_fmt(report.hindsight['episode_success'])}; "
        f"training hindsight ratio: {_fmt(report.hindsight['hindsight_ratio_training'])}"
    )
    print(
        f"coverage: {_fmt(report.coverage['desired_cell_fraction'])} of desired-goal cells; "
        f"safety cost {_fmt(report.safety['total_cost'])}"
    )
    print(report.reward_recompute["status_line"])
    labelled = ", ".join(f"{k} {v}" for k, v in report.failures.items() if v)
    print(f"failures: {labelled or 'none'}")
    print(f"report: {report.files['report.md']}")
    return 0 if report.reward_recompute["status"] == "PASS" else 1


def add_audit_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``audit BAGS... --out DIR [--training-log F] [--artefact A]`` on argparse subparsers.

    Exit status: 0 audited, 1 the reward-recompute test failed, 2 unreadable input.
    """
    p = subparsers.add_parser(
        "audit",
        help="bags (and a training log) to a report with plots",
        description="Audit recorded episodes: requested-goal success beside hindsight figures, "
        "coverage, safety cost, reward recompute and a failure label per failed episode. "
        "Exit 0 audited, 1 reward-recompute test failed, 2 unreadable input.",
    )
    p.add_argument("bags", nargs="+", help="bag or session directories")
    p.add_argument("--out", required=True, help="directory for report.md, report.json and PNGs")
    p.add_argument(
        "--training-log", default=None, help="trainer's JSON-lines log (train_log.jsonl)"
    )
    p.add_argument("--artefact", default=None, help="policy artefact directory (names its hash)")
    p.add_argument(
        "--region",
        nargs=2,
        type=_floats,
        metavar=("LOW", "HIGH"),
        default=None,
        help="task goal region corners, e.g. 0.35,-0.15,0.05 0.65,0.15,0.35 "
        "(default: the bags' config goal_region)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="success tolerance (default: the goal space's)",
    )
    p.add_argument(
        "--cell-size",
        type=float,
        default=CELL_SIZE,
        help=f"coverage cell edge (default {CELL_SIZE})",
    )
    p.set_defaults(func=_cmd_audit)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m her_recorder.audit BAGS... --out DIR``"""
    parser = argparse.ArgumentParser(prog="python -m her_recorder.audit")
    sub = parser.add_subparsers(dest="command")
    add_audit_command(sub)
    args = parser.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except HerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
