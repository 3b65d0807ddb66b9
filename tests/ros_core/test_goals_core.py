"""goals_node's core: desired goals, achieved goals from messages, episode events, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip

from her_goals.episode import EventKind
from her_goals.errors import HerError
from her_goals.goals_core import GoalsConfig, GoalsCore
from her_goals.robot.arm_config import ARM_JOINTS, GRIPPER_JOINTS, HOME_QPOS_RAD
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue.health import ERROR, STALE, WARN
from her_goals.tasks import TASKS

S = 1_000_000_000
NAMES = ARM_JOINTS + GRIPPER_JOINTS


def joint_state(types: mc.MessageTypes, stamp: int, names: tuple[str, ...] = NAMES) -> Any:
    q = np.array([*HOME_QPOS_RAD, 0.04, 0.04])[: len(names)]
    return cdr_roundtrip(mc.joint_state_msg(types, names, q, np.zeros(len(names)), [], stamp))


def pose(types: mc.MessageTypes, stamp: int, frame: str = "base_link", xyz=(0.5, 0.1, 0.025)) -> Any:
    return cdr_roundtrip(mc.pose_stamped_msg(types, [*xyz, 1, 0, 0, 0], stamp, frame))


def step(episode_id: int, achieved: Any, flags: int = 0, truncated: bool = False) -> mc.StepData:
    z = np.zeros(3)
    return mc.StepData(episode_id, 0, z, z, np.zeros(4), np.zeros(4), z, np.asarray(achieved, float), z,
                       -1.0, False, truncated, False, flags, 0.0, (), 0)


def test_goals_node_and_simulated_tasks_read_one_task_registry():
    tasks = pytest.importorskip("her_mujoco.tasks")
    for name, cls in (("reach", tasks.ReachEnv), ("push", tasks.PushEnv), ("pick_and_place", tasks.PickAndPlaceEnv)):
        spec = TASKS[name]
        core = GoalsCore(GoalsConfig(task=name))
        assert core.space.name == spec.goal_space == cls.goal_space_name
        assert core.region == spec.goal_region == cls.goal_region
        assert core.book.max_steps == spec.episode_steps
        np.testing.assert_allclose(core.region.low, cls.goal_region.low)
        np.testing.assert_allclose(core.region.high, cls.goal_region.high)
        assert core.region.floor_fraction == cls.goal_region.floor_fraction


def test_achieved_goal_is_the_tool_position_of_the_measured_joints(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="reach"))
    assert core.achieved(0) is None and core.health.problems["stale"][0] == STALE
    core.on_joint_state(joint_state(types, 5 * S))
    value, stamp = core.achieved(5 * S + 1000)
    np.testing.assert_allclose(value, [0.5, 0.0, 0.2], atol=2e-3)  # the home posture's tcp
    assert stamp == 5 * S and "stale" not in core.health.problems
    assert core.achieved(7 * S) is None  # 2 s later without a new message: stale


def test_object_goal_uses_the_pose_in_the_goal_frame_only(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="push"))
    core.on_object_pose(pose(types, S, frame="camera_link"))
    assert core.health.problems["object_pose"][0] == ERROR
    assert "camera_link" in core.health.problems["object_pose"][1]
    assert core.achieved(S) is None
    core.on_object_pose(pose(types, S))
    value, stamp = core.achieved(S)
    np.testing.assert_array_equal(value, [0.5, 0.1, 0.025])
    assert stamp == S
    assert "object_pose" not in core.health.problems


def test_wrong_joint_names_are_reported_not_raised(types: mc.MessageTypes):
    logged: list[tuple[int, str]] = []
    core = GoalsCore(GoalsConfig(task="reach"))
    core.health.on_change = lambda level, msg: logged.append((level, msg))
    wrong = tuple(n.replace("joint", "panda_joint") for n in NAMES)
    for _ in range(3):
        core.on_joint_state(joint_state(types, S, wrong))
    assert len(logged) == 1 and logged[0][0] == ERROR  # logged once, not per message
    assert "lacks arm joint(s)" in logged[0][1] and "Did you mean" not in logged[0][1]
    assert core.achieved(S) is None
    core.on_joint_state(joint_state(types, S))
    assert core.achieved(S) is not None and logged[-1][1].startswith("resolved")


def test_out_of_order_stamps_are_dropped(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="push"))
    core.on_object_pose(pose(types, 2 * S, xyz=(0.5, 0.0, 0.025)))
    core.on_object_pose(pose(types, 1 * S, xyz=(0.6, 0.0, 0.025)))
    assert core.health.counters["out_of_order_object_poses"] == 1
    assert core.health.problems["pose_order"][0] == WARN
    np.testing.assert_array_equal(core.achieved(2 * S)[0], [0.5, 0.0, 0.025])


def test_auto_start_waits_for_state_and_the_delay_then_runs_episodes(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="reach", max_steps=2, start_delay_s=1.0, num_episodes=2))
    assert core.tick(0) == (None, None)  # no state yet: the robot is not publishing
    core.on_joint_state(joint_state(types, 0))
    event, goal = core.tick(0)
    assert event is None and goal is not None and core.region.contains(goal)
    start = core.start(goal, 0, "auto")
    data = core.event_data(start)
    assert (data.event, data.task, data.goal_space, data.frame_id) == (0, "reach", "ee_position", "base_link")
    assert core.tick(S // 2)[1] is None  # running
    core.on_step(step(0, goal), S)
    end = core.on_step(step(0, goal), S)
    assert end is not None and end.kind == EventKind.END and end.success
    core.on_joint_state(joint_state(types, int(1.5 * S)))
    assert core.tick(int(1.5 * S))[1] is None  # within start_delay_s of the end
    core.on_joint_state(joint_state(types, 2 * S))
    _, goal = core.tick(2 * S)
    core.start(goal, 2 * S)
    core.abort("operator", 2 * S)
    core.on_joint_state(joint_state(types, 4 * S))
    assert core.tick(4 * S)[1] is None  # num_episodes reached


def test_estop_abort_pauses_auto_start_until_the_start_service(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="reach", start_delay_s=0.0))
    core.on_joint_state(joint_state(types, 0))
    _, goal = core.tick(0)
    core.start(goal, 0)
    end = core.on_step(step(0, goal, flags=128), 1)
    assert end is not None and end.reason == "estop" and core.auto_paused
    assert core.tick(10)[1] is None
    goal = core.choose_goal([], "heldout")
    assert bool(core.sampler.is_heldout(goal))
    core.start(goal, 20, "operator")
    assert not core.auto_paused and core.book.running


def test_requested_goals_are_checked():
    core = GoalsCore(GoalsConfig(task="reach"))
    np.testing.assert_array_equal(core.choose_goal([0.5, 0.0, 0.2]), [0.5, 0.0, 0.2])
    with pytest.raises(HerError, match="outside the task region"):
        core.choose_goal([1.5, 0.0, 0.2])
    with pytest.raises(HerError):
        core.choose_goal([0.5, 0.0])
    with pytest.raises(HerError, match="split"):
        core.choose_goal([], "validation")
    core.start(core.choose_goal(), 0)
    with pytest.raises(HerError, match="still running"):
        core.choose_goal()


def test_timeout_and_failed_start_are_reported(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="reach", episode_timeout_s=1.0, start_delay_s=0.0))
    core.on_joint_state(joint_state(types, 0))
    _, goal = core.tick(0)
    core.starting()
    assert core.tick(0)[1] is None  # a start is under way (simulator reset)
    core.start_failed("simulator reset failed: no response", 0)
    assert core.health.problems["start"][0] == ERROR
    core.on_joint_state(joint_state(types, S))
    _, goal = core.tick(S)
    core.start(goal, S)
    event, _ = core.tick(int(2.5 * S))
    assert event is not None and event.kind == EventKind.ABORT and event.reason.startswith("timeout")


def test_auto_start_waits_for_the_listeners_of_episode_events(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="reach", start_delay_s=0.0, wait_for_nodes=("policy_node", "recorder_node")))
    core.on_joint_state(joint_state(types, 0))
    assert core.tick(0, lambda: {"recorder_node", "her_test_probe"})[1] is None  # the policy is not up yet
    assert "policy_node" in core.health.problems["waiting"][1]
    assert core.tick(0, lambda: {"recorder_node", "policy_node"})[1] is not None
    assert "waiting" not in core.health.problems


def test_heldout_episodes_name_their_stream_index_and_goal(types: mc.MessageTypes):
    """The goals node draws the plan's held-out stream in order; every START says so, and a
    failed start does not use up an index (no gap in the evaluation)."""
    core = GoalsCore(GoalsConfig(task="reach", split="heldout", seed=5, num_episodes=3))
    plan = core.plan(policy="scripted")
    assert (plan.split, plan.planned_episodes, plan.stream_seed) == ("eval", 3, 5)
    goal = core.choose_goal()
    core.start_failed("simulator reset failed", 0)
    for index in range(3):
        goal = core.choose_goal()
        np.testing.assert_array_equal(goal, plan.goal(index))
        data = core.event_data(core.start(goal, index * S, "auto"))
        assert (data.split, data.stream_index) == ("eval", index)
        back = mc.episode_event_data(cdr_roundtrip(mc.episode_event_msg(types, data)))
        assert (back.split, back.stream_index) == ("eval", index)
        core.abort("operator", index * S + 1)
    requested = core.choose_goal([0.5, 0.0, 0.2])
    assert core.event_data(core.start(requested, 9 * S)).split == "requested"
    core.abort("operator", 9 * S + 1)
    core.choose_goal([], "train")
    started = core.start(core.sampler.sample(), 10 * S)  # not the goal choose_goal drew
    assert (started.split, started.stream_index) == ("requested", -1)


def test_the_drawer_goal_is_the_drawer_joint_of_the_joint_states(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="drawer"))
    assert core.space.name == "joint_position" and core.space.tolerance == 0.02
    names = (*NAMES, "drawer_slide")
    msg = cdr_roundtrip(
        mc.joint_state_msg(types, names, np.array([*HOME_QPOS_RAD, 0.04, 0.04, 0.12]), np.zeros(len(names)), [], 5 * S)
    )
    core.on_joint_state(msg)
    value, stamp = core.achieved(5 * S + 1000)
    np.testing.assert_allclose(value, [0.12])
    assert stamp == 5 * S
    # A goal beyond the drawer's travel (or in degrees) is refused.
    np.testing.assert_array_equal(core.choose_goal([0.1]), [0.1])
    with pytest.raises(HerError, match="outside the task region"):
        core.choose_goal([45.0])
    # Joint states without the drawer joint: reported, not raised, naming the joint.
    core.on_joint_state(joint_state(types, 6 * S))
    message = core.health.problems["joint_states"][1]
    assert "lacks joint(s) ['drawer_slide']" in message and "publish it in /joint_states" in message


# -- what goals_node publishes and answers (the node only hands these to rclpy) --------------
def test_a_start_becomes_the_latched_desired_goal_then_the_event_and_an_end_only_the_event(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="reach"))
    assert core.event_messages(types, None) == ([], [])
    goal = core.choose_goal([0.5, 0.05, 0.25])
    messages, lines = core.event_messages(types, core.start(goal, S, "operator"))
    assert [k for k, _ in messages] == ["desired", "event"]
    desired, event = (cdr_roundtrip(m) for _, m in messages)
    np.testing.assert_allclose(desired.value, goal)
    assert (desired.episode_id, desired.goal_space, event.event, event.split) == (0, "ee_position", 0, "requested")
    assert lines == ["episode 0 START operator steps=0 success=False goal=[0.5, 0.05, 0.25]"]
    messages, lines = core.event_messages(types, core.abort("operator", 2 * S))
    assert [k for k, _ in messages] == ["event"] and cdr_roundtrip(messages[0][1]).event == int(EventKind.ABORT)
    assert lines[0].startswith("episode 0 ABORT operator")


def test_the_achieved_goal_message_names_the_running_episode_or_zero(types: mc.MessageTypes):
    core = GoalsCore(GoalsConfig(task="reach"))
    assert core.achieved_msg(types, S) is None  # no state yet: nothing to publish
    core.on_joint_state(joint_state(types, S))
    between = cdr_roundtrip(core.achieved_msg(types, S))
    np.testing.assert_allclose(between.value, [0.5, 0.0, 0.2], atol=2e-3)
    assert between.episode_id == 0
    core.start(core.choose_goal(), S, "auto")
    core.abort("operator", S)
    core.start(core.choose_goal(), S, "auto")
    assert cdr_roundtrip(core.achieved_msg(types, S)).episode_id == 1


def test_the_start_and_abort_services_reply_with_the_reason():
    core = GoalsCore(GoalsConfig(task="reach"))
    goal, reply = core.start_request([3.0, 0.0, 0.2], "")
    assert goal is None and not reply.success and "outside the task region" in reply.message
    assert reply.episode_id == 0 and reply.desired_goal == ()
    assert core.abort_request(S) == (None, False, "no episode is running")
    goal, reply = core.start_request([0.5, 0.05, 0.25], "")
    assert goal is not None and reply == (True, "starting", 0, (0.5, 0.05, 0.25))
    core.start(goal, S, "operator")
    again, refused = core.start_request([], "")
    assert again is None and "still running" in refused.message
    event, success, message = core.abort_request(2 * S)
    assert event is not None and event.kind == EventKind.ABORT and (success, message) == (True, "aborted")


class _Reset:
    def __init__(self, success: bool, message: str = "") -> None:
        self.success, self.message = success, message


def test_a_failed_simulator_reset_reports_why_and_a_good_one_starts_the_episode():
    core = GoalsCore(GoalsConfig(task="reach"))
    goal = core.choose_goal(split="heldout")
    core.starting()
    assert core.after_reset(None, goal, S, "auto") is None
    assert core.health.problems["start"] == (ERROR, "could not start an episode: simulator reset failed: no response")
    goal = core.choose_goal(split="heldout")
    assert core.after_reset(_Reset(False, "sim crashed"), goal, S, "auto") is None
    assert "simulator reset failed: sim crashed" in core.health.problems["start"][1] and not core.book.running
    goal = core.choose_goal(split="heldout")
    event = core.after_reset(_Reset(True), goal, 2 * S, "auto")
    assert event is not None and event.kind == EventKind.START and event.split == "eval" and core.book.running
