"""The drawer task: solvable, its reward a function of the drawer joint alone, the seeds' example
(half open: the relabelled halfway goal succeeds, the requested full opening fails), bad input."""

import mujoco
import numpy as np
import pytest

from her_goals import GoalError, JointAngleExtractor, RobotState
from her_goals.errors import ConfigError
from her_goals.robot.arm_config import packaged_model_path
from her_goals.robot.drawer import DRAWER_JOINT, DrawerGeometry, packaged_drawer_model_path
from her_goals.tasks import DRAWER_MIN_START_GOAL_M, DRAWER_TRAVEL_M, get_task
from her_mujoco import DrawerEnv, make_task
from her_policy.deploy.scripted import scripted_controller
from her_policy.learn.buffer import HerReplayBuffer

EPISODES = 20


@pytest.fixture(scope="module")
def env():
    env = make_task("drawer")
    yield env
    env.close()


def run_episode(env, goal, *, steer_to=None, start=None):
    """One episode toward requested ``goal``; the scripted controller aims at ``steer_to`` if given."""
    controller = scripted_controller(env)
    options = {"desired_goal": np.asarray(goal, float)}
    if start is not None:
        options["drawer_position"] = start
    obs, _ = env.reset(seed=0, options=options)
    observations, actions, achieved, rewards, infos = [obs["observation"]], [], [obs["achieved_goal"]], [], []
    truncated = False
    while not truncated:
        seen = dict(obs, desired_goal=np.asarray(steer_to if steer_to is not None else goal, float))
        action = controller(seen)
        obs, reward, terminated, truncated, info = env.step(action)
        assert not terminated
        observations.append(obs["observation"])
        actions.append(action)
        achieved.append(obs["achieved_goal"])
        rewards.append(reward)
        infos.append(info)
    return np.array(observations), np.array(actions), np.array(achieved), np.array(rewards), infos


def test_the_task_is_registered_with_a_joint_goal_space_spanning_closed_to_fully_open(env) -> None:
    spec = get_task("drawer")
    base = env.unwrapped
    assert spec.goal_space == "joint_position" and base.goal_space.units == "m"
    assert base.goal_space.dim == 1 and base.goal_space.tolerance == spec.tolerance == 0.02
    assert spec.goal_region.low == (0.0,) and spec.goal_region.high == (DRAWER_TRAVEL_M,)
    assert (base.drawer.low_m, base.drawer.high_m) == (0.0, DRAWER_TRAVEL_M)  # the model's joint range
    assert base.observation_layout.names == (
        "tcp_pos", "tcp_vel", "gripper_opening", "gripper_opening_rate",
        "drawer_pos", "drawer_vel", "handle_pos", "handle_rel_pos",
    )  # fmt: skip
    goals = base.goal_sampler.heldout(200)
    assert goals.min() < 0.02 and goals.max() > DRAWER_TRAVEL_M - 0.02  # closed to fully open


def test_the_drawer_never_starts_at_its_goal_and_starts_on_both_sides(env) -> None:
    gaps = []
    for seed in range(60):
        obs, info = env.reset(seed=seed)
        assert not info["is_success"]
        gaps.append(float(obs["desired_goal"][0] - obs["achieved_goal"][0]))
    assert min(abs(g) for g in gaps) >= DRAWER_MIN_START_GOAL_M - 1e-9
    assert sum(g > 0 for g in gaps) >= 15 and sum(g < 0 for g in gaps) >= 15  # open and shut


def test_scripted_controller_opens_and_shuts_the_drawer_on_held_out_goals(env) -> None:
    controller = scripted_controller(env)
    goals = env.unwrapped.goal_sampler.heldout(EPISODES)
    successes = []
    for seed, goal in enumerate(goals):
        obs, _ = env.reset(seed=seed, options={"desired_goal": goal})
        truncated = False
        while not truncated:
            obs, _, _, truncated, info = env.step(controller(obs))
        successes.append(info["is_success"])
    # Measured: 100/100 held-out goals.
    assert np.mean(successes) >= 0.9


def test_the_reward_is_recomputable_from_the_drawer_joint_alone(env) -> None:
    base = env.unwrapped
    goal = np.array([0.15])
    _, _, achieved, rewards, _ = run_episode(env, goal, start=0.02)
    assert (rewards == 0).any() and (rewards == -1).any()  # the episode crosses into the tolerance
    # Only the drawer joint: no arm joints, no object pose.
    extractor = JointAngleExtractor(base.goal_space, DRAWER_JOINT)
    for q, reward in zip(achieved[1:], rewards):
        state = RobotState(joint_names=(DRAWER_JOINT,), position=np.array([q[0]]))
        assert base.goal_space.compute_reward(extractor(state), goal) == reward
    # Batched, as the relabeller and the audit compute it.
    np.testing.assert_array_equal(base.compute_reward(achieved[1:], np.tile(goal, (len(rewards), 1))), rewards)
    # The achieved goal is the physics' joint position, which the simulator reports in its state.
    assert achieved[-1][0] == pytest.approx(base.sim.drawer_position_m)
    state = base.sim.state()
    assert state.joint_names[-1] == DRAWER_JOINT and state.position[-1] == pytest.approx(achieved[-1][0])


def test_half_open_succeeds_for_the_relabelled_halfway_goal_and_fails_the_requested_full_opening(env) -> None:
    base = env.unwrapped
    full, half = np.array([DRAWER_TRAVEL_M]), np.array([DRAWER_TRAVEL_M / 2])
    observations, actions, achieved, rewards, infos = run_episode(env, full, steer_to=half, start=0.0)
    final = achieved[-1]
    assert final[0] == pytest.approx(half[0], abs=0.01)  # opened halfway
    # The commanded full opening: failed, on every step.
    assert not base.goal_space.is_success(final, full)
    assert (rewards == -1).all() and infos[-1]["is_success"] == 0.0
    # Hindsight: the replay buffer relabels with the achieved (halfway) opening, which succeeds.
    buffer = HerReplayBuffer(base.goal_space, observations.shape[1], 4, strategy="final", relabel_prob=1.0)
    buffer.add_episode(observations, actions, achieved, full, truncated=True)
    batch = buffer.sample(256)
    assert batch.relabelled.all()
    np.testing.assert_allclose(batch.desired_goal, np.tile(final, (256, 1)))
    last = batch.next_achieved_goal[:, 0] == final[0]
    assert last.any() and (batch.reward[last] == 0).all()
    assert base.goal_space.is_success(final, half)
    # Without relabelling the same transitions keep the requested goal and fail.
    requested = HerReplayBuffer(base.goal_space, observations.shape[1], 4, relabel_prob=0.0)
    requested.add_episode(observations, actions, achieved, full, truncated=True)
    assert (requested.sample(256).reward == -1).all()


def test_the_observation_measures_the_physics(env) -> None:
    base = env.unwrapped
    layout = base.observation_layout
    site = mujoco.mj_name2id(base.sim.model, mujoco.mjtObj.mjOBJ_SITE, "drawer_handle")
    for opening in (0.0, 0.07, DRAWER_TRAVEL_M):
        obs, _ = env.reset(seed=1, options={"desired_goal": [0.1], "drawer_position": opening})
        vec = obs["observation"]
        np.testing.assert_allclose(vec[layout.slice("drawer_pos")], [opening], atol=1e-9)
        np.testing.assert_allclose(vec[layout.slice("handle_pos")], base.sim.data.site_xpos[site], atol=1e-9)
        np.testing.assert_allclose(
            vec[layout.slice("handle_rel_pos")], base.sim.data.site_xpos[site] - vec[layout.slice("tcp_pos")], atol=1e-9
        )
    # The tool starts above the handle's travel, clear of the drawer.
    assert 0.1 < vec[layout.slice("tcp_pos")][2] < 0.15


def test_the_drawer_is_only_in_the_drawer_scene() -> None:
    push = make_task("push")
    model = push.unwrapped.sim.model
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, DRAWER_JOINT) < 0
    push.close()
    drawer = mujoco.MjModel.from_xml_path(str(packaged_drawer_model_path()))
    assert mujoco.mj_name2id(drawer, mujoco.mjtObj.mjOBJ_BODY, "block") < 0
    # The same arm: every arm joint of her_arm.xml, with the same ranges.
    arm = mujoco.MjModel.from_xml_path(str(packaged_model_path()))
    for j in range(arm.njnt):
        name = mujoco.mj_id2name(arm, mujoco.mjtObj.mjOBJ_JOINT, j)
        if name == "block_joint":
            continue
        k = mujoco.mj_name2id(drawer, mujoco.mjtObj.mjOBJ_JOINT, name)
        assert k >= 0, name
        np.testing.assert_array_equal(drawer.jnt_range[k], arm.jnt_range[j])


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("goal", "names"),
    [
        ([0.35], ["0.35 m is outside", "'drawer_slide'", "0 (closed) to 0.2 m"]),
        ([-0.05], ["-0.05 m is outside", "fully open"]),
        ([45.0], ["45 m is outside", "not degrees", "e.g. 0.1 for half open"]),  # degrees for metres
        ([np.pi / 2], ["1.5708 m is outside"]),  # radians, as if it were a door
    ],
)
def test_a_drawer_goal_outside_the_joints_range_is_a_clear_error(env, goal, names) -> None:
    with pytest.raises(GoalError) as info:
        env.reset(options={"desired_goal": goal})
    for text in names:
        assert text in str(info.value)


def test_a_drawer_start_outside_the_range_or_a_goal_of_the_wrong_shape_is_a_clear_error(env) -> None:
    with pytest.raises(GoalError, match="drawer_position"):
        env.reset(options={"desired_goal": [0.1], "drawer_position": 0.5})
    with pytest.raises(GoalError, match=r"shape \(3,\)"):
        env.reset(options={"desired_goal": [0.1, 0.0, 0.0]})
    with pytest.raises(ConfigError, match="Did you mean 'drawer_position'"):
        env.reset(options={"drawer_positon": 0.1})


def test_an_arm_model_without_the_drawer_joint_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        DrawerEnv(arm_config={"model_path": packaged_model_path()})
    message = str(info.value)
    assert "has no drawer joint 'drawer_slide'" in message
    assert "Fix: set model_path" in message and str(packaged_drawer_model_path()) in message
    assert str(packaged_model_path()) in message  # names the model it looked in


def test_a_drawer_joint_that_is_not_a_limited_slide_or_has_no_handle_is_a_clear_error() -> None:
    xml = """<mujoco><worldbody><body name="drawer"><joint name="drawer_slide" type="{kind}" {rng}/>
    <geom size="0.1"/>{site}</body></worldbody></mujoco>"""
    site = '<site name="drawer_handle"/>'
    hinge = mujoco.MjModel.from_xml_string(xml.format(kind="hinge", rng='range="0 1"', site=site))
    with pytest.raises(ConfigError, match="must be a slide joint with a range"):
        DrawerGeometry.from_model(hinge)
    free = mujoco.MjModel.from_xml_string(xml.format(kind="slide", rng="", site=site))
    with pytest.raises(ConfigError, match="must be a slide joint with a range"):
        DrawerGeometry.from_model(free)
    no_site = mujoco.MjModel.from_xml_string(xml.format(kind="slide", rng='range="0 0.2"', site=""))
    with pytest.raises(ConfigError, match="no handle site 'drawer_handle'"):
        DrawerGeometry.from_model(no_site)
    geometry = DrawerGeometry.from_model(
        mujoco.MjModel.from_xml_string(xml.format(kind="slide", rng='range="0 0.2"', site=site))
    )
    assert geometry.axis == (0.0, 0.0, 1.0) and geometry.high_m  # MuJoCo's default joint axis == pytest.approx(0.2)
