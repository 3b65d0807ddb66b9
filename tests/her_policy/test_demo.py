"""The main job: training data through bags, deployment through the safety loop, audit."""

import json
from pathlib import Path

import numpy as np
import pytest

import her_mujoco
from her_goals import get_goal_space
from her_goals.episode_arrays import EpisodeArrays
from her_policy.app.bag_transport import BagRoundTrip
from her_policy.app.demo import run_demo
from her_policy.app.sim import run_requested_goals, sim_control_loop
from her_policy.deploy.scripted import scripted_controller
from her_policy.deploy.sinks import ListSink
from her_policy.errors import PolicyError
from her_recorder import EpisodeRecorder
from her_recorder.reader import read_episodes

SPACE = get_goal_space("ee_position")


def random_episode(rng: np.random.Generator, n: int = 5) -> EpisodeArrays:
    return EpisodeArrays.from_rollout(
        rng.normal(size=(n + 1, 8)),
        rng.uniform(-1, 1, size=(n, 4)),
        rng.uniform(0.3, 0.6, size=(n + 1, 3)),
        np.tile(rng.uniform(0.3, 0.6, size=3), (n, 1)),
        terminated=False,
        truncated=True,
        success=0.0,
    )


def test_bag_round_trip_returns_exactly_what_was_collected(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    episodes = [random_episode(rng) for _ in range(3)]
    with EpisodeRecorder(tmp_path / "s", goal_space=SPACE, task="reach") as rec:
        transport = BagRoundTrip(rec)
        back = transport(episodes)
        back2 = transport([random_episode(rng, n=7)])
    assert len(back) == 3 and len(back2) == 1 and len(transport.bags) == 2
    for a, b in zip(episodes, back, strict=True):
        np.testing.assert_array_equal(a.observation, b.observation)
        np.testing.assert_array_equal(a.next_observation, b.next_observation)
        np.testing.assert_array_equal(a.achieved_goal, b.achieved_goal)
        np.testing.assert_array_equal(a.next_achieved_goal, b.next_achieved_goal)
        np.testing.assert_array_equal(a.desired_goal, b.desired_goal)
        np.testing.assert_allclose(a.action, b.action)
        np.testing.assert_array_equal(a.truncated, b.truncated)
        np.testing.assert_array_equal(a.terminated, b.terminated)
    # Stamps keep increasing across episodes, so the bag replays in order.
    read = read_episodes(tmp_path / "s", goal_space=SPACE, log_summary=False)
    stamps = np.concatenate([e.stamp_ns for e in read.episodes])
    assert (np.diff(stamps) > 0).all()


def test_bag_round_trip_refuses_an_episode_the_bag_rejects(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    bad = random_episode(rng)
    bad.observation[2, 0] = np.nan
    with EpisodeRecorder(tmp_path / "s", goal_space=SPACE, task="reach") as rec:
        with pytest.raises((PolicyError, ValueError), match="NaN|nan|non-finite"):
            BagRoundTrip(rec)([bad])


def test_scripted_reach_through_the_safety_loop_reaches_heldout_goals() -> None:
    env = her_mujoco.make_task("reach")
    controller = scripted_controller(env)
    tcp = env.unwrapped.observation_layout.slice("tcp_pos")

    def actor(o: np.ndarray, g: np.ndarray) -> np.ndarray:
        return controller({"observation": o, "desired_goal": g, "achieved_goal": o[tcp]})

    sink = ListSink()
    loop = sim_control_loop(env, actor, sink=sink)
    results = run_requested_goals(env, loop, env.unwrapped.goal_sampler.heldout(10))
    assert np.mean([r.success for r in results]) >= 0.9
    assert len(sink.steps) == 10 * 50
    # Every command went through the monitor; nothing was refused or aborted.
    assert not any(r.refused or r.aborted for r in results)


def test_demo_trains_through_bags_deploys_through_safety_and_audits(tmp_path: Path) -> None:
    result = run_demo(
        "reach",
        out=tmp_path / "run",
        eval_goals=20,
        progress=False,
        overrides={"env_steps": 1500, "final_eval_episodes": 0, "eval_every": 500},
    )
    # Every training step reached the learner through a bag.
    train = read_episodes(tmp_path / "run" / "bags" / "train", goal_space=SPACE, log_summary=False)
    assert sum(len(e) for e in train.episodes) == result.env_steps
    # The deployed policy is far above a random one (which scores ~0.0 on reach).
    assert result.requested_success >= 0.6, result.summary()
    assert result.n_goals == 20 and result.ci_low < result.requested_success < result.ci_high + 1e-9
    report = json.loads((tmp_path / "run" / "audit" / "report.json").read_text())
    evaluated = report["requested_success"]["eval"]
    assert evaluated["n"] == 20
    assert evaluated["rate"] == pytest.approx(result.requested_success)
    assert report["reward_recompute"]["reward_mismatches"] == 0
    assert report["reward_recompute"]["status"] == "PASS"
    # The bags prove the evaluation: plan, goals, policy, every planned episode.
    assert result.verdict == "verified" and report["verdict"] == "verified", result.summary()
    assert report["findings"] == [] and "audit verdict: verified" in result.summary()
    assert report["evaluation"]["headline"]["n"] == 20
    assert report["evaluation"]["plans"][0]["policy"] == report["artefact_hash"]
    # Training episodes are told apart from the held-out evaluation ones.
    assert report["requested_success"]["train"]["n"] == len(train.episodes)
    for png in ("coverage.png", "requested_vs_hindsight.png", "success_vs_episodes.png"):
        assert (tmp_path / "run" / "audit" / png).stat().st_size > 10_000
    with pytest.raises(PolicyError, match="already holds a demo run"):
        run_demo("reach", out=tmp_path / "run", progress=False)
