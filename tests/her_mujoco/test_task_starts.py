"""Where the object tasks start (issue 10): as in Gymnasium-Robotics' Fetch tasks.

FetchPush starts the gripper at the block's height with its fingers blocked shut and
the block at least 10 cm (xy) away; FetchPickAndPlace starts it about 11 cm above the
block. Goals are never solved at reset (our rule; Fetch has none).
"""

import numpy as np
import pytest

from her_goals import ConfigError
from her_mujoco import make_task
from her_mujoco.bridge_core import BridgeConfig, BridgeCore
from her_mujoco.tasks import (
    BLOCK_HALF_SIZE_M,
    GRASP_OFFSET_M,
    MIN_TOOL_OBJECT_XY_M,
    NEAR_START_XY_M,
)
from her_policy.learn.config import build_train_config


def _opening(env: object, obs: dict) -> float:
    return float(obs["observation"][env.unwrapped.observation_layout.slice("gripper_opening")][0])


@pytest.mark.parametrize(("task", "tool_z", "opening"), [("push", 0.016, 0.0), ("pick_and_place", 0.135, 0.08)])
def test_object_tasks_start_like_fetch(task: str, tool_z: float, opening: float) -> None:
    env = make_task(task)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        tcp, block, goal = obs["observation"][:3], obs["achieved_goal"], obs["desired_goal"]
        np.testing.assert_allclose(tcp, [0.5, 0.0, tool_z], atol=1e-3)
        assert _opening(env, obs) == pytest.approx(opening, abs=1e-3)
        assert block[2] == pytest.approx(BLOCK_HALF_SIZE_M)
        assert np.linalg.norm(block[:2] - tcp[:2]) >= MIN_TOOL_OBJECT_XY_M
        assert np.linalg.norm(block - goal) >= 0.05 and not info["is_success"]
        assert not info["grasped_start"]
    # The tool is at the block's height for push: the tcp a little below the block's centre.
    if task == "push":
        assert tcp[2] < block[2]


def test_push_holds_the_gripper_shut_whatever_the_action() -> None:
    env = make_task("push")
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))
    assert _opening(env, obs) < 0.005


def test_grasped_starts_are_for_training_goals_only_and_hold_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    from her_mujoco.tasks import PickAndPlaceEnv

    monkeypatch.setattr(PickAndPlaceEnv, "grasp_on_table", False)  # the HER paper's state
    env = make_task("pick_and_place", train_grasped_start=1.0)
    obs, info = env.reset(seed=0)
    assert info["grasped_start"]
    tcp = obs["observation"][:3]
    np.testing.assert_allclose(obs["achieved_goal"], tcp + np.array([0.0, 0.0, GRASP_OFFSET_M]), atol=1e-3)
    for _ in range(8):  # up and sideways with the gripper shut: the block comes along
        obs, *_ = env.step(np.array([0.5, 0.5, 1.0, -1.0], np.float32))
    rel = obs["achieved_goal"] - obs["observation"][:3]
    assert obs["observation"][2] > tcp[2] + 0.1 and np.linalg.norm(rel - [0, 0, GRASP_OFFSET_M]) < 0.01
    # Requested and held-out goals (evaluation) always start with the block on the table.
    goal = env.unwrapped.goal_sampler.heldout(1)[0]
    for options in ({"desired_goal": goal}, {"split": "heldout"}):
        obs, info = env.reset(options=options)
        assert not info["grasped_start"] and obs["achieved_goal"][2] == pytest.approx(BLOCK_HALF_SIZE_M)


def test_grasped_starts_need_an_object_and_a_share() -> None:
    with pytest.raises(ConfigError, match="train_grasped_start"):
        make_task("reach", train_grasped_start=0.5)
    with pytest.raises(ConfigError, match="train_grasped_start"):
        make_task("pick_and_place", train_grasped_start=1.5)


def test_bridge_resets_to_the_task_start_and_holds_the_push_gripper_shut() -> None:
    bridge = BridgeCore(BridgeConfig(task="push", seed=1))
    bridge.reset(desired_goal=[0.6, 0.1, BLOCK_HALF_SIZE_M])
    np.testing.assert_allclose(bridge.sim.tcp_position(), [0.5, 0.0, 0.016], atol=1e-3)
    block = bridge.sim.object_pose()[:3]
    assert np.linalg.norm(block[:2] - [0.5, 0.0]) >= MIN_TOOL_OBJECT_XY_M
    assert bridge.gripper([0.08])
    for _ in range(10):
        bridge.step()
    assert bridge.sim.gripper_opening_m < 0.005
    reach = BridgeCore(BridgeConfig(task="reach"))
    np.testing.assert_allclose(reach.sim.tcp_position(), [0.5, 0.0, 0.2], atol=1e-3)


def test_grasped_starts_on_the_table_hold_the_block_where_it_starts() -> None:
    env = make_task("pick_and_place", train_grasped_start=1.0)
    obs, info = env.reset(seed=3)
    block, tcp = obs["achieved_goal"], obs["observation"][:3]
    assert info["grasped_start"] and block[2] == pytest.approx(BLOCK_HALF_SIZE_M)
    np.testing.assert_allclose(tcp[:2], block[:2], atol=1e-3)
    assert _opening(env, obs) == pytest.approx(2 * BLOCK_HALF_SIZE_M, abs=1e-3)
    for _ in range(6):  # straight up with the gripper shut: the block is lifted
        obs, *_ = env.step(np.array([0.0, 0.0, 1.0, -1.0], np.float32))
    assert obs["achieved_goal"][2] > 0.1


def test_near_starts_put_the_tool_beside_the_block_for_training_goals_only() -> None:
    env = make_task("push", train_near_start=1.0)
    far = make_task("push")
    touched = 0
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        tcp, block = obs["observation"][:3], obs["achieved_goal"]
        assert info["near_start"] and not info["is_success"]
        assert NEAR_START_XY_M[0] - 1e-3 <= np.linalg.norm(block[:2] - tcp[:2]) <= NEAR_START_XY_M[1] + 1e-3
        assert tcp[2] == pytest.approx(0.016, abs=1e-3) and block[2] == pytest.approx(BLOCK_HALF_SIZE_M)
        # The same seed without near starts draws the same goal (its own stream).
        obs_far, _ = far.reset(seed=seed)
        np.testing.assert_allclose(obs_far["desired_goal"], obs["desired_goal"])
        # Straight at the block: it moves within a few steps.
        direction = np.append((block - tcp)[:2] / np.linalg.norm((block - tcp)[:2]), [0.0, 0.0])
        for _ in range(4):
            obs, *_ = env.step(direction.astype(np.float32))
        touched += np.linalg.norm(obs["achieved_goal"][:2] - block[:2]) > 0.01
    assert touched >= 9
    goal = env.unwrapped.goal_sampler.heldout(1)[0]
    for options in ({"desired_goal": goal}, {"split": "heldout"}):
        obs, info = env.reset(options=options)
        assert not info["near_start"]
        np.testing.assert_allclose(obs["observation"][:3], [0.5, 0.0, 0.016], atol=1e-3)


def test_near_start_distance_range_is_a_setting() -> None:
    env = make_task("push", train_near_start=1.0, train_near_start_m=(0.10, 0.14))
    gaps = []
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        if info["near_start"]:
            gaps.append(float(np.linalg.norm(obs["achieved_goal"][:2] - obs["observation"][:2])))
    assert len(gaps) >= 6 and all(0.099 <= g <= 0.141 for g in gaps)  # the workspace clip may trim a few
    with pytest.raises(ConfigError, match="train_near_start_m"):
        make_task("push", train_near_start=0.5, train_near_start_m=(0.08, 0.05))
    with pytest.raises(ConfigError, match="near_start_m"):
        build_train_config({"task": "push", "near_start": 0.5, "near_start_m": [0.05]})
    with pytest.raises(ConfigError, match="near_start_m"):
        build_train_config({"task": "push", "near_start": 0.5, "near_start_m": [0.05, 0.5]})


def test_near_starts_need_an_object_a_share_and_a_task() -> None:
    with pytest.raises(ConfigError, match="train_near_start"):
        make_task("reach", train_near_start=0.5)
    with pytest.raises(ConfigError, match="train_near_start"):
        make_task("push", train_near_start=-0.1)
    with pytest.raises(ConfigError, match="near_start is an her_mujoco task option"):
        build_train_config({"env": "FetchPush-v4", "near_start": 0.5})


def test_a_near_start_the_arm_cannot_reach_falls_back_to_the_task_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from her_mujoco import tasks

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConfigError("the arm cannot put its tool at the start position")

    env = make_task("push", train_near_start=1.0)
    monkeypatch.setattr(tasks, "solve_start_posture", unreachable)
    obs, info = env.reset(seed=0)
    assert not info["near_start"]
    np.testing.assert_allclose(obs["observation"][:3], [0.5, 0.0, 0.016], atol=1e-3)
    assert obs["achieved_goal"][2] == pytest.approx(BLOCK_HALF_SIZE_M)  # the block still on the table
