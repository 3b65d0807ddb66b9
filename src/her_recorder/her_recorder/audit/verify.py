"""The verdict: does the evaluation in the bags prove its requested-goal success?

:func:`verify` re-derives what it can from the ledger (:mod:`~her_recorder.audit.ledger`)
and checks every invariant the headline relies on, each under its code
(:data:`~her_recorder.audit.findings.CODES`):

* **the plan** is readable, one per evaluation, for a registered task; the goal space,
  units, tolerance and region in the bags are the registry's (and the artefact's);
  the sampler splits cells as training does; the evaluated policy did not explore;
* **the policy**: every step of every evaluation episode names the plan's policy, and
  that is the artefact given to the audit; the bags' recorded config names no other run's
  artefact or training config; no evaluation episode, and no evaluation goal, is in the
  artefact's training data (``training_data.npz``);
* **each episode**: its START split is its bag's; its requested goal is the plan's
  held-out stream goal at its stream index, in a held-out cell, inside the region, never
  a training episode's goal, physically plausible, never equal to one of its own
  achieved goals and never changed during the episode; it ended, aborted or was
  discarded with a reason, and the reader accepted it; rewards recompute;
* **the accounting**: every planned stream index has exactly one episode, no trajectory
  appears twice, and each closed bag's episode counts match its episodes.

The headline counts every evaluation episode in the bags, aborted, discarded, cut off
and invalid ones as failures.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from her_goals import GoalRegion, GoalSpace, cell_split
from her_goals.evaluation import (
    DEFAULT_CELL_SIZE,
    DEFAULT_HELDOUT_EVERY,
    EVAL,
    EXPLORING,
    NO_INDEX,
    POLICY_HOLD,
    POLICY_LEARNER,
    POLICY_RANDOM,
    POLICY_SCRIPTED,
    TRAIN,
    EvaluationPlan,
    implausible,
    registered_goal_space,
)
from her_goals.provenance import ArtefactMetadataError, TrainingData, read_policy_metadata
from her_goals.tasks import TASKS, TaskSpec
from her_recorder.audit.episodes import bag_split, split_word
from her_recorder.audit.findings import finding, verdict
from her_recorder.audit.ledger import BagLedger, LedgerEpisode
from her_recorder.audit.model import EpisodeAudit, Finding, Rate, Split
from her_recorder.reader import Problem

GOAL_ATOL = 1e-9
"""Two goals closer than this in every component (goal units) are the same goal (float precision)."""
NAMED_POLICIES = frozenset({POLICY_SCRIPTED, POLICY_RANDOM, POLICY_HOLD, POLICY_LEARNER})
OWN_CODES = {"desired_goal_changed": "EVAL_GOAL_CHANGED"}
"""Reader problems with a finding of their own."""
RECOMPUTE_KINDS = frozenset({"reward_mismatch", "success_mismatch", "requested_success_mismatch"})
MAX_LISTED = 3
"""Messages listed per finding; the rest are counted."""


@dataclass
class Verification:
    """The verdict, its findings, and the evaluation they are about."""

    verdict: str
    findings: list[Finding]
    evaluation: dict[str, Any]
    splits: dict[tuple[str, int], Split] = field(default_factory=dict)


class _Collector:
    """Findings by code, each with every message and episode it concerns."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[list[str], set[tuple[str, int]], set[str]]] = {}

    def add(
        self, code: str, message: str, *, episode: LedgerEpisode | None = None, bag: Path | str | None = None
    ) -> None:
        messages, episodes, bags = self.items.setdefault(code, ([], set(), set()))
        if message not in messages:
            messages.append(message)
        if episode is not None:
            episodes.add(episode.key)
        if bag is not None:
            bags.add(str(bag))

    def findings(self) -> list[Finding]:
        out = []
        for code, (messages, episodes, bags) in self.items.items():
            text = "; ".join(messages[:MAX_LISTED])
            if len(messages) > MAX_LISTED:
                text += f"; ... {len(messages) - MAX_LISTED} more"
            if episodes:
                text = f"{len(episodes)} episode(s): {text}"
            out.append(finding(code, text, bags=bags, episodes=episodes))
        order = {"failed": 0, "unverified": 1, "warning": 2}
        return sorted(out, key=lambda f: (order.get(f.severity, 3), f.code))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= GOAL_ATOL))


def _vec(values: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def classify(ledger: Sequence[BagLedger]) -> dict[tuple[str, int], Split]:
    """Each episode's split: its bag's plan, else its START split, else the old START reason
    or bag config word (bags written before plans)."""
    out: dict[tuple[str, int], Split] = {}
    for bag in ledger:
        for e in bag.episodes:
            split: Split | None
            if e.plan is not None:
                split = "eval" if e.plan.split == EVAL else "train"
            elif e.split in (EVAL, TRAIN):
                split = "eval" if e.split == EVAL else "train"
            else:
                split = split_word(e.start_reason) or bag_split(bag.meta)
            out[e.key] = split or "unknown"
    return out


@dataclass
class _Inputs:
    ledger: Sequence[BagLedger]
    splits: Mapping[tuple[str, int], Split]
    audits: Mapping[tuple[str, int], EpisodeAudit]
    problems: Mapping[tuple[str, int], set[str]]
    artefact: Mapping[str, Any] | None
    tolerance: float | None
    region: GoalRegion | None
    training_data: TrainingData | None = None


def verify(
    ledger: Sequence[BagLedger],
    audits: Sequence[EpisodeAudit],
    problems: Sequence[Problem],
    *,
    artefact: Mapping[str, Any] | None = None,
    tolerance: float | None = None,
    region: GoalRegion | None = None,
    splits: Mapping[tuple[str, int], Split] | None = None,
    training_data: TrainingData | None = None,
) -> Verification:
    """Check the evaluation in ``ledger``; see the module docstring. ``training_data`` is what
    trained ``artefact`` (None: it records none)."""
    errors: dict[tuple[str, int], set[str]] = defaultdict(set)
    for p in problems:
        if p.severity == "error" and p.episode_id is not None:
            errors[str(p.bag), p.episode_id].add(p.kind)
    inputs = _Inputs(
        ledger,
        splits if splits is not None else classify(ledger),
        {(a.bag, a.episode_id): a for a in audits},
        errors,
        artefact,
        tolerance,
        region,
        training_data,
    )
    found = _Collector()
    evals = [e for bag in ledger for e in bag.episodes if inputs.splits[e.key] == "eval"]
    trains = [e for bag in ledger for e in bag.episodes if inputs.splits[e.key] == "train"]
    _check_bags(inputs, found)
    _check_recompute(inputs, found)
    _check_training(trains, found)
    plans = _plans(evals, found)
    for plan in plans:
        _check_plan(plan, inputs, trains, found)
    _check_episodes(evals, trains, inputs, found)
    _check_trained_on(evals, inputs, found)
    _check_configs(inputs, plans, found)
    for plan in plans:
        _check_accounting(plan, [e for e in evals if e.plan is not None and e.plan.same_as(plan)], found)
    _check_duplicates(evals, found)
    headline, summary = _headline(evals, inputs, plans)
    if not any(bag.episodes for bag in ledger):
        found.add("AUDIT_NO_USABLE_EPISODE", "the bags hold no episode")
    elif not evals:
        found.add("EVAL_NONE", f"{len(trains)} training and no evaluation episode")
    elif not summary["usable"]:
        found.add("AUDIT_NO_USABLE_EPISODE", f"none of the {len(evals)} evaluation episodes ended and was readable")
    findings = found.findings()
    summary["headline"] = headline
    return Verification(verdict(findings), findings, summary, dict(inputs.splits))


# -- bags ----------------------------------------------------------------------------------


def _check_bags(inputs: _Inputs, found: _Collector) -> None:
    """Readable plans; each closed bag's episode counts against its episodes."""
    for bag in inputs.ledger:
        meta = bag.meta
        if meta is None:
            continue
        if meta.plan_error:
            found.add("EVAL_PLAN_MALFORMED", f"{bag.bag.name}: {meta.plan_error}", bag=bag.bag)
        counts = meta.episodes
        if not counts or bag.needs_recovery:
            continue
        have = Counter(e.end for e in bag.episodes)
        ids = [e.episode_id for e in bag.episodes if e.end]  # as the recorder counts on close
        got = {"ended": have["END"], "aborted": have["ABORT"], "discarded": have["DISCARD"]}
        if ids:
            got.update(first_id=min(ids), last_id=max(ids))
        said = {k: counts.get(k) for k in got}
        if said != got:
            found.add(
                "EVAL_BAG_COUNTS_MISMATCH",
                f"{bag.bag.parent.name}/{bag.bag.name}: closed with {json.dumps(said)}, holds {json.dumps(got)}",
                bag=bag.bag,
            )


def _check_recompute(inputs: _Inputs, found: _Collector) -> None:
    for bag in inputs.ledger:
        for e in bag.episodes:
            audit = inputs.audits.get(e.key)
            if audit is None:
                continue
            if audit.reward_mismatches or audit.success_flag_mismatches or audit.end_success_disagrees:
                found.add(
                    "RECOMPUTE_FAILED",
                    f"{e.where()}: {audit.reward_mismatches} reward and {audit.success_flag_mismatches} "
                    f"is_success mismatches, END success {'disagrees' if audit.end_success_disagrees else 'agrees'}",
                    episode=e,
                )


def _check_training(trains: Sequence[LedgerEpisode], found: _Collector) -> None:
    """Training goals of bags with a training plan stay out of held-out cells."""
    for e in trains:
        plan = e.plan
        if plan is None or plan.split != TRAIN or e.desired_goal.size != plan.goal_space.dim:
            continue
        if bool(plan.is_heldout(e.desired_goal)):
            found.add(
                "TRAIN_GOAL_IN_HELDOUT_CELL",
                f"{e.where()}: training goal {_vec(e.desired_goal)} is in a held-out cell",
                episode=e,
            )


# -- the plan ------------------------------------------------------------------------------


def _plans(evals: Sequence[LedgerEpisode], found: _Collector) -> list[EvaluationPlan]:
    """The distinct evaluation plans; episodes without one are unverified."""
    plans: list[EvaluationPlan] = []
    for e in evals:
        if e.plan is None:
            found.add("EVAL_NO_PLAN", f"{e.bag.parent.name}/{e.bag.name} has no evaluation plan", episode=e)
        elif not any(e.plan.same_as(p) for p in plans):
            plans.append(e.plan)
    if len(plans) > 1:
        found.add(
            "EVAL_PLANS_DIFFER",
            f"{len(plans)} different plans (stream seeds {[p.stream_seed for p in plans]}, planned "
            f"{[p.planned_episodes for p in plans]}, policies {[p.policy[:12] for p in plans]})",
        )
    return plans


def _registered(task: str) -> tuple[TaskSpec, GoalSpace] | None:
    spec = TASKS.get(task)
    return None if spec is None else (spec, registered_goal_space(spec))


def _space_checks(where: str, space: GoalSpace, want: GoalSpace, found: _Collector, **at: Any) -> None:
    """The goal space ``space`` recorded at ``where`` against the registered ``want``."""
    if (space.name, space.dim, space.frame, space.periodic) != (want.name, want.dim, want.frame, want.periodic):
        found.add(
            "EVAL_GOAL_SPACE_MISMATCH",
            f"{where}: goal space {space.name!r} (dim {space.dim}, frame {space.frame!r}), registered "
            f"{want.name!r} (dim {want.dim}, frame {want.frame!r})",
            **at,
        )
    if space.units != want.units:
        found.add("EVAL_UNITS_MISMATCH", f"{where}: units {space.units!r}, registered {want.units!r}", **at)
    if not math.isclose(space.tolerance, want.tolerance, rel_tol=1e-12, abs_tol=0.0):
        found.add(
            "EVAL_TOLERANCE_MISMATCH",
            f"{where}: tolerance {space.tolerance:g} {space.units}, registered {want.tolerance:g} {want.units}",
            **at,
        )


def _region_differs(a: GoalRegion, b: GoalRegion) -> bool:
    return (
        len(a.low) != len(b.low)
        or not np.allclose(a.low, b.low, rtol=0, atol=1e-12)
        or not np.allclose(a.high, b.high, rtol=0, atol=1e-12)
        or not math.isclose(a.floor_fraction, b.floor_fraction, abs_tol=1e-12)
    )


def _check_plan(plan: EvaluationPlan, inputs: _Inputs, trains: Sequence[LedgerEpisode], found: _Collector) -> None:
    bags = [b for b in inputs.ledger if b.meta is not None and b.meta.plan is not None and b.meta.plan.same_as(plan)]
    reg = _registered(plan.task)
    if reg is None:
        found.add("EVAL_PLAN_TASK_MISMATCH", f"plan task {plan.task!r} is not registered ({', '.join(TASKS)})")
    for b in bags:
        assert b.meta is not None
        if b.meta.task != plan.task:
            found.add("EVAL_PLAN_TASK_MISMATCH", f"{b.bag.name}: bag task {b.meta.task!r}, plan {plan.task!r}", bag=b.bag)
        if reg is not None:
            _space_checks(f"{b.bag.name} metadata", b.meta.goal_space, reg[1], found, bag=b.bag)
    if reg is not None:
        spec, space = reg
        _space_checks("evaluation plan", plan.goal_space, space, found)
        if _region_differs(plan.goal_region, spec.goal_region):
            found.add(
                "EVAL_REGION_MISMATCH",
                f"plan region {list(plan.goal_region.low)} .. {list(plan.goal_region.high)}, task "
                f"{plan.task!r} registers {list(spec.goal_region.low)} .. {list(spec.goal_region.high)}",
            )
    if inputs.region is not None and _region_differs(plan.goal_region, inputs.region):
        found.add(
            "EVAL_REGION_MISMATCH",
            f"plan region {list(plan.goal_region.low)} .. {list(plan.goal_region.high)}, --region "
            f"{list(inputs.region.low)} .. {list(inputs.region.high)}",
        )
    _check_sampler(plan, trains, found)
    why = implausible(plan.goal_space, np.vstack([plan.goal_region.low, plan.goal_region.high]), plan.goal_space.tolerance)
    if why:
        found.add("EVAL_VALUES_IMPLAUSIBLE", f"evaluation plan (region, tolerance): {why}")
    if plan.planned_episodes == 0:
        found.add("EVAL_OPEN_ENDED", "the plan has planned_episodes 0 (open-ended)")
    if reg is not None and inputs.tolerance is not None and not math.isclose(inputs.tolerance, reg[1].tolerance):
        found.add(
            "AUDIT_TOLERANCE_OVERRIDDEN",
            f"success measured with tolerance {inputs.tolerance:g}, registered {reg[1].tolerance:g}",
        )
    _check_policy(plan, inputs, found)


def _check_sampler(plan: EvaluationPlan, trains: Sequence[LedgerEpisode], found: _Collector) -> None:
    settings = {(DEFAULT_CELL_SIZE, DEFAULT_HELDOUT_EVERY)}
    settings |= {(e.plan.cell_size, e.plan.heldout_every) for e in trains if e.plan is not None}
    mine = (plan.cell_size, plan.heldout_every)
    others = sorted(s for s in settings if s != mine)
    if others:
        found.add(
            "EVAL_SAMPLER_MISMATCH",
            f"plan cells {plan.cell_size:g} / heldout_every {plan.heldout_every}; training "
            f"(and the GoalSampler default) {others}",
        )


def _check_policy(plan: EvaluationPlan, inputs: _Inputs, found: _Collector) -> None:
    policy = plan.policy
    if policy.endswith(EXPLORING):
        found.add("EVAL_EXPLORING_POLICY", f"plan policy {policy!r} acted with exploration")
    base = policy.removesuffix(EXPLORING)
    art = inputs.artefact
    if art is None:
        if base not in NAMED_POLICIES:
            found.add("EVAL_NO_ARTEFACT", f"the plan's policy is artefact {base[:16]}..., none was audited")
        return
    art_hash = str(art.get("artefact_hash", ""))
    if base != art_hash:
        found.add(
            "EVAL_ARTEFACT_MISMATCH",
            f"the plan's policy is {base[:16] or 'unnamed'}, the audited artefact {art_hash[:16]}",
        )
    env = str((art.get("provenance") or {}).get("env", ""))
    if env.startswith("task:") and env != f"task:{plan.task}":
        found.add("EVAL_ARTEFACT_MISMATCH", f"the artefact was trained on {env!r}, the plan evaluates task {plan.task!r}")
    reg = _registered(plan.task)
    if reg is not None and isinstance(art.get("goal_space"), Mapping):
        try:
            art_space = GoalSpace.from_spec(art["goal_space"])
        except (ValueError, TypeError):
            found.add("EVAL_ARTEFACT_MISMATCH", "the artefact's goal space cannot be read")
        else:
            _space_checks("artefact", art_space, reg[1], found)


def _check_trained_on(evals: Sequence[LedgerEpisode], inputs: _Inputs, found: _Collector) -> None:
    """No evaluation episode, and no evaluation goal (exact float equality), is in the data
    that trained the audited artefact."""
    if inputs.artefact is None or not evals:
        return
    data = inputs.training_data
    if data is None:
        found.add("EVAL_TRAINING_DATA_UNKNOWN", "the artefact has no training_data.npz")
        return
    digests = {int(d) for d in data.digests.tolist()}
    goals = {np.ascontiguousarray(g, dtype=np.float64).tobytes() for g in data.goals}
    n = int(data.digests.size)
    for e in evals:
        if e.digest is not None and e.digest in digests:
            found.add(
                "EVAL_TRAINED_ON_EVAL",
                f"{e.where()} is one of the artefact's {n} training episodes (same observations, actions, goal)",
                episode=e,
            )
        elif e.desired_goal.size and np.ascontiguousarray(e.desired_goal, dtype=np.float64).tobytes() in goals:
            found.add(
                "EVAL_TRAINED_ON_EVAL",
                f"{e.where()}: goal {_vec(e.desired_goal)} is the requested goal of one of the artefact's "
                f"{n} training episodes",
                episode=e,
            )


CONFIG_HASH_KEYS = ("train_config_hash",)
"""Keys of an evaluation bag's config naming the training config of the evaluated policy."""


def _config_artefacts(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, hash) of each artefact an evaluation bag's config names: its ``artefact_hash``, and
    the hash in the policy.json at its ``artefact`` path (her sim: ``policy``) when that path is
    readable here (a path that is not says nothing either way)."""
    out = []
    named = config.get("artefact_hash")
    if isinstance(named, str) and named:
        out.append(("artefact_hash", named))
    path = config.get("artefact") or config.get("policy")
    if isinstance(path, str) and path and path not in NAMED_POLICIES and Path(path).exists():
        try:
            out.append((f"artefact {path}", str(read_policy_metadata(path)["artefact_hash"])))
        except ArtefactMetadataError:
            pass
    return out


def _check_configs(inputs: _Inputs, plans: Sequence[EvaluationPlan], found: _Collector) -> None:
    """Each evaluation bag's recorded config (``her.config``) names the plan's policy: the
    artefact hash or path it names, and its training config hash against the audited artefact's."""
    art = inputs.artefact
    art_hash = str(art.get("artefact_hash", "")) if art is not None else ""
    art_config = str((art.get("provenance") or {}).get("config_hash", "")) if art is not None else ""
    for bag in inputs.ledger:
        meta = bag.meta
        if meta is None or meta.plan is None or meta.plan.split != EVAL or not isinstance(meta.config, Mapping):
            continue
        policy = meta.plan.policy.removesuffix(EXPLORING)
        where = f"{bag.bag.parent.name}/{bag.bag.name}"
        for what, named in _config_artefacts(meta.config):
            if named != policy:
                found.add(
                    "EVAL_CONFIG_MISMATCH",
                    f"{where}: its config's {what} is {named[:16]}, its plan's policy {policy[:16]}",
                    bag=bag.bag,
                )
        for key in CONFIG_HASH_KEYS:
            value = meta.config.get(key)
            if isinstance(value, str) and value and art_config and policy == art_hash and value != art_config:
                found.add(
                    "EVAL_CONFIG_MISMATCH",
                    f"{where}: its config's {key} is {value}, the evaluated artefact was trained with "
                    f"config {art_config}: the bag names another run",
                    bag=bag.bag,
                )


# -- each evaluation episode -----------------------------------------------------------------


def _check_episodes(
    evals: Sequence[LedgerEpisode], trains: Sequence[LedgerEpisode], inputs: _Inputs, found: _Collector
) -> None:
    training_goals = {tuple(np.round(e.desired_goal, 12).tolist()) for e in trains}
    samplers: dict[str, Any] = {}
    for e in evals:
        plan = e.plan
        reg = _registered(plan.task if plan is not None else (e.task or ""))
        space = plan.goal_space if plan is not None else (reg[1] if reg is not None else None)
        _check_events(e, inputs, found)
        if plan is not None:
            key = json.dumps(plan.to_dict(), sort_keys=True)
            sampler = samplers.setdefault(key, plan.sampler())
            _check_provenance(e, plan, sampler, found)
        if reg is not None:
            if e.task and e.task != reg[0].name:
                found.add("EVAL_PLAN_TASK_MISMATCH", f"{e.where()}: START task {e.task!r}, plan {reg[0].name!r}", episode=e)
            if e.goal_space and e.goal_space != reg[1].name:
                found.add(
                    "EVAL_GOAL_SPACE_MISMATCH",
                    f"{e.where()}: START goal space {e.goal_space!r}, registered {reg[1].name!r}",
                    episode=e,
                )
            for _, tol, name in e.goal_messages[:1]:
                if name != reg[1].name:
                    found.add("EVAL_GOAL_SPACE_MISMATCH", f"{e.where()}: desired-goal message in {name!r}", episode=e)
                if not math.isclose(tol, reg[1].tolerance, rel_tol=1e-12, abs_tol=0.0):
                    found.add(
                        "EVAL_TOLERANCE_MISMATCH",
                        f"{e.where()}: desired-goal message tolerance {tol:g}, registered {reg[1].tolerance:g}",
                        episode=e,
                    )
        if space is not None and e.desired_goal.shape == (space.dim,):
            _check_goal(e, plan, reg, space, training_goals, found)


def _check_events(e: LedgerEpisode, inputs: _Inputs, found: _Collector) -> None:
    kinds = inputs.problems.get(e.key, set())
    if e.starts != 1 or e.ends > 1:
        found.add("EVAL_EPISODE_INVALID", f"{e.where()}: {e.starts} START and {e.ends} end events", episode=e)
    elif not e.end:
        found.add("EVAL_EPISODE_INCOMPLETE", f"{e.where()}: START and {e.steps} steps, no end", episode=e)
    elif e.end in ("ABORT", "DISCARD"):
        if not e.end_reason.strip():
            found.add("EVAL_END_WITHOUT_REASON", f"{e.where()}: {e.end} without a reason", episode=e)
        found.add("EVAL_EPISODES_NOT_COMPLETED", f"{e.where()}: {e.end} ({e.end_reason or 'no reason'})", episode=e)
    elif e.end != "END":
        found.add("EVAL_EPISODE_INVALID", f"{e.where()}: end event {e.end}", episode=e)
    invalid = sorted(kinds - RECOMPUTE_KINDS - set(OWN_CODES))
    if invalid and e.starts == 1:
        found.add("EVAL_EPISODE_INVALID", f"{e.where()}: the reader found {', '.join(invalid)}", episode=e)


def _check_provenance(e: LedgerEpisode, plan: EvaluationPlan, sampler: Any, found: _Collector) -> None:
    if e.split is None or e.stream_index is None or None in e.policies:
        found.add("EVAL_PROVENANCE_MISSING", f"{e.bag.parent.name}/{e.bag.name}: older message definitions", episode=e)
        return
    if e.split != plan.split:
        found.add("EVAL_SPLIT_MISMATCH", f"{e.where()}: START split {e.split!r}, plan {plan.split!r}", episode=e)
    index = e.stream_index
    if index == NO_INDEX or index < 0:
        found.add("EVAL_INDEX_MISSING", f"{e.where()}: stream index {index}", episode=e)
    elif plan.planned_episodes and index >= plan.planned_episodes:
        found.add(
            "EVAL_INDEX_OUT_OF_PLAN", f"{e.where()}: index {index}, planned 0..{plan.planned_episodes - 1}", episode=e
        )
    elif e.desired_goal.shape == (plan.goal_space.dim,):
        expected = plan.goal(index, sampler)
        if not _same(e.desired_goal, expected):
            found.add(
                "EVAL_GOAL_NOT_FROM_STREAM",
                f"{e.where()}: goal {_vec(e.desired_goal)}, stream index {index} gives {_vec(expected)}",
                episode=e,
            )
    others = {p: n for p, n in e.policies.items() if p != plan.policy}
    if others:
        names = ", ".join(f"{(p or 'unnamed')[:16]} ({n} steps)" for p, n in others.items())
        found.add("EVAL_POLICY_MISMATCH", f"{e.where()}: {names}; the plan's is {plan.policy[:16]}", episode=e)


def _check_goal(
    e: LedgerEpisode,
    plan: EvaluationPlan | None,
    reg: tuple[TaskSpec, GoalSpace] | None,
    space: GoalSpace,
    training_goals: set[tuple[float, ...]],
    found: _Collector,
) -> None:
    goal = e.desired_goal
    changed = [v for v, _, _ in e.goal_messages if not _same(v, goal)]
    if e.step_goal_changed is not None or changed:
        at = f"step {e.step_goal_changed}" if e.step_goal_changed is not None else "a desired-goal message"
        found.add("EVAL_GOAL_CHANGED", f"{e.where()}: the requested goal differs from the START's at {at}", episode=e)
    cells = (plan.cell_size, plan.heldout_every) if plan is not None else (DEFAULT_CELL_SIZE, DEFAULT_HELDOUT_EVERY)
    if not bool(cell_split(goal, *cells)):
        found.add("EVAL_GOAL_NOT_HELDOUT", f"{e.where()}: goal {_vec(goal)} is in a training cell", episode=e)
    if tuple(np.round(goal, 12).tolist()) in training_goals:
        found.add("EVAL_GOAL_IN_TRAINING_DATA", f"{e.where()}: goal {_vec(goal)} is a training episode's", episode=e)
    region = plan.goal_region if plan is not None else (reg[0].goal_region if reg is not None else None)
    if region is not None and region.dim == goal.size and not bool(region.contains(goal, margin=GOAL_ATOL)):
        found.add(
            "EVAL_GOAL_OUTSIDE_REGION",
            f"{e.where()}: goal {_vec(goal)} outside {list(region.low)} .. {list(region.high)}",
            episode=e,
        )
    if e.achieved.ndim == 2 and e.achieved.shape[1] == goal.size and e.achieved.size:
        close = np.all(np.abs(e.achieved - goal) <= GOAL_ATOL, axis=-1)
        if close.any():
            found.add(
                "EVAL_GOAL_EQUALS_ACHIEVED",
                f"{e.where()}: goal {_vec(goal)} equals {int(close.sum())} of its achieved goals",
                episode=e,
            )
    values = np.vstack([goal[None, :], e.achieved]) if e.achieved.ndim == 2 and e.achieved.shape[1] == goal.size else goal[None, :]
    why = implausible(space, values[np.isfinite(values).all(axis=-1)])
    if why:
        found.add("EVAL_VALUES_IMPLAUSIBLE", f"{e.where()}: {why}", episode=e)


# -- accounting ---------------------------------------------------------------------------------


def _check_accounting(plan: EvaluationPlan, episodes: Sequence[LedgerEpisode], found: _Collector) -> None:
    """Every planned index has one episode (duplicates, gaps, a missing tail)."""
    by_index: dict[int, list[LedgerEpisode]] = defaultdict(list)
    for e in episodes:
        if e.stream_index is not None and e.stream_index >= 0:
            by_index[e.stream_index].append(e)
    for index, group in sorted(by_index.items()):
        if len(group) > 1:
            for e in group:
                found.add(
                    "EVAL_INDEX_DUPLICATE",
                    f"stream index {index}: {', '.join(g.where() for g in group)}",
                    episode=e,
                )
    if not plan.planned_episodes or any(e.stream_index is None for e in episodes):
        return  # open-ended, or indices not recorded (EVAL_OPEN_ENDED, EVAL_PROVENANCE_MISSING)
    have = set(by_index)
    top = max(have, default=-1)
    gaps = sorted(set(range(min(top, plan.planned_episodes))) - have)
    if gaps:
        found.add("EVAL_INDEX_GAP", f"stream indices {gaps[:10]}{'...' if len(gaps) > 10 else ''} have no episode")
    tail = plan.planned_episodes - 1 - top
    if tail > 0:
        found.add(
            "EVAL_PLANNED_NOT_ACCOUNTED",
            f"{plan.planned_episodes} planned, the last {tail} (indices {top + 1}..{plan.planned_episodes - 1}) "
            "are not in the bags",
        )


def _check_duplicates(evals: Sequence[LedgerEpisode], found: _Collector) -> None:
    by_trajectory: dict[str, list[LedgerEpisode]] = defaultdict(list)
    for e in evals:
        if e.trajectory:
            by_trajectory[e.trajectory].append(e)
    for group in by_trajectory.values():
        if len(group) > 1:
            for e in group:
                found.add(
                    "EVAL_DUPLICATE_TRAJECTORY",
                    f"identical trajectories: {', '.join(g.where() for g in group)}",
                    episode=e,
                )


# -- the headline -----------------------------------------------------------------------------


def _headline(
    evals: Sequence[LedgerEpisode], inputs: _Inputs, plans: Sequence[EvaluationPlan]
) -> tuple[Rate, dict[str, Any]]:
    """Requested-goal success over every evaluation episode in the bags (aborted, discarded,
    incomplete and invalid ones as failures), and the accounting behind it."""
    counts: Counter[str] = Counter()
    successes = usable = 0
    complete: list[bool] = []
    for e in evals:
        audit = inputs.audits.get(e.key)
        invalid = e.starts != 1 or e.ends > 1 or bool(inputs.problems.get(e.key, set()) - RECOMPUTE_KINDS)
        kind = "invalid" if invalid else {"END": "ended", "ABORT": "aborted", "DISCARD": "discarded", "": "incomplete"}.get(
            e.end, "invalid"
        )
        counts[kind] += 1
        if kind == "ended" and audit is not None and audit.status == "complete":
            usable += 1
            complete.append(audit.requested_success)
            successes += int(audit.requested_success)
    summary: dict[str, Any] = {
        "plans": [p.to_dict() for p in plans],
        "planned_episodes": sum(p.planned_episodes for p in plans),
        "episodes": len(evals),
        "accounting": {k: counts.get(k, 0) for k in ("ended", "aborted", "discarded", "incomplete", "invalid")},
        "usable": usable,
        "complete_only": Rate.of(sum(complete), len(complete)),
        "headline_rule": "requested-goal success of every evaluation episode in the bags: ended "
        "episodes by is_success(final achieved goal, requested goal); aborted, discarded, "
        "incomplete and invalid episodes count as failures",
    }
    return Rate.of(successes, len(evals)), summary
