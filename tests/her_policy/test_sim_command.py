"""her sim: episodes of the MuJoCo arm recorded to bags through limits and the safety monitor."""

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from her_goals import get_goal_space
from her_recorder.reader import read_episodes


def test_sim_records_episodes_and_a_second_run_resumes_the_session(her: Any, tmp_path: Path) -> None:
    out = tmp_path / "bags"
    first = her("sim", "--task", "reach", "--episodes", "3", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "requested-goal success" in first.stdout
    second = her(
        "sim",
        "--task",
        "reach",
        "--policy",
        "random",
        "--episodes",
        "2",
        "--split",
        "eval",
        "--out",
        str(out),
        "--seed",
        "1",
    )
    assert second.returncode == 0, second.stderr
    read = read_episodes(out, goal_space=get_goal_space("ee_position"), log_summary=False)
    assert len(read.episodes) == 5
    assert sorted(e.episode_id for e in read.episodes) == [0, 1, 2, 3, 4]
    # The bags carry the driver's raw topics too, one message per control tick.
    info = her("bag", "info", str(out / "bag_0000"))
    counts = {
        line.split()[0]: int(line.split()[-1])
        for line in info.stdout.splitlines()
        if line.startswith("  /")
    }
    # 3 episodes x (50 ticks + the final state read)
    assert counts["/joint_states"] == counts["/object_pose"] == 3 * 51
    random_eps = [e for e in read.episodes if e.episode_id >= 3]
    # Random actions are limited and flagged: applied actions never exceed raw ones.
    for e in random_eps:
        assert (e.safety_flags != 0).any()
        assert (np.abs(e.action[:, :3]) <= np.abs(e.action_raw[:, :3]) + 1e-9).all()


def test_sim_with_a_missing_artefact_is_a_clear_error(her: Any, tmp_path: Path) -> None:
    out = her("sim", "--policy", str(tmp_path / "nope"), "--out", str(tmp_path / "bags"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "nope" in out.stderr


def test_recorded_episodes_follow_one_another_in_time(her: Any, tmp_path: Path) -> None:
    """ros2 bag play orders by stamp: each episode's messages come after the previous one's."""
    from mcap.reader import make_reader

    out = tmp_path / "bags"
    assert her("sim", "--task", "reach", "--episodes", "3", "--out", str(out)).returncode == 0
    read = read_episodes(out, goal_space=get_goal_space("ee_position"), log_summary=False)
    spans = [(int(e.stamp_ns.min()), int(e.stamp_ns.max())) for e in read.episodes]
    assert len(spans) == 3 and all(a[1] < b[0] for a, b in itertools.pairwise(spans)), spans
    with next(out.rglob("*.mcap")).open("rb") as fh:  # every message of the bag, in play order
        starts = [m.log_time for _, c, m in make_reader(fh).iter_messages() if c.topic == "/her/episode"]
    assert starts == sorted(starts) and len(set(starts)) == len(starts) == 6  # START, END per episode


def test_eval_record_writes_an_evaluation_the_audit_verifies(tmp_path: Path) -> None:
    import her_mujoco
    from her_goals.provenance import TrainingData
    from her_goals.spaces import get_goal_space as space_of
    from her_policy.app.cli import main
    from her_policy.artefact.store import save_artefact
    from her_policy.artefact.weights import ActorWeights
    from her_policy.learn.envs import layout_of
    from her_recorder.audit import run_audit

    layout = layout_of(her_mujoco.make_task("reach"))
    artefact = save_artefact(
        tmp_path / "policy", layout=layout, goal_space=space_of("ee_position"), algorithm="ddpg",
        snapshot=ActorWeights.random(layout.observation_dim, layout.goal_dim, layout.action_dim, (16,), seed=0),
        config={"task": "reach"}, seeds={}, data_hashes={}, provenance={"env": "task:reach"},
        training_data=TrainingData(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, str), np.zeros(0, str)),
    )  # fmt: skip
    bags = tmp_path / "eval"
    assert main(["eval", str(artefact), "--task", "reach", "--episodes", "3", "--record", str(bags), "--json"]) == 0
    report = run_audit([bags], out_dir=tmp_path / "audit", artefact=artefact, plots=False)
    assert report.verdict == "verified", report.findings
    # her eval without --record runs the same held-out goals (issue 20: one stream).
    from her_policy.learn.envs import requested_resets

    recorded = read_episodes(bags, log_summary=False).episodes
    asked = requested_resets(her_mujoco.make_task("reach"), 3, heldout_seed=0)
    np.testing.assert_array_equal(
        np.stack([e.desired_goal[0] for e in sorted(recorded, key=lambda e: e.episode_id)]),
        np.stack([r["options"]["desired_goal"] for r in asked]),
    )
    # A second recording into the same session would mix two evaluations: refused.
    assert main(["eval", str(artefact), "--task", "reach", "--episodes", "3", "--record", str(bags)]) == 2
    assert main(["eval", str(artefact), "--env", "FetchReach-v4", "--record", str(tmp_path / "x")]) == 2
