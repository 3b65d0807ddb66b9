"""The audit on hand-made bags whose every number is known: success, failures, coverage, files."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from her_goals import GoalRegion, get_goal_space
from her_recorder import EpisodeRecorder, SafetyFlag
from her_recorder.audit import (
    LABEL_EXPLORATION,
    LABEL_MISMATCH,
    LABEL_REPRESENTATION,
    LABEL_REWARD,
    LABEL_UNCLASSIFIED,
    AuditError,
    AuditReport,
    EpisodeAudit,
    add_audit_command,
    main,
    run_audit,
)

SPACE = get_goal_space("ee_position")  # tolerance 0.05 m
TOL = SPACE.tolerance
REGION = {"low": [0.0, 0.0, 0.0], "high": [0.4, 0.2, 0.0]}  # 8 x 4 x 1 cells of 5 cm
CONFIG = {"goal_region": REGION, "relabel_strategy": "future", "replay_k": 4}
T = 5  # steps per episode


@dataclass
class Ep:
    """One hand-made episode: T steps along ``path`` (T + 1 achieved goals)."""

    desired: tuple[float, float, float]
    path: np.ndarray
    reason: str = ""
    obs: np.ndarray | None = None
    reward: dict[int, float] = field(default_factory=dict)
    end_success: bool | None = None
    abort: str | None = None
    flags: dict[int, tuple[int, float]] = field(default_factory=dict)


def line(a: tuple[float, ...], b: tuple[float, ...]) -> np.ndarray:
    return np.linspace(np.asarray(a, float), np.asarray(b, float), T + 1)


def still(p: tuple[float, ...]) -> np.ndarray:
    return np.tile(np.asarray(p, float), (T + 1, 1))


def record(path: Path, episodes: list[Ep], config: Any = CONFIG) -> Path:
    with EpisodeRecorder(
        path, goal_space=SPACE, task="reach", config=config, seeds={"run": 7}, fsync=False
    ) as rec:
        t = 1_000_000_000
        for ep in episodes:
            rec.start_episode(ep.desired, stamp_ns=t, reason=ep.reason)
            # By default the observation is the tool position plus one more entry.
            obs = ep.obs if ep.obs is not None else np.hstack([ep.path, np.zeros((T + 1, 1))])
            for s in range(T):
                t += 10_000_000
                flag, cost = ep.flags.get(s, (0, 0.0))
                rec.record_step(
                    observation=obs[s],
                    next_observation=obs[s + 1],
                    action_raw=np.zeros(2),
                    achieved_goal=ep.path[s],
                    next_achieved_goal=ep.path[s + 1],
                    reward=ep.reward.get(s),
                    truncated=s == T - 1,
                    safety_flags=flag,
                    safety_cost=cost,
                    stamp_ns=t,
                )
            t += 1
            if ep.abort:
                rec.abort_episode(ep.abort, stamp_ns=t)
            else:
                rec.end_episode(success=ep.end_success, stamp_ns=t)
    return path


TRAIN = [
    # 0 success, two clipped steps
    Ep(
        (0.125, 0.075, 0.0),
        line((0.025, 0.075, 0), (0.125, 0.075, 0)),
        flags={1: (SafetyFlag.CLIPPED, 0.5), 2: (SafetyFlag.CLIPPED, 0.5)},
    ),
    # 1 success
    Ep((0.075, 0.125, 0.0), line((0.075, 0.025, 0), (0.075, 0.125, 0))),
    # 2 exploration failure: stays 0.33 m away, nobody reached the goal's cell
    Ep((0.375, 0.175, 0.0), line((0.025, 0.025, 0), (0.075, 0.025, 0))),
    # 3 goal-representation failure: achieved goal frozen while the observation moves
    Ep(
        (0.225, 0.075, 0.0),
        still((0.175, 0.175, 0)),
        obs=np.hstack([still((0.175, 0.175, 0)), 0.1 * np.arange(T + 1)[:, None]]),
    ),
    # 4 reward-recompute bug: fails (6.5 cm short), step 2 recorded as reward 0
    Ep((0.325, 0.025, 0.0), line((0.225, 0.025, 0), (0.26, 0.025, 0)), reward={2: 0.0}),
    # 5 aborted by the e-stop
    Ep(
        (0.125, 0.025, 0.0),
        line((0.025, 0.025, 0), (0.05, 0.025, 0)),
        abort="estop",
        flags={4: (SafetyFlag.ESTOP, 1.0)},
    ),
]
EVAL = [
    # 0, 1 successes
    Ep((0.125, 0.075, 0.0), line((0.125, 0.175, 0), (0.125, 0.075, 0)), reason="eval"),
    Ep((0.075, 0.125, 0.0), line((0.025, 0.125, 0), (0.075, 0.125, 0)), reason="eval"),
    # 2 evaluation-distribution mismatch: desired goal outside the goal region
    Ep((0.6, 0.1, 0.0), line((0.1, 0.1, 0), (0.15, 0.1, 0)), reason="eval"),
    # 3 near miss (passes the goal, ends 6 cm past it): no rule fires
    Ep((0.125, 0.125, 0.0), line((0.125, 0.025, 0), (0.125, 0.185, 0)), reason="eval"),
    # 4 END recorded success for a goal 7.5 cm away
    Ep(
        (0.275, 0.125, 0.0),
        line((0.275, 0.025, 0), (0.275, 0.05, 0)),
        reason="eval",
        end_success=True,
    ),
]


def artefact_dir(path: Path, **extra: Any) -> Path:
    """A policy.json as her_policy writes it (hash over the canonical JSON), no weights."""
    path.mkdir(parents=True)
    meta: dict[str, Any] = {
        "format": "her-ros-policy/1",
        "goal_space": SPACE.spec(),
        "observation_layout": {"observation_fields": []},
        "provenance": {
            "config": {"relabel_strategy": "final", "replay_k": 3.0},
            "config_hash": "feedfacefeedface",
        },
        **extra,
    }
    canonical = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    meta["artefact_hash"] = hashlib.sha256(canonical).hexdigest()
    (path / "policy.json").write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("audit")
    train = record(root / "train", TRAIN, config={**CONFIG, "split": "train"})
    evaluation = record(root / "eval", EVAL, config={**CONFIG, "split": "train"})
    return root, train, evaluation


@pytest.fixture(scope="module")
def audited(sessions: tuple[Path, Path, Path]) -> tuple[AuditReport, Path]:
    root, train, evaluation = sessions
    log = root / "train_log.jsonl"
    rows = [
        {"env_steps": 1000, "hindsight_ratio": 0.8, "positive_fraction_relabelled": 0.30,
         "positive_fraction_original": 0.02, "requested_success": 0.1},
        {"env_steps": 2000, "hindsight_ratio": 0.78, "positive_fraction_relabelled": 0.34,
         "positive_fraction_original": 0.04, "requested_success": 0.3},
    ]  # fmt: skip
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    artefact = artefact_dir(root / "run" / "policy")
    out = root / "report"
    report = run_audit([train, evaluation], out_dir=out, training_log=log, artefact=artefact)
    return report, out


def episode(report: AuditReport, session: str, episode_id: int) -> EpisodeAudit:
    return next(
        e
        for e in report.episodes
        if Path(e.bag).parent.name == session and e.episode_id == episode_id
    )


def test_requested_success_per_split_with_wilson_interval(
    audited: tuple[AuditReport, Path],
) -> None:
    report, _ = audited
    req = report.requested_success
    assert (req["eval"].successes, req["eval"].n) == (2, 5)
    assert (req["train"].successes, req["train"].n) == (2, 5)
    # the aborted episode is not a complete episode: out of "all", a failure in the variant
    assert (req["all"].successes, req["all"].n) == (4, 10)
    assert (req["all_counting_aborted_as_failures"].n) == 11
    assert req["all"].rate == pytest.approx(0.4)
    assert (req["all"].ci_low, req["all"].ci_high) == pytest.approx((0.1682, 0.6873), abs=1e-4)
    # the START reason "eval" outranks the bag config's split
    assert {e.split for e in report.episodes if "eval" in e.bag} == {"eval"}


def test_hindsight_is_shown_apart_and_is_not_the_result(audited: tuple[AuditReport, Path]) -> None:
    report, out = audited
    h = report.hindsight
    assert h["episode_success"] == pytest.approx(1.0)  # relabelled to its own final goal
    assert h["episode_success"] != report.requested_success["all"].rate
    assert 0.0 < h["positive_fraction_relabelled_bags"] <= 1.0
    assert h["hindsight_ratio_training"] == pytest.approx(0.79)  # mean of the log's windows
    assert h["positive_fraction_relabelled_training"] == pytest.approx(0.32)
    # strategy: the log names none, so the artefact's training config (final, k=3) wins
    assert report.relabel["strategy"] == "final" and report.relabel["source"] == "artefact config"
    assert h["hindsight_ratio_configured"] == pytest.approx(0.75)
    md = (out / "report.md").read_text()
    # these bags carry no evaluation plan and fail invariants: no figure is a result
    assert report.verdict == "failed" and md.startswith("# HER audit")
    assert "**verdict: failed**" in md.split("## Requested-goal success")[0]
    assert "## Requested-goal success (FAILED: not a result)" in md
    assert "## Hindsight figures (NOT results)" in md
    assert md.index("## Requested-goal success") < md.index("NOT results")


def test_each_failure_label_is_assigned_by_its_rule(audited: tuple[AuditReport, Path]) -> None:
    report, _ = audited
    labels = {
        (Path(e.bag).parent.name, e.episode_id): e.failure.label
        for e in report.episodes
        if e.failure is not None
    }
    assert labels == {
        ("train", 2): LABEL_EXPLORATION,
        ("train", 3): LABEL_REPRESENTATION,
        ("train", 4): LABEL_REWARD,
        ("train", 5): LABEL_UNCLASSIFIED,  # aborted: a failure, labelled like any other
        ("eval", 2): LABEL_MISMATCH,
        ("eval", 3): LABEL_UNCLASSIFIED,
        ("eval", 4): LABEL_REWARD,
    }
    explore = episode(report, "train", 2).failure
    assert explore is not None
    assert explore.evidence["min_distance"] > explore.evidence["near_threshold"] == 2 * TOL
    assert explore.evidence["desired_goal_cell"] == [7, 3, 0]
    assert explore.evidence["other_training_episodes_in_cell"] == 0
    frozen = episode(report, "train", 3).failure
    assert frozen is not None and frozen.evidence["achieved_goal_moved"] == 0.0
    assert frozen.evidence["observation_moved"] == pytest.approx(0.4)  # 0.1 per step
    outside = episode(report, "eval", 2).failure
    assert outside is not None and outside.evidence["region_high"] == [0.4, 0.2, 0.0]
    near = episode(report, "eval", 3)
    assert near.failure is not None and near.min_distance < 2 * TOL < near.final_distance + TOL
    assert report.failures[LABEL_REWARD] == 2 and sum(report.failures.values()) == 7
    aborted = episode(report, "train", 5)
    assert aborted.status == "aborted" and aborted.failure is not None


def test_reward_mismatch_and_end_success_disagreement_are_found(
    audited: tuple[AuditReport, Path],
) -> None:
    report, out = audited
    rc = report.reward_recompute
    assert rc["status"] == "FAIL"
    assert rc["steps"] == 11 * T
    assert rc["reward_mismatches"] == 1
    assert rc["examples"][0]["step"] == 2
    assert (rc["examples"][0]["recorded"], rc["examples"][0]["recomputed"]) == (0.0, -1.0)
    assert [
        (Path(d["bag"]).parent.name, d["episode_id"]) for d in rc["end_success_disagreements"]
    ] == [("eval", 4)]
    # both episodes were left out by the reader and audited from their raw messages
    assert report.read["audited_from_raw_messages"] == 2
    tampered = episode(report, "eval", 4)
    assert tampered.recorded_success is True and tampered.requested_success is False
    assert report.audit_record["reward_recompute_test"].startswith("reward-recompute test: FAIL")
    assert "reward-recompute test: FAIL" in (out / "report.md").read_text()


def test_safety_cost_per_episode_and_by_flag(audited: tuple[AuditReport, Path]) -> None:
    report, _ = audited
    clipped = episode(report, "train", 0)
    assert clipped.safety_cost == pytest.approx(1.0) and clipped.flag_counts == {"CLIPPED": 2}
    stopped = episode(report, "train", 5)
    assert stopped.status == "aborted" and stopped.flag_counts == {"ESTOP": 1}
    assert report.safety["total_cost"] == pytest.approx(2.0)
    assert report.safety["steps_by_flag"] == {"CLIPPED": 2, "ESTOP": 1}


def test_files_are_written_and_every_png_names_its_provenance(
    audited: tuple[AuditReport, Path],
) -> None:
    report, out = audited
    assert len(report.config_hashes) == 1
    config_hash = report.config_hashes[0]
    for name in ("success_vs_episodes.png", "requested_vs_hindsight.png", "coverage.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG")
        # PNG text metadata carries the full provenance; the figure shows it as a footer
        assert config_hash.encode() in data and report.artefact_hash.encode() in data
        assert b"train/bag_0000" in data and b"eval/bag_0000" in data
    # With a training log, the learning curve (requested-goal success only) is drawn too.
    assert (out / "learning_curve.png").read_bytes().startswith(b"\x89PNG")
    assert report.files["learning_curve.png"].endswith("learning_curve.png")
    saved = json.loads((out / "report.json").read_text())
    assert saved["artefact_hash"] == report.artefact_hash != "none"
    assert saved["audit_record"]["goal_space"]["name"] == "ee_position"
    assert saved["audit_record"]["relabel_strategy"]["strategy"] == "final"
    assert saved["requested_success"]["eval"]["n"] == 5
    assert len(saved["episodes"]) == 11
    md = (out / "report.md").read_text()
    assert config_hash in md and report.artefact_hash in md
    # every step's goals and both rewards, to trace each number back to the bags
    with np.load(out / "trace.npz") as trace:
        assert trace["desired_goal"].shape == (11 * T, 3)
        differ = trace["reward_recorded"] != trace["reward_recomputed"]
        assert differ.sum() == 1 and trace["step"][differ].tolist() == [2]


def test_coverage_fraction_of_a_known_layout(tmp_path: Path) -> None:
    region = {"low": [0.0, 0.0, 0.0], "high": [0.2, 0.1, 0.0]}  # 4 x 2 x 1 cells
    bag = record(
        tmp_path / "s",
        [
            # desired cell (0, 0) reached; achieved goals in cells (0, 0) and (1, 0)
            Ep((0.025, 0.025, 0.0), line((0.075, 0.025, 0), (0.03, 0.025, 0))),
            # desired cell (3, 1) never reached; achieved goals in cell (0, 1)
            Ep((0.175, 0.075, 0.0), line((0.01, 0.06, 0), (0.04, 0.09, 0))),
        ],
        config={"goal_region": region},
    )
    report = run_audit([bag], out_dir=tmp_path / "out", plots=False)
    cov = report.coverage
    assert cov["grid_shape"] == [4, 2, 1] and cov["region_source"] == "bag config"
    assert (cov["desired_cells_reached"], cov["desired_cells"]) == (1, 2)
    assert cov["desired_cell_fraction"] == 0.5
    assert (cov["region_cells_reached"], cov["region_cells"]) == (3, 8)
    # a region given on the command line wins over the bag's
    wide = run_audit(
        [bag],
        out_dir=tmp_path / "out2",
        plots=False,
        goal_region=GoalRegion(low=(0.0, 0.0, 0.0), high=(0.4, 0.2, 0.0)),
    )
    assert wide.coverage["region_cells"] == 32 and wide.coverage["region_source"] == "given"


def test_mismatch_by_training_range_and_representation_by_layout(tmp_path: Path) -> None:
    """Without a goal region, an evaluation goal beyond the training goals' box is a
    distribution mismatch; with an observation layout, an achieved goal that disagrees
    with the tool position it measures is a representation failure."""
    fields = [["tcp_pos", 0, 3]]
    train = record(
        tmp_path / "train",
        [
            Ep((0.1, 0.1, 0.1), line((0.0, 0.1, 0.1), (0.1, 0.1, 0.1))),
            Ep((0.2, 0.1, 0.1), line((0.1, 0.1, 0.1), (0.2, 0.1, 0.1))),
        ],
        config={"split": "train", "observation_fields": fields},
    )
    offset = line((0.1, 0.1, 0.1), (0.15, 0.1, 0.1))
    evaluation = record(
        tmp_path / "eval",
        [
            Ep((0.5, 0.1, 0.1), line((0.1, 0.1, 0.1), (0.2, 0.1, 0.1))),
            # tcp at the goal, achieved goal reported 20 cm off (a frame bug)
            Ep(
                (0.15, 0.1, 0.1),
                offset + np.array([0.2, 0.0, 0.0]),
                obs=np.hstack([offset, np.zeros((T + 1, 1))]),
            ),
        ],
        config={"split": "eval", "observation_fields": fields},
    )
    report = run_audit([train, evaluation], out_dir=tmp_path / "out", plots=False)
    far = episode(report, "eval", 0).failure
    assert far is not None and far.label == LABEL_MISMATCH
    assert far.evidence["training_desired_high"] == [0.2, 0.1, 0.1]
    frame = episode(report, "eval", 1).failure
    assert frame is not None and frame.label == LABEL_REPRESENTATION
    assert frame.evidence["observation_field"] == "tcp_pos"
    assert frame.evidence["max_disagreement"] == pytest.approx(0.2)
    assert report.read["observation_fields_source"] == "bag config observation_fields"


def test_bags_without_a_split_say_what_the_writer_must_record(tmp_path: Path) -> None:
    bag = record(tmp_path / "s", TRAIN[:2], config={})
    report = run_audit([bag], out_dir=tmp_path / "out", plots=False)
    assert report.requested_success["eval"].n == 0
    assert report.requested_success["all"].n == 2
    assert report.reward_recompute["status_line"] == f"reward-recompute test: PASS ({2 * T} steps)"
    text = " ".join(report.notes)
    assert "no episode is marked as an evaluation episode" in text
    assert "goal region is unknown" in text
    assert report.relabel["source"] == "not recorded"


def test_tolerance_override_changes_success_not_the_reward_recompute(
    sessions: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, train, _ = sessions
    report = run_audit([train], out_dir=tmp_path / "o", tolerance=0.07, plots=False)
    # episode 4 ends 6.5 cm short: a success at 7 cm, its tampered reward still a mismatch
    assert (report.requested_success["train"].successes, report.requested_success["train"].n) == (
        3,
        5,
    )
    assert report.tolerance == 0.07 and report.goal_space["tolerance"] == TOL
    assert report.reward_recompute["reward_mismatches"] == 1
    assert any("tolerance 0.07" in note for note in report.notes)


def test_an_edited_artefact_or_a_bad_log_is_a_clear_error(
    sessions: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, train, _ = sessions
    artefact = artefact_dir(tmp_path / "a")
    meta = json.loads((artefact / "policy.json").read_text())
    meta["algorithm"] = "edited"
    (artefact / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(AuditError, match="modified after it was written"):
        run_audit([train], out_dir=tmp_path / "o", artefact=artefact, plots=False)
    log = tmp_path / "log.jsonl"
    log.write_text('{"env_steps": 1, "positive_fraction_original": 0.1}\n')
    with pytest.raises(AuditError, match="lacks \\['hindsight_ratio'\\]"):
        run_audit([train], out_dir=tmp_path / "o", training_log=log, plots=False)


def test_her_cli_plugin_and_module_entry_point(
    sessions: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, train, evaluation = sessions
    cli = pytest.importorskip("her_policy.app.cli")
    assert add_audit_command in cli.COMMANDS  # `her audit` is registered in the one table
    status = cli.main(
        ["audit", str(train), str(evaluation), "--out", str(tmp_path / "r"),
         "--region", "0,0,0", "0.4,0.2,0"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 1  # verdict failed: the reward-recompute test failed, among others
    assert printed.startswith("verdict: failed\n")
    # not a result: the number is labelled, beside the findings' codes
    assert "requested-goal success (evaluation): FAILED 0.400 (2/5" in printed
    assert "RECOMPUTE_FAILED" in printed and "EVAL_NO_PLAN" in printed
    assert "NOT a result" in printed and "reward-recompute test: FAIL" in printed
    assert (tmp_path / "r" / "report.md").is_file()
    # python -m her_recorder.audit: a missing bag is one line and status 2
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "r2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    import argparse

    parser = argparse.ArgumentParser()
    add_audit_command(parser.add_subparsers())
    args = parser.parse_args(["audit", "b", "--out", "o", "--training-log", "t", "--artefact", "a"])
    assert (args.bags, args.out, args.training_log, args.artefact) == (["b"], "o", "t", "a")
