"""The audit run: bags (and a training log and artefact) in, ``report.md``, ``report.json``, PNGs out.

:func:`run_audit` reads the bags, gathers the episodes
(:mod:`~her_recorder.audit.episodes`), resolves the settings and their sources
(:mod:`~her_recorder.audit.inputs`), computes the numbers
(:mod:`~her_recorder.audit.metrics`), labels each failed episode
(:mod:`~her_recorder.audit.rules`), verifies the evaluation against what its bags
promise (:mod:`~her_recorder.audit.ledger`, :mod:`~her_recorder.audit.verify`: the
verdict and its findings) and writes the report (:mod:`~her_recorder.audit.report`,
:mod:`~her_recorder.audit.plots`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from her_goals import GoalRegion, GoalSpace
from her_goals.outputs import StagedOutput
from her_goals.provenance import TrainingData
from her_recorder.audit import inputs, metrics
from her_recorder.audit.episodes import AuditedEpisode, bag_meta, gather_episodes
from her_recorder.audit.ledger import read_ledger
from her_recorder.audit.metrics import CELL_SIZE, Grid
from her_recorder.audit.model import AuditReport, EpisodeAudit, Split, TrainingLogSummary
from her_recorder.audit.plots import write_plots
from her_recorder.audit.report import markdown
from her_recorder.audit.rules import LABELS, LabelContext, label_failure, training_cells
from her_recorder.audit.verify import classify, verify
from her_recorder.bagmeta import BagMeta
from her_recorder.errors import AuditError
from her_recorder.reader import Episode, find_bags, read_episodes

TRACE_FILE = "trace.npz"
"""Per-step goals and rewards the audit read and recomputed."""


@dataclass
class _Provenance:
    """Where the audited policy and bags came from."""

    artefact: dict[str, Any] | None
    """The artefact's policy.json, if one was given."""
    training_data: TrainingData | None
    artefact_hash: str
    training_log: TrainingLogSummary | None
    config_hashes: list[str]
    bag_configs: list[Any]

    @property
    def artefact_config(self) -> Mapping[str, Any]:
        return (self.artefact or {}).get("provenance", {}).get("config") or {}


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
        training_log: The trainer's JSON-lines log (see
            her_goals.training_log); by default
            ``train_log.jsonl`` beside the artefact directory, if there is one.
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
        raise AuditError(f"cell size must be > 0, got {cell_size}; pass a positive --cell-size")
    bag_paths = find_bags(bags)
    notes: list[str] = []
    metas = {bag: bag_meta(bag) for bag in bag_paths}
    readable = _same_goal_space(bag_paths, metas, notes)
    result = read_episodes(readable, include_aborted=True, log_summary=False)
    space = _goal_space(result.episodes, metas)
    success_space = _success_space(space, tolerance, notes)
    ledger = read_ledger(bag_paths, metas)
    splits = classify(ledger)
    reasons = {(e.bag, e.episode_id): e.start_reason for b in ledger for e in b.episodes}
    discarded = {
        (e.bag, e.episode_id)
        for b in ledger
        for e in b.episodes
        if e.end == "DISCARD" and e.steps and splits[e.key] == "eval" and b.bag in readable
    }
    eps = gather_episodes(bag_paths, result, space.dim, reasons=reasons, discarded=discarded)
    prov = _provenance(metas, space, artefact, training_log, notes)
    relabel = inputs.relabel_settings(prov.training_log, prov.artefact_config, prov.bag_configs)
    if goal_region is not None and goal_region.dim != space.dim:
        raise AuditError(
            f"--region has {goal_region.dim} values per corner, but goal space {space.name!r} has "
            f"{space.dim} dimensions ({space.units}); give both corners with {space.dim} values"
        )
    region, region_source = inputs.goal_region(goal_region, prov.bag_configs, eps)
    fields, fields_source = inputs.observation_fields(prov.artefact, prov.bag_configs)
    audits = _episode_audits(eps, splits, space, success_space, relabel, notes)
    grid = Grid(region, cell_size)
    ctx = _label_context(eps, audits, space, success_space.tolerance, grid, notes)
    _layout_notes(ctx, region_source, fields, notes)
    failures = _label_failures(eps, audits, ctx)
    checked = verify(
        ledger,
        audits,
        result.report.problems,
        artefact=prov.artefact,
        tolerance=tolerance,
        region=goal_region,
        splits=splits,
        training_data=prov.training_data,
    )
    report = AuditReport(
        bags=[str(b) for b in bag_paths],
        config_hashes=prov.config_hashes,
        artefact_hash=prov.artefact_hash,
        goal_space=space.spec(),
        tolerance=success_space.tolerance,
        tasks=sorted({m.task for m in metas.values() if m is not None}),
        seeds={str(bag): meta.seeds if meta is not None else None for bag, meta in metas.items()},
        requested_success=metrics.requested_success(audits),
        hindsight=metrics.hindsight(eps, audits, space, relabel, prov.training_log),
        training_log=prov.training_log,
        relabel=relabel,
        coverage=metrics.coverage(eps, grid, region_source, space.units),
        safety=metrics.safety(audits),
        reward_recompute=metrics.recompute(eps, audits, space),
        failures={label: failures.get(label, 0) for label in LABELS},
        episodes=audits,
        read={
            **metrics.read_info(result.report, len(audits) - len(result.episodes)),
            "observation_fields_source": fields_source,
        },
        audit_record={},
        notes=notes,
        verdict=checked.verdict,
        findings=checked.findings,
        evaluation=checked.evaluation,
        sensing=metrics.sensing(eps, space, {k: v for k, v in splits.items()}),
    )
    report.audit_record = _audit_record(report)
    _write_outputs(report, eps, region, space, Path(out_dir), plots=plots)
    return report


def _same_goal_space(
    bag_paths: list[Path], metas: Mapping[Path, BagMeta | None], notes: list[str]
) -> list[Path]:
    """The bags the reader reads: those in the goal space of the first evaluation bag (else
    the first bag's). Rewards in two goal spaces do not compare; a bag in another one is not
    read step by step, but its episodes are in the ledger, so the verdict names it."""
    known = [(b, m) for b, m in metas.items() if m is not None]
    evaluation = [(b, m) for b, m in known if m.plan is not None and m.plan.split == "eval"]
    if not known:
        return bag_paths
    reference = (evaluation or known)[0][1].goal_space
    keep = [b for b in bag_paths if metas[b] is None or metas[b].goal_space.same_as(reference)]  # type: ignore[union-attr]
    for bag in bag_paths:
        if bag not in keep:
            notes.append(
                f"{bag}: recorded in goal space {metas[bag].goal_space.spec()}, not the evaluation's "  # type: ignore[union-attr]
                f"{reference.spec()}: not read step by step (its episodes are in the findings)"
            )
    return keep


def _goal_space(episodes: list[Episode], metas: Mapping[Path, BagMeta | None]) -> GoalSpace:
    if episodes:
        return episodes[0].goal_space
    for meta in metas.values():
        if meta is not None:
            return meta.goal_space
    raise AuditError(
        "the bags hold no readable episodes and no HER metadata: nothing to audit; "
        "run `her bag check` on them to see why"
    )


def _success_space(space: GoalSpace, tolerance: float | None, notes: list[str]) -> GoalSpace:
    """The goal space requested-goal success is measured with (``tolerance`` if given)."""
    if tolerance is None:
        return space
    audit_tol = float(tolerance)
    if not math.isclose(audit_tol, space.tolerance):
        notes.append(
            f"requested-goal success uses tolerance {audit_tol} {space.units} (given), not the "
            f"recorded goal space's {space.tolerance}; rewards are recomputed with the recorded one"
        )
    return space.with_tolerance(audit_tol)


def _provenance(
    metas: Mapping[Path, BagMeta | None],
    space: GoalSpace,
    artefact: Path | None,
    training_log: Path | None,
    notes: list[str],
) -> _Provenance:
    """Artefact, training log and config hashes; notes where they disagree with the bags."""
    art_meta = inputs.load_artefact_metadata(Path(artefact)) if artefact is not None else None
    trained = inputs.load_training_data(Path(artefact), art_meta) if artefact is not None and art_meta else None
    if training_log is None and artefact is not None:
        training_log = inputs.training_log_beside(Path(artefact))
        if training_log is not None:
            notes.append(f"training log: {training_log} (found beside the artefact)")
    log = inputs.read_training_log(Path(training_log)) if training_log is not None else None
    config_hashes = sorted(
        {m.config_hash for m in metas.values() if m is not None and m.config_hash}
    )
    if len(config_hashes) > 1:
        notes.append(f"the bags were recorded with {len(config_hashes)} different configs")
    if art_meta is not None:
        _artefact_notes(art_meta, space, config_hashes, notes)
    return _Provenance(
        artefact=art_meta,
        training_data=trained,
        artefact_hash=str(art_meta["artefact_hash"]) if art_meta is not None else "none",
        training_log=log,
        config_hashes=config_hashes,
        bag_configs=[m.config for m in metas.values() if m is not None],
    )


def _artefact_notes(
    art_meta: Mapping[str, Any], space: GoalSpace, config_hashes: list[str], notes: list[str]
) -> None:
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


def _episode_audits(
    eps: list[AuditedEpisode],
    splits: Mapping[tuple[str, int], Split],
    space: GoalSpace,
    success_space: GoalSpace,
    relabel: Mapping[str, Any],
    notes: list[str],
) -> list[EpisodeAudit]:
    """Per-episode numbers; a note when no episode says it is an evaluation episode."""
    audits = [
        metrics.episode_audit(
            e, space, success_space, splits.get((str(e.bag), e.episode_id), "unknown"), relabel
        )
        for e in eps
    ]
    if audits and not any(a.split == "eval" for a in audits):
        notes.append(
            "no episode is marked as an evaluation episode (held-out goals): the success "
            "of all episodes mixes in exploration episodes. The writer must record the split "
            "(bag config 'split': 'eval'|'train', or START reason 'eval'|'train')."
        )
    return audits


def _label_context(
    eps: list[AuditedEpisode],
    audits: list[EpisodeAudit],
    space: GoalSpace,
    tolerance: float,
    grid: Grid,
    notes: list[str],
) -> LabelContext:
    """What the rules compare an episode with: the training episodes' cells and goal box."""
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
    train_box: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
    splits = Counter(a.split for a in audits)
    if splits["train"] and splits["eval"]:
        desired = np.stack([eps[i].requested_goal for i in training])
        train_box = (desired.min(axis=0), desired.max(axis=0))
    return LabelContext(
        space=space,
        tolerance=tolerance,
        region=grid.region,
        train_box=train_box,
        fields={},
        grid=grid,
        cell_episodes=training_cells(eps, training, grid),
    )


def _layout_notes(
    ctx: LabelContext,
    region_source: str,
    fields: dict[str, tuple[int, int]],
    notes: list[str],
) -> None:
    """Give the rules the region (if known) and observation layout; note what is missing."""
    if region_source == "desired goals":
        notes.append(
            "the task's goal region is unknown (no goal_region in the bag config, none given): "
            "coverage cells span the desired goals' box and the out-of-region rule is not applied"
        )
        ctx.region = None
    ctx.fields = fields
    if not fields:
        notes.append(
            "no observation layout (artefact observation_layout or bag config observation_fields): "
            "the goal-representation rule uses the whole observation vector"
        )


def _label_failures(
    eps: list[AuditedEpisode], audits: list[EpisodeAudit], ctx: LabelContext
) -> Counter[str]:
    """Label every failed episode (complete ones that missed their requested goal and aborted
    ones, which count as failures); count the labels."""
    for i, (e, audit) in enumerate(zip(eps, audits)):
        if not audit.counted_success:
            audit.failure = label_failure(i, e, audit, ctx)
    return Counter(a.failure.label for a in audits if a.failure is not None)


def _audit_record(r: AuditReport) -> dict[str, Any]:
    """Seeds, settings and the reported metrics in one place, as saved in report.json."""
    log = r.training_log
    return {
        "verdict": r.verdict,
        "findings": [f.code for f in r.findings],
        "goal_space": r.goal_space,
        "tolerance": r.tolerance,
        "relabel_strategy": r.relabel,
        "reward_recompute_test": r.reward_recompute["status_line"],
        "reported_metrics": {
            "requested_success_headline": asdict(r.evaluation["headline"]),
            "requested_success_eval": asdict(r.requested_success["eval"]),
            "requested_success_all": asdict(r.requested_success["all"]),
            "hindsight_ratio_training": log.hindsight_ratio_mean if log else None,
            "hindsight_success_not_a_result": r.hindsight["episode_success"],
            "coverage_desired_cells": r.coverage["desired_cell_fraction"],
            "coverage_region_cells": r.coverage["region_cell_fraction"],
            "safety_cost_total": r.safety["total_cost"],
            "failure_labels": {k: v for k, v in r.failures.items() if v},
        },
        "bags": list(r.bags),
        "config_hashes": list(r.config_hashes),
        "artefact_hash": r.artefact_hash,
        "seeds": r.seeds,
        "saved": f"{TRACE_FILE}: per step the desired, achieved and next-achieved goals "
        "(relabel candidates are the next-achieved goals of the same episode), the recorded "
        "and recomputed rewards; report.json: per episode the rules' numbers",
    }


def _write_trace(path: Path, eps: list[AuditedEpisode], space: GoalSpace) -> Path:
    """Every audited step's goals and rewards, so each number traces back to the bags."""
    dim = space.dim
    rows = [len(e.reward) for e in eps]

    def cat(parts: list[NDArray[Any]], empty: NDArray[Any]) -> NDArray[Any]:
        return np.concatenate(parts) if parts else empty

    desired = [np.broadcast_to(e.requested_goal, e.next_achieved_goal.shape) for e in eps]
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


def _write_outputs(
    report: AuditReport,
    eps: list[AuditedEpisode],
    region: GoalRegion,
    space: GoalSpace,
    out: Path,
    *,
    plots: bool,
) -> None:
    """PNGs (if ``plots``), trace.npz, report.json and report.md into ``out`` (created).

    Written into a staging directory and renamed into place, report.md last: a full disk
    leaves the previous report as it was (a StorageError says so), never half a new one."""
    with StagedOutput(out, last=("report.json", "report.md")) as staged:
        if plots:
            written = write_plots(report, eps, region, staged.dir)
            report.files.update({name: str(staged.final(Path(p).name)) for name, p in written.items()})
        _write_trace(staged.dir / TRACE_FILE, eps, space)
        report.files[TRACE_FILE] = str(staged.final(TRACE_FILE))
        report.files["report.json"] = str(staged.final("report.json"))
        report.files["report.md"] = str(staged.final("report.md"))
        (staged.dir / "report.json").write_text(report.to_json() + "\n", "utf-8")
        (staged.dir / "report.md").write_text(markdown(report), "utf-8")
