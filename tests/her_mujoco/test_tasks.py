"""Goal tasks keep the goal contract: reward, determinism, requested goals, no NaN."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import her_mujoco
from her_goals import ConfigError, GoalShapeError, NonFiniteGoalError
from her_mujoco import ENV_CLASSES, make_task
from her_policy.deploy.scripted import scripted_controller

TASKS = list(ENV_CLASSES)
OBS_SIZE = {"reach": 8, "push": 23, "pick_and_place": 23, "drawer": 16}
GOAL_SPACE = {  # name, dim, tolerance
    "reach": ("ee_position", 3, 0.05),
    "push": ("object_position", 3, 0.05),
    "pick_and_place": ("object_position", 3, 0.05),
    "drawer": ("joint_position", 1, 0.02),
}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_builds_resets_and_steps_with_the_right_shapes(task: str) -> None:
    env = make_task(task)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["observation"].shape == (OBS_SIZE[task],)
    name, dim, tolerance = GOAL_SPACE[task]
    assert obs["achieved_goal"].shape == obs["desired_goal"].shape == (dim,)
    assert env.action_space.shape == (4,)
    assert info["is_success"] == 0.0  # no task starts solved
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        for value in obs.values():
            assert value.dtype == np.float64 and np.isfinite(value).all()
        assert reward in (-1.0, 0.0) and not terminated and not truncated
    assert env.unwrapped.goal_space.name == name
    assert env.unwrapped.goal_space.tolerance == tolerance


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_episode_in_every_field(task: str) -> None:
    envs = [make_task(task), make_task(task)]
    actions = np.random.default_rng(7).uniform(-1, 1, (50, 4))
    runs = []
    for env in envs:
        obs, info = env.reset(seed=11)
        steps = [(obs, 0.0, False, False, info)]
        for a in actions:
            steps.append(env.step(a))
        runs.append(steps)
    assert runs[1][-1][3]  # the 50th step is truncated by the TimeLimit
    for (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) in zip(*runs):
        for key in o1:
            np.testing.assert_array_equal(o1[key], o2[key])
        assert (r1, te1, tr1) == (r2, te2, tr2) and i1 == i2
    # Another seed is another episode.
    other = make_task(task).reset(seed=12)[0]
    assert not np.array_equal(other["desired_goal"], runs[0][0][0]["desired_goal"])


@pytest.mark.parametrize("task", TASKS)
def test_reward_is_compute_reward_of_the_next_achieved_goal(task: str) -> None:
    env = make_task(task)
    base = env.unwrapped
    controller = scripted_controller(env)  # so that both rewards occur
    obs, _ = env.reset(seed=3, options={"split": "heldout"})
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        action = controller(obs) + rng.normal(0.0, 0.1, 4)
        obs, reward, terminated, _, info = env.step(action)
        assert reward == base.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
        assert info["is_success"] == float(reward == 0.0)
        assert not terminated  # success never ends the episode
        seen.add(reward)
    assert seen == {-1.0, 0.0}


def test_compute_reward_is_vectorised() -> None:
    env = make_task("push").unwrapped
    achieved = np.array([[0.5, 0.0, 0.025], [0.5, 0.3, 0.025]])
    desired = np.array([[0.51, 0.0, 0.025], [0.5, 0.0, 0.025]])
    batch = env.compute_reward(achieved, desired, [{}, {}])
    assert batch.shape == (2,)
    assert batch.tolist() == [0.0, -1.0]
    assert env.compute_reward(achieved[0], desired[0], {}) == batch[0]


def test_terminated_stays_false_while_holding_the_goal() -> None:
    env = make_task("reach")
    obs, _ = env.reset(seed=0)
    obs, _ = env.reset(seed=0, options={"desired_goal": obs["achieved_goal"]})
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(np.zeros(4))
        assert reward == 0.0 and info["is_success"] == 1.0
        assert not terminated and not truncated


@pytest.mark.parametrize("task", TASKS)
def test_requested_held_out_goals_are_used_and_shown(task: str) -> None:
    env = make_task(task)
    base = env.unwrapped
    goals = base.goal_sampler.heldout(5)
    assert base.goal_sampler.is_heldout(goals).all()
    for goal in goals:
        obs, info = env.reset(options={"desired_goal": goal})
        np.testing.assert_array_equal(obs["desired_goal"], goal)
        assert info["split"] == "requested"
        # The goal marker shows the desired goal (the drawer's: its handle at the goal opening).
        shown = base.drawer.handle_position(goal[0]) if task == "drawer" else goal
        np.testing.assert_allclose(base.sim.data.mocap_pos[0], shown)
        if base.has_object:  # the block never starts within the 5 cm tolerance of the goal
            assert np.linalg.norm(obs["achieved_goal"] - goal) >= 0.05
            assert not info["is_success"]
    # The held-out list does not depend on how the env was reset.
    env.reset(seed=99)
    np.testing.assert_array_equal(base.goal_sampler.heldout(5), goals)
    obs, info = env.reset(options={"split": "heldout"})
    assert info["split"] == "heldout" and base.goal_sampler.is_heldout(obs["desired_goal"])
    for seed in range(20):
        train_goal = env.reset(seed=seed)[0]["desired_goal"]
        assert not base.goal_sampler.is_heldout(train_goal)
        assert base.goal_region.contains(train_goal)


def test_pick_and_place_goals_are_half_on_the_table_half_in_the_air() -> None:
    base = make_task("pick_and_place").unwrapped
    goals = base.goal_sampler.sample(400)
    on_table = np.isclose(goals[:, 2], 0.025)
    assert 0.4 < on_table.mean() < 0.6
    assert goals[:, 2].max() > 0.25


@pytest.mark.parametrize(
    ("goal", "error", "match"),
    [
        ([0.5, 0.0], GoalShapeError, r"shape \(2,\).*needs \(\.\.\., 3\)"),
        ([[0.5, 0.0, 0.2], [0.4, 0.0, 0.2]], GoalShapeError, "not a batch"),
        ([0.5, np.nan, 0.2], NonFiniteGoalError, "NaN"),
    ],
)
def test_a_bad_requested_goal_raises_the_goal_space_error(goal: list, error: type, match: str) -> None:
    env = make_task("reach")
    with pytest.raises(error, match=match):
        env.reset(options={"desired_goal": goal})


def test_unknown_reset_options_and_task_names_get_suggestions() -> None:
    env = make_task("reach")
    with pytest.raises(ConfigError, match="Did you mean 'desired_goal'"):
        env.reset(options={"desired_gaol": [0.5, 0.0, 0.2]})
    with pytest.raises(ConfigError, match="Did you mean 'pick_and_place'"):
        make_task("pick_and_plce")


def test_an_arm_config_typo_passed_to_a_task_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'ee_sight'. Did you mean 'ee_site'"):
        make_task("reach", arm_config={"ee_sight": "tcp"})


def test_exploding_physics_ends_the_episode_with_a_flag() -> None:
    env = make_task("push")
    obs, _ = env.reset(seed=0)
    env.step(np.zeros(4))
    env.unwrapped.sim.data.qvel[:] = 1e12
    obs, _, terminated, _, info = env.step(np.zeros(4))
    assert terminated and info["physics_diverged"]
    assert all(np.isfinite(v).all() for v in obs.values())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4))
    env.reset(seed=1)
    assert not env.step(np.zeros(4))[2]


def test_registration_survives_a_second_import() -> None:
    import importlib
    import warnings

    with warnings.catch_warnings():
        # Registering an id twice makes gymnasium warn "Overriding environment".
        warnings.simplefilter("error")
        importlib.reload(her_mujoco)
        her_mujoco.register_tasks()
    assert gym.spec("HerReach-v0").max_episode_steps == 50
    assert gym.spec("HerPush-v0").max_episode_steps == 50
    assert gym.spec("HerPickAndPlace-v0").max_episode_steps == 50


def test_driving_into_the_workspace_corners_never_wedges_the_arm() -> None:
    env = make_task("reach")
    base = env.unwrapped
    obs, _ = env.reset(seed=0)
    home_tcp = obs["achieved_goal"].copy()
    for corner in np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3):
        for _ in range(15):
            obs, *_ = env.step(np.append(corner, 0.0))
        tcp = obs["achieved_goal"]
        # The tool stays in the workspace box and keeps pointing down...
        assert np.all(tcp > [0.24, -0.31, 0.0]) and np.all(tcp < [0.71, 0.31, 0.41])
        assert base.kinematics.pose(base.sim.arm_qpos)[1][2, 2] < -0.99
        # ...and comes back home when asked.
        for _ in range(25):
            obs, *_ = env.step(np.append(np.clip((home_tcp - obs["achieved_goal"]) / 0.05, -1, 1), 0.0))
        assert np.linalg.norm(obs["achieved_goal"] - home_tcp) < 0.005


RENDER_SCRIPT = """
import numpy as np
from her_mujoco import make_task
env = make_task("reach", render_mode="rgb_array")
images = []
for goal in ([0.4, -0.1, 0.1], [0.6, 0.1, 0.3]):
    env.reset(seed=0, options={"desired_goal": goal})
    images.append(env.render())
assert images[0].shape == (480, 640, 3) and images[0].dtype == np.uint8
red = [(im[..., 0] > 200) & (im[..., 1] < 60) & (im[..., 2] < 60) for im in images]
print(int(red[0].sum()), int(red[1].sum()), int((red[0] != red[1]).sum()))
"""


def test_rendering_shows_the_goal_marker_where_the_goal_is() -> None:
    import os
    import subprocess
    import sys

    # Headless rendering needs EGL, chosen before mujoco is imported: a fresh process.
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    done = subprocess.run([sys.executable, "-c", RENDER_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and ("OpenGL" in done.stderr or "EGL" in done.stderr or "gl" in done.stderr.lower()):
        pytest.skip(f"no OpenGL rendering here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    red_before, red_after, changed = map(int, done.stdout.split())
    assert red_before > 50 and red_after > 50  # the red goal marker is in view...
    assert changed > 50  # ...and moves with the desired goal


def test_a_bad_action_is_the_projects_error_naming_the_fix_and_leaves_the_arm_unmoved() -> None:
    from her_goals.errors import HerError

    env = make_task("reach")
    env.reset(seed=0)
    before = env.unwrapped.sim.data.qpos.copy()
    for bad in (np.array([np.nan, 0, 0, 0]), np.zeros(3)):
        with pytest.raises(HerError, match="action") as err:
            env.step(bad)
        assert isinstance(err.value, ValueError)  # what Gymnasium users catch
    np.testing.assert_array_equal(env.unwrapped.sim.data.qpos, before)
