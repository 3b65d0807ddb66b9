"""The drawer through the control loop, the bags and the audit: a scripted evaluation verifies,
and a drawer opened halfway for a full-opening request shows as a requested-goal failure
beside a hindsight success, each labelled."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from her_goals.evaluation import EvaluationPlan
from her_goals.tasks import DRAWER_TRAVEL_M
from her_mujoco import make_task
from her_policy.app.sim import sim_control_loop
from her_policy.deploy.scripted import scripted_controller
from her_policy.deploy.settings import load_safety_config
from her_policy.deploy.sinks import RecorderSink
from her_recorder.audit import run_audit
from her_recorder.writer import EpisodeRecorder


def test_her_sim_records_a_drawer_evaluation_that_her_audit_verifies(her: Any, tmp_path: Path) -> None:
    bags, report = tmp_path / "bags", tmp_path / "audit"
    sim = her("sim", "--task", "drawer", "--split", "eval", "--episodes", "5", "--out", str(bags))
    assert sim.returncode == 0, sim.stderr
    assert "requested-goal success 5/5" in sim.stdout
    audit = her("audit", str(bags), "--out", str(report))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "verdict: verified" in audit.stdout
    assert "reward-recompute test: PASS" in audit.stdout
    md = (report / "report.md").read_text()
    assert "goal space: joint_position (dim 1, m in joint); success tolerance 0.02 m" in md


def test_the_audit_labels_a_half_open_drawer_a_hindsight_success_and_a_requested_failure(tmp_path: Path) -> None:
    env = make_task("drawer")
    task = env.unwrapped
    # A held-out stream whose first goal is (nearly) fully open: the commanded opening.
    seed = next(
        s for s in range(1000)
        if EvaluationPlan.for_task("drawer", "eval", stream_seed=s, sampler=task.goal_sampler).goal(0)[0]
        > DRAWER_TRAVEL_M - 0.03
    )  # fmt: skip
    plan = EvaluationPlan.for_task(
        "drawer", "eval", planned_episodes=1, policy="scripted", stream_seed=seed, sampler=task.goal_sampler
    )
    goal = plan.goal(0)
    controller = scripted_controller(env)

    def halfway(observation: np.ndarray, desired: np.ndarray) -> np.ndarray:
        # Asked for `desired`, it opens the drawer only half as far.
        return controller({"observation": observation, "desired_goal": desired / 2})

    with EpisodeRecorder(
        tmp_path / "bags", goal_space=task.goal_space, task="drawer", config={"split": "eval"},
        seeds={"run": 0}, plan=plan,
    ) as recorder:  # fmt: skip
        loop = sim_control_loop(
            env, halfway, config=load_safety_config(), sink=RecorderSink(recorder, split="eval", policy="scripted")
        )
        env.reset(seed=0, options={"desired_goal": goal, "drawer_position": 0.0})
        result = loop.run_episode(goal, max_ticks=50)
    assert not result.success
    assert abs(task.sim.drawer_position_m - goal[0] / 2) < task.goal_space.tolerance  # half open

    report = run_audit([tmp_path / "bags"], out_dir=tmp_path / "audit", plots=False)
    assert report.verdict == "verified"
    requested = report.requested_success["eval"]
    assert (requested.successes, requested.n) == (0, 1)  # the commanded full opening failed
    assert report.hindsight["episode_success"] == 1.0  # relabelled to the halfway opening: success
    md = (tmp_path / "audit" / "report.md").read_text()
    assert "requested-goal success (evaluation, verified): 0.000 (0/1" in md
    assert "## Hindsight figures (NOT results)" in md
    assert "| hindsight episode success (final step, goal relabelled by the training strategy) | 1.000 |" in md
    env.close()


def test_a_drawer_the_tool_never_reached_is_an_exploration_failure_not_a_representation_one(
    tmp_path: Path,
) -> None:
    from her_recorder.audit import LABEL_EXPLORATION, LABEL_REPRESENTATION

    env = make_task("drawer")
    task = env.unwrapped
    layout = [[f.name, f.start, f.stop] for f in task.observation_layout.fields]
    plan = EvaluationPlan.for_task("drawer", "train", policy="scripted", sampler=task.goal_sampler)

    def away(observation: np.ndarray, desired: np.ndarray) -> np.ndarray:
        return np.array([-0.5, 0.0, 0.5, 1.0])  # the tool leaves; the drawer stays put

    def touch(observation: np.ndarray, desired: np.ndarray) -> np.ndarray:
        return scripted_controller(env)({"observation": observation, "desired_goal": desired / 2})

    with EpisodeRecorder(
        tmp_path / "bags", goal_space=task.goal_space, task="drawer",
        config={"split": "train", "observation_fields": layout}, seeds={"run": 0}, plan=plan,
    ) as recorder:  # fmt: skip
        sink = RecorderSink(recorder, split="train", policy="scripted")
        for actor, start in ((away, 0.0), (touch, 0.0)):
            loop = sim_control_loop(env, actor, config=load_safety_config(), sink=sink)
            goal = np.array([0.19])
            env.reset(seed=0, options={"desired_goal": goal, "drawer_position": start})
            loop.run_episode(goal, max_ticks=50)
    report = run_audit([tmp_path / "bags"], out_dir=tmp_path / "audit", plots=False)
    labels = [e.failure.label for e in sorted(report.episodes, key=lambda e: e.episode_id) if e.failure]
    # The first never came near the handle: the drawer was not explored, its goal is not misread.
    assert labels[0] == LABEL_EXPLORATION and LABEL_REPRESENTATION not in labels
    env.close()


@pytest.mark.slow
def test_the_drawer_preset_learns_the_drawer_within_its_step_budget(tmp_path: Path) -> None:
    """Issue 22's target: >= 0.9 requested-goal success on 100 held-out goals within 40k env steps.

    Measured with the shipped preset (one update per env step; 2 cores shared by seven jobs):
    seeds 0, 1, 2 stopped at 15k steps with 0.98 on 100 held-out goals, ~720 s training
    wall-clock on the loaded machine (the preset before, drawer_150k: 70-80k steps).
    """
    from her_policy.learn.config import build_train_config
    from her_policy.learn.train import train

    config = build_train_config({"task": "drawer", "seed": 0, "out": tmp_path / "run", "progress": False})
    assert config.max_wall_s is None and config.env_steps <= 50_000  # a step budget, no wall cap
    result = train(config)
    assert result.final is not None and result.final.n_episodes == 100
    assert result.final.requested_success >= 0.9, result.summary()
    assert result.env_steps <= 40_000
