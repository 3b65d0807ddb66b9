"""Mutation tests of the audit: plant each violation in a clean evaluation, the way a careful
reviewer edits bags (read every message with rosbags, change some, write a new bag), and check
that the audit names it by its code; the clean evaluation itself is verified with no finding.

The clean evaluation is small and demo-like: the scripted reach controller driven through the
same control loop as ``her demo`` (action limits, safety monitor) on the plan's held-out goals,
recorded by EpisodeRecorder with the plan, beside a short training session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from her_recorder_testlib import bag_strings, rewrite_bag

from her_goals.evaluation import POLICY_LEARNER, EvaluationPlan
from her_recorder import EpisodeRecorder
from her_recorder import interfaces as ifc
from her_recorder.audit import AuditReport, run_audit
from her_recorder.audit.findings import CODES
from her_recorder.bagmeta import KEY_GOAL_SPACE, KEY_PLAN
from her_recorder.reader import read_episodes

her_mujoco = pytest.importorskip("her_mujoco")
sim = pytest.importorskip("her_policy.app.sim")
sinks = pytest.importorskip("her_policy.deploy.sinks")

N_EVAL = 6
N_TRAIN = 3
Items = list[tuple[str, Any, int]]


@dataclass
class Clean:
    """The clean control: an evaluation session and a training session, with their plans."""

    root: Path
    evaluation: Path
    training: Path
    plan: EvaluationPlan
    train_goals: np.ndarray
    final_distance: dict[int, float] = field(default_factory=dict)


def _record(path: Path, env: Any, plan: EvaluationPlan, goals: np.ndarray, policy: str) -> None:
    task = env.unwrapped
    actor = sim.policy_actor(env, "scripted")
    with EpisodeRecorder(
        path, goal_space=task.goal_space, task="reach", config={"split": plan.split},
        seeds={"run": 0}, plan=plan, fsync=False,
    ) as rec:  # fmt: skip
        sink = sinks.RecorderSink(rec, split=plan.split, policy=policy)
        loop = sim.sim_control_loop(env, actor, sink=sink, raw_recorder=rec)
        sim.run_requested_goals(env, loop, goals, seed=0)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    root = tmp_path_factory.mktemp("mutations")
    env = her_mujoco.make_task("reach")
    sampler = env.unwrapped.goal_sampler
    plan = EvaluationPlan.for_task(
        "reach", "eval", planned_episodes=N_EVAL, policy="scripted", stream_seed=3, sampler=sampler
    )
    train_plan = EvaluationPlan.for_task("reach", "train", policy=POLICY_LEARNER, sampler=sampler)
    sampler.reset(11)
    train_goals = sampler.sample(N_TRAIN)
    _record(root / "train", env, train_plan, train_goals, POLICY_LEARNER)
    _record(root / "eval", env, plan, plan.goals(), "scripted")
    env.close()
    read = read_episodes(root / "eval", log_summary=False)
    distances = {
        e.episode_id: float(plan.goal_space.distance(e.next_achieved_goal[-1], e.desired_goal[0]))
        for e in read.episodes
    }
    return Clean(root, root / "eval", root / "train", plan, train_goals, distances)


def audit(clean: Clean, out: Path, evaluation: Path | None = None, training: Path | None = None,
          **kwargs: Any) -> AuditReport:  # fmt: skip
    bags = [training or clean.training, evaluation or clean.evaluation]
    return run_audit(bags, out_dir=out, plots=False, **kwargs)


def codes(report: AuditReport) -> set[str]:
    return {f.code for f in report.findings}


# -- editing helpers ------------------------------------------------------------------------------


def episode_ids(items: Items) -> list[int]:
    return sorted({int(m.episode_id) for topic, m, _ in items if topic == ifc.TOPIC_EPISODE})


def of(items: Items, episode_id: int, topic: str | None = None) -> list[Any]:
    """The decoded messages of one episode (optionally of one topic), in bag order."""
    return [
        m for t, m, _ in items
        if not isinstance(m, bytes) and (topic is None or t == topic) and int(m.episode_id) == episode_id
    ]  # fmt: skip


def start(items: Items, episode_id: int) -> Any:
    return next(m for m in of(items, episode_id, ifc.TOPIC_EPISODE) if m.event == ifc.EventKind.START)


def end(items: Items, episode_id: int) -> Any:
    return next(m for m in of(items, episode_id, ifc.TOPIC_EPISODE) if m.event != ifc.EventKind.START)


def recompute(items: Items, episode_id: int, space: Any) -> None:
    """Rewards, is_success and END success from the goal space, as a careful editor would."""
    steps = of(items, episode_id, ifc.TOPIC_STEP)
    for s in steps:
        ok = bool(space.is_success(s.next_achieved_goal, s.desired_goal))
        s.reward, s.is_success = float(ok) - 1.0, ok
    last = steps[-1]
    e = end(items, episode_id)
    if e.event == ifc.EventKind.END:
        e.success = bool(space.is_success(last.next_achieved_goal, last.desired_goal))


def set_goal(items: Items, episode_id: int, goal: np.ndarray, space: Any, from_step: int = 0) -> None:
    """Replace the requested goal everywhere it is recorded (from step ``from_step`` on)."""
    goal = np.asarray(goal, dtype=np.float64)
    if from_step == 0:
        for m in of(items, episode_id, ifc.TOPIC_EPISODE):
            m.desired_goal = goal.copy()
        for m in of(items, episode_id, ifc.TOPIC_DESIRED_GOAL):
            m.value = goal.copy()
    for s in of(items, episode_id, ifc.TOPIC_STEP):
        if s.step >= from_step:
            s.desired_goal = goal.copy()
    recompute(items, episode_id, space)


def drop_episode(items: Items, episode_id: int) -> Items:
    return [
        (t, m, ts) for t, m, ts in items
        if isinstance(m, bytes) or t not in (ifc.TOPIC_STEP, ifc.TOPIC_EPISODE, ifc.TOPIC_DESIRED_GOAL)
        or int(m.episode_id) != episode_id
    ]  # fmt: skip


def edit_plan(strings: dict[str, str], **changes: Any) -> dict[str, str]:
    plan = json.loads(strings[KEY_PLAN])
    for key, value in changes.items():
        if isinstance(value, dict):
            plan[key] = {**plan[key], **value}
        else:
            plan[key] = value
    strings[KEY_PLAN] = json.dumps(plan)
    return strings


def edit_space(strings: dict[str, str], **changes: Any) -> dict[str, str]:
    space = {**json.loads(strings[KEY_GOAL_SPACE]), **changes}
    strings[KEY_GOAL_SPACE] = json.dumps(space)
    return edit_plan(strings, goal_space=changes)


# -- the mutations ---------------------------------------------------------------------------------


@dataclass
class Mutation:
    """One planted violation: how the bags are edited, and the code that must flag it."""

    code: str
    eval_edit: Callable[[Items, Clean], Items] | None = None
    eval_meta: Callable[[dict[str, str], Clean], dict[str, str]] | None = None
    train_edit: Callable[[Items, Clean], Items] | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    recount: bool = True
    verdict: str = "failed"


def _worst(clean: Clean) -> int:
    return max(clean.final_distance, key=lambda k: clean.final_distance[k])


def relabel_to_final_achieved(items: Items, clean: Clean) -> Items:
    """The seeds' illegal relabel: each requested goal rewritten to the episode's final achieved goal."""
    for eid in episode_ids(items):
        final = of(items, eid, ifc.TOPIC_STEP)[-1].next_achieved_goal
        set_goal(items, eid, final, clean.plan.goal_space)
    return items


def training_stream_goals(items: Items, clean: Clean) -> Items:
    sampler = clean.plan.sampler()
    sampler.reset(99)
    for eid, goal in zip(episode_ids(items), sampler.sample(N_EVAL), strict=True):
        set_goal(items, eid, goal, clean.plan.goal_space)
    return items


def goals_of_training_bags(items: Items, clean: Clean) -> Items:
    set_goal(items, episode_ids(items)[1], clean.train_goals[0], clean.plan.goal_space)
    return items


def discard_worst(items: Items, clean: Clean) -> Items:
    e = end(items, _worst(clean))
    e.event, e.success, e.reason = int(ifc.EventKind.DISCARD), False, "operator"
    return items


def delete_worst(items: Items, clean: Clean) -> Items:
    return drop_episode(items, _worst(clean))


def delete_middle(items: Items, clean: Clean) -> Items:
    return drop_episode(items, 2)


def delete_last(items: Items, clean: Clean) -> Items:
    return drop_episode(items, episode_ids(items)[-1])


def duplicate_index(items: Items, clean: Clean) -> Items:
    """Episode 3 claims stream index 2, and carries index 2's goal (a re-run of goal 2)."""
    set_goal(items, 3, clean.plan.goal(2), clean.plan.goal_space)
    start(items, 3).stream_index = 2
    for m in of(items, 3, ifc.TOPIC_EPISODE):
        m.stream_index = 2
    return items


def duplicate_trajectory(items: Items, clean: Clean) -> Items:
    """Episode 4 gets episode 1's trajectory (states, actions, achieved goals), its own goal."""
    source = of(items, 1, ifc.TOPIC_STEP)
    for s, copy in zip(of(items, 4, ifc.TOPIC_STEP), source, strict=True):
        for name in ("observation", "next_observation", "action_raw", "action_applied",
                     "achieved_goal", "next_achieved_goal"):  # fmt: skip
            setattr(s, name, np.array(getattr(copy, name)))
    recompute(items, 4, clean.plan.goal_space)
    return items


def goal_changed_mid_episode(items: Items, clean: Clean) -> Items:
    set_goal(items, 1, clean.plan.goal(4), clean.plan.goal_space, from_step=25)
    return items


def step_of_another_artefact(items: Items, clean: Clean) -> Items:
    of(items, 2, ifc.TOPIC_STEP)[10].policy = "f" * 64
    return items


def goal_outside_region(items: Items, clean: Clean) -> Items:
    set_goal(items, 0, np.array([0.75, 0.0, 0.2]), clean.plan.goal_space)
    return items


def split_flipped(items: Items, clean: Clean) -> Items:
    start(items, 2).split = "train"
    return items


def index_removed(items: Items, clean: Clean) -> Items:
    start(items, 0).stream_index = -1
    return items


def index_beyond_plan(items: Items, clean: Clean) -> Items:
    start(items, 1).stream_index = N_EVAL + 3
    return items


def abort_without_reason(items: Items, clean: Clean) -> Items:
    e = end(items, 1)
    e.event, e.success, e.reason = int(ifc.EventKind.ABORT), False, ""
    return items


def end_removed(items: Items, clean: Clean) -> Items:
    last = episode_ids(items)[-1]
    e = end(items, last)
    return [(t, m, ts) for t, m, ts in items if m is not e]


def end_success_flipped(items: Items, clean: Clean) -> Items:
    e = end(items, 0)
    e.success = not e.success
    return items


def values_in_centimetres(items: Items, clean: Clean) -> Items:
    """Every goal in centimetres while the units still say metres (with a matching plan)."""
    for t, m, _ in items:
        if t == ifc.TOPIC_STEP:
            for name in ("achieved_goal", "next_achieved_goal", "desired_goal"):
                setattr(m, name, np.asarray(getattr(m, name)) * 100.0)
        elif t == ifc.TOPIC_EPISODE:
            m.desired_goal = np.asarray(m.desired_goal) * 100.0
        elif t == ifc.TOPIC_DESIRED_GOAL:
            m.value = np.asarray(m.value) * 100.0
    return items


def centimetre_plan(strings: dict[str, str], clean: Clean) -> dict[str, str]:
    region = clean.plan.goal_region
    return edit_plan(
        strings, goal_region={"low": [v * 100 for v in region.low], "high": [v * 100 for v in region.high]}
    )


def tolerance_doubled(items: Items, clean: Clean) -> Items:
    space = clean.plan.goal_space.with_tolerance(0.1)
    for eid in episode_ids(items):
        for m in of(items, eid, ifc.TOPIC_DESIRED_GOAL):
            m.tolerance = 0.1
        recompute(items, eid, space)  # consistent with the edited tolerance
    return items


def train_goal_from_heldout(items: Items, clean: Clean) -> Items:
    set_goal(items, episode_ids(items)[0], clean.plan.goal(0), clean.plan.goal_space)
    return items


MUTATIONS: dict[str, Mutation] = {
    "relabel to final achieved goal": Mutation("EVAL_GOAL_EQUALS_ACHIEVED", relabel_to_final_achieved),
    "goals from the training stream": Mutation("EVAL_GOAL_NOT_HELDOUT", training_stream_goals),
    "a training bag's goal": Mutation("EVAL_GOAL_IN_TRAINING_DATA", goals_of_training_bags),
    "goals not the stream's": Mutation("EVAL_GOAL_NOT_FROM_STREAM", training_stream_goals),
    "worst episode deleted": Mutation("EVAL_PLANNED_NOT_ACCOUNTED|EVAL_INDEX_GAP", delete_worst),
    "gap in stream indices": Mutation("EVAL_INDEX_GAP", delete_middle),
    "last episodes deleted": Mutation("EVAL_PLANNED_NOT_ACCOUNTED", delete_last),
    "duplicated stream index": Mutation("EVAL_INDEX_DUPLICATE", duplicate_index),
    "duplicated trajectory": Mutation("EVAL_DUPLICATE_TRAJECTORY", duplicate_trajectory),
    "goal changed mid-episode": Mutation("EVAL_GOAL_CHANGED", goal_changed_mid_episode),
    "tolerance differs from the registry": Mutation(
        "EVAL_TOLERANCE_MISMATCH", tolerance_doubled, lambda s, c: edit_space(s, tolerance=0.1)
    ),
    "units differ from the registry": Mutation(
        "EVAL_UNITS_MISMATCH", eval_meta=lambda s, c: edit_space(s, units="cm")
    ),
    "centimetres recorded as metres": Mutation("EVAL_VALUES_IMPLAUSIBLE", values_in_centimetres, centimetre_plan),
    "a step of another artefact": Mutation("EVAL_POLICY_MISMATCH", step_of_another_artefact),
    "planned count larger than the episodes": Mutation(
        "EVAL_PLANNED_NOT_ACCOUNTED", eval_meta=lambda s, c: edit_plan(s, planned_episodes=N_EVAL + 2)
    ),
    "goal outside the task region": Mutation("EVAL_GOAL_OUTSIDE_REGION", goal_outside_region),
    "a training episode among the evaluation": Mutation("EVAL_SPLIT_MISMATCH", split_flipped),
    "stream index removed": Mutation("EVAL_INDEX_MISSING", index_removed),
    "stream index beyond the plan": Mutation("EVAL_INDEX_OUT_OF_PLAN", index_beyond_plan),
    "abort without a reason": Mutation("EVAL_END_WITHOUT_REASON", abort_without_reason),
    "end event removed": Mutation("EVAL_EPISODE_INCOMPLETE", end_removed),
    "END success flipped": Mutation("RECOMPUTE_FAILED", end_success_flipped),
    "episode deleted, counts kept": Mutation("EVAL_BAG_COUNTS_MISMATCH", delete_middle, recount=False),
    "plan region differs from the task's": Mutation(
        "EVAL_REGION_MISMATCH", eval_meta=lambda s, c: edit_plan(s, goal_region={"low": [0.3, -0.2, 0.05]})
    ),
    "sampler cells differ from training": Mutation(
        "EVAL_SAMPLER_MISMATCH", eval_meta=lambda s, c: edit_plan(s, heldout_every=4)
    ),
    "evaluated with exploration": Mutation(
        "EVAL_EXPLORING_POLICY", eval_meta=lambda s, c: edit_plan(s, policy="scripted+explore")
    ),
    "plan edited into garbage": Mutation("EVAL_PLAN_MALFORMED", eval_meta=lambda s, c: {**s, KEY_PLAN: "{"}),
    "evaluation goal trained on": Mutation("TRAIN_GOAL_IN_HELDOUT_CELL", train_edit=train_goal_from_heldout),
    "another artefact audited": Mutation("EVAL_ARTEFACT_MISMATCH", audit={"artefact": "fake"}),
    "plan removed (older bags)": Mutation(
        "EVAL_NO_PLAN", eval_meta=lambda s, c: {k: v for k, v in s.items() if k != KEY_PLAN}, verdict="unverified"
    ),
    "worst episode discarded": Mutation("EVAL_EPISODES_NOT_COMPLETED", discard_worst, verdict="verified"),
}


def artefact_dir(path: Path, space: Any) -> Path:
    """A policy.json as her_policy writes it (hash over the canonical JSON), no weights, and
    its training data (none of the audited episodes)."""
    import hashlib

    from her_goals.provenance import TRAINING_DATA_FILE, TrainingData, sha256_file

    path.mkdir(parents=True)
    none = TrainingData(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, str), np.zeros(0, str))
    none.save(path / TRAINING_DATA_FILE)
    meta: dict[str, Any] = {"format": "her-ros-policy/1", "goal_space": space.spec(),
                            "provenance": {"env": "task:reach", "config": {}},
                            "files": {TRAINING_DATA_FILE: sha256_file(path / TRAINING_DATA_FILE)}}  # fmt: skip
    canonical = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    meta["artefact_hash"] = hashlib.sha256(canonical).hexdigest()
    (path / "policy.json").write_text(json.dumps(meta))
    return path


def plant(clean: Clean, mutation: Mutation, root: Path) -> tuple[Path, Path]:
    """The (training, evaluation) sessions with ``mutation`` planted in copies of the clean ones."""
    evaluation, training = clean.evaluation, clean.training
    if mutation.eval_edit is not None or mutation.eval_meta is not None:
        evaluation = root / "eval"
        evaluation.mkdir()
        rewrite_bag(
            clean.evaluation / "bag_0000",
            evaluation / "bag_0000",
            (lambda items: mutation.eval_edit(items, clean)) if mutation.eval_edit else None,  # type: ignore[misc]
            meta=(lambda s: mutation.eval_meta(s, clean)) if mutation.eval_meta else None,  # type: ignore[misc]
            recount=mutation.recount,
        )
    if mutation.train_edit is not None:
        training = root / "train"
        training.mkdir()
        rewrite_bag(clean.training / "bag_0000", training / "bag_0000",
                    lambda items: mutation.train_edit(items, clean))  # type: ignore[misc]  # fmt: skip
    return training, evaluation


# -- the tests -------------------------------------------------------------------------------------


def test_the_clean_evaluation_is_verified_with_no_finding(clean: Clean, tmp_path: Path) -> None:
    report = audit(clean, tmp_path / "out")
    assert report.findings == [], [f.line() for f in report.findings]
    assert report.verdict == "verified"
    headline = report.evaluation["headline"]
    assert headline.n == N_EVAL and headline.successes == N_EVAL  # the scripted reach controller
    assert report.headline().startswith("requested-goal success (evaluation, verified): 1.000 (6/6")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**verdict: verified**" in md.split("## Requested-goal success")[0]
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["verdict"] == "verified" and saved["findings"] == []


def test_a_rewritten_but_unchanged_bag_stays_verified(clean: Clean, tmp_path: Path) -> None:
    """The editing path itself (decode, re-encode, re-count) plants nothing."""
    (tmp_path / "eval").mkdir()
    rewrite_bag(clean.evaluation / "bag_0000", tmp_path / "eval" / "bag_0000")
    report = audit(clean, tmp_path / "out", evaluation=tmp_path / "eval")
    assert report.verdict == "verified", [f.line() for f in report.findings]


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_planted_violation_is_flagged_by_its_code(clean: Clean, tmp_path: Path, name: str) -> None:
    mutation = MUTATIONS[name]
    training, evaluation = plant(clean, mutation, tmp_path)
    kwargs = dict(mutation.audit)
    if kwargs.get("artefact") == "fake":
        kwargs["artefact"] = artefact_dir(tmp_path / "policy", clean.plan.goal_space)
    report = audit(clean, tmp_path / "out", evaluation=evaluation, training=training, **kwargs)
    found = codes(report)
    assert found & set(mutation.code.split("|")), f"{name}: {[f.line() for f in report.findings]}"
    assert report.verdict == mutation.verdict, [f.line() for f in report.findings]
    for f in report.findings:
        assert f.code in CODES and f.meaning and f.fix
    if report.verdict != "verified":
        assert report.headline().split(": ", 1)[1].startswith(report.verdict.upper())


def test_at_least_twelve_distinct_violations_are_planted() -> None:
    failing = {m.code for m in MUTATIONS.values() if m.verdict == "failed"}
    assert len(failing) >= 12


def test_a_discarded_episode_counts_as_a_failure_in_the_headline(clean: Clean, tmp_path: Path) -> None:
    _, evaluation = plant(clean, MUTATIONS["worst episode discarded"], tmp_path)
    report = audit(clean, tmp_path / "out", evaluation=evaluation)
    headline = report.evaluation["headline"]
    assert (headline.successes, headline.n) == (N_EVAL - 1, N_EVAL)
    assert report.evaluation["accounting"]["discarded"] == 1
    only = report.evaluation["complete_only"]
    assert (only.successes, only.n) == (N_EVAL - 1, N_EVAL - 1)  # shown beside it, labelled
    # a failure like any other: audited from its raw messages, with a failure label
    (gone,) = [e for e in report.episodes if e.episode_id == _worst(clean) and e.split == "eval"]
    assert gone.status == "aborted" and gone.failure is not None and "discarded" in gone.note


def test_an_artefact_evaluation_needs_its_artefact(clean: Clean, tmp_path: Path) -> None:
    """Plan and steps naming an artefact: verified with that artefact, unverified without."""
    policy = artefact_dir(tmp_path / "policy", clean.plan.goal_space)
    art_hash = json.loads((policy / "policy.json").read_text())["artefact_hash"]

    def name_artefact(items: Items) -> Items:
        for t, m, _ in items:
            if t == ifc.TOPIC_STEP:
                m.policy = art_hash
        return items

    (tmp_path / "eval").mkdir()
    rewrite_bag(clean.evaluation / "bag_0000", tmp_path / "eval" / "bag_0000", name_artefact,
                meta=lambda s: edit_plan(s, policy=art_hash))  # fmt: skip
    with_it = audit(clean, tmp_path / "a", evaluation=tmp_path / "eval", artefact=policy)
    assert with_it.verdict == "verified", [f.line() for f in with_it.findings]
    without = audit(clean, tmp_path / "b", evaluation=tmp_path / "eval")
    assert without.verdict == "unverified" and codes(without) == {"EVAL_NO_ARTEFACT"}


def test_exit_status_follows_the_verdict(clean: Clean, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from her_recorder.audit import main

    assert main([str(clean.training), str(clean.evaluation), "--out", str(tmp_path / "v")]) == 0
    assert capsys.readouterr().out.startswith("verdict: verified\n")
    _, relabelled = plant(clean, MUTATIONS["relabel to final achieved goal"], tmp_path)
    assert main([str(relabelled), "--out", str(tmp_path / "f")]) == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "EVAL_GOAL_EQUALS_ACHIEVED" in printed
    old = tmp_path / "old"
    old.mkdir()
    rewrite_bag(clean.evaluation / "bag_0000", old / "bag_0000", old_schema=True,
                meta=lambda s: {k: v for k, v in s.items() if k != KEY_PLAN})  # fmt: skip
    assert main([str(old), "--out", str(tmp_path / "u")]) == 3
    assert "UNVERIFIED" in capsys.readouterr().out
    assert main([str(old), "--out", str(tmp_path / "u2"), "--allow-unverified"]) == 0
    # training episodes alone are no evaluation: not a pass
    assert main([str(clean.training), "--out", str(tmp_path / "t")]) == 3


def test_bags_of_the_old_message_definitions_are_read_and_unverified(clean: Clean, tmp_path: Path) -> None:
    """A bag written before provenance (old EpisodeEvent/Step text, no plan) decodes with its
    own definition: the reader reads every episode, the audit says what is missing."""
    old = tmp_path / "old"
    old.mkdir()
    rewrite_bag(clean.evaluation / "bag_0000", old / "bag_0000", old_schema=True,
                meta=lambda s: {k: v for k, v in s.items() if k != KEY_PLAN})  # fmt: skip
    assert "string split" not in (old / "bag_0000" / "metadata.yaml").read_text()
    read = read_episodes(old, log_summary=False)
    assert len(read.episodes) == N_EVAL
    assert any(p.kind == "old_schema" for p in read.report.problems)
    report = audit(clean, tmp_path / "out", evaluation=old)
    assert report.verdict == "unverified"
    assert "EVAL_NO_PLAN" in codes(report)
    assert not any(f.severity == "failed" for f in report.findings), [f.line() for f in report.findings]
    # with the plan kept but old messages: the episodes' provenance is missing
    old2 = tmp_path / "old2"
    old2.mkdir()
    rewrite_bag(clean.evaluation / "bag_0000", old2 / "bag_0000", old_schema=True)
    report = audit(clean, tmp_path / "out2", evaluation=old2)
    assert report.verdict == "unverified" and "EVAL_PROVENANCE_MISSING" in codes(report)


def test_the_plan_and_provenance_are_in_the_clean_bags(clean: Clean) -> None:
    strings = bag_strings(clean.evaluation / "bag_0000")
    assert EvaluationPlan.from_dict(json.loads(strings[KEY_PLAN])).same_as(clean.plan)
    assert clean.plan.goals().shape == (N_EVAL, 3)
    assert clean.plan.is_heldout(clean.plan.goals()).all()
    read = read_episodes(clean.evaluation, log_summary=False)
    assert sorted(e.episode_id for e in read.episodes) == list(range(N_EVAL))
