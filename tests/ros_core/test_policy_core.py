"""policy_node's core: the safety runtime on the latest messages; bad input holds the arm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip, write_artefact

from her_goals.robot.arm_config import ARM_JOINTS, GRIPPER_JOINTS, HOME_QPOS_RAD
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue.health import ERROR, OK, WARN
from her_goals.safety_flags import SafetyFlag, SafetyStatus
from her_policy.deploy.policy_core import PolicyConfig, PolicyCore

MS = 1_000_000
NAMES = ARM_JOINTS + GRIPPER_JOINTS
HOME = np.array([*HOME_QPOS_RAD, 0.04, 0.04])
GOAL = np.array([0.55, 0.05, 0.25])


@pytest.fixture(scope="module")
def short_safety(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("cfg") / "safety.yaml"
    path.write_text("loop:\n  max_ticks_per_episode: 4\n")
    return str(path)


def js(types: mc.MessageTypes, stamp: int, q: Any = HOME, names: tuple[str, ...] = NAMES) -> Any:
    return cdr_roundtrip(mc.joint_state_msg(types, names, q, np.zeros(len(names)), [], stamp))


def start(core: PolicyCore, goal: Any = GOAL, episode: int = 0, space: str = "ee_position") -> None:
    core.on_event(mc.EventData(0, episode, "reach", space, np.asarray(goal, float), 0, False, "auto", 0))


def reach_core(**kw: Any) -> PolicyCore:
    return PolicyCore(PolicyConfig(task="reach", fallback="scripted", **kw))


def test_no_state_sends_nothing(types: mc.MessageTypes):
    core = reach_core()
    out = core.tick(0)
    assert out.command is None and out.steps == []
    assert "waiting for /joint_states" in core.health.diagnostic().message


def test_episode_steps_are_published_one_tick_late_and_the_last_is_truncated(types, short_safety):
    core = reach_core(safety_config=short_safety)
    start(core)
    steps = []
    q = HOME.copy()
    for k in range(7):
        now = k * 40 * MS
        core.on_joint_state(js(types, now, q))
        out = core.tick(now)
        if k < 4:
            assert out.command is not None and out.gripper_m is not None
            q[:7] = out.command  # a perfect position controller
        steps += out.steps
    assert [s.step for s in steps] == [0, 1, 2, 3]
    assert [s.truncated for s in steps] == [False, False, False, True]
    np.testing.assert_array_equal(steps[1].observation, steps[0].next_observation)
    np.testing.assert_array_equal(steps[1].achieved_goal, steps[0].next_achieved_goal)
    for s in steps:
        assert s.episode_id == 0 and s.frame_id == "base_link"
        assert s.policy == "scripted"  # every Step names the policy that acted
        np.testing.assert_array_equal(s.desired_goal, GOAL)
        assert s.reward == float(core.space.compute_reward(s.next_achieved_goal, GOAL))
        assert s.is_success == bool(core.space.is_success(s.next_achieved_goal, GOAL))
    assert np.linalg.norm(steps[-1].next_achieved_goal - GOAL) < np.linalg.norm(steps[0].achieved_goal - GOAL)
    assert core.tick(8 * 40 * MS).command is None  # episode over: nothing sent


def test_stale_state_holds_at_the_measured_position(types: mc.MessageTypes):
    core = reach_core()
    start(core)
    core.on_joint_state(js(types, 0))
    core.tick(0)
    out = core.tick(500 * MS)  # no new /joint_states for 0.5 s (timeout 0.1 s)
    d = core.last
    assert d is not None and d.hold and d.flags & SafetyFlag.STALE_STATE and d.status == SafetyStatus.STALE
    np.testing.assert_allclose(out.command, HOME[:7])
    assert core.diagnostic_level() == 3


def test_wrong_joint_names_are_dropped_and_the_arm_goes_stale(types: mc.MessageTypes):
    core = reach_core()
    start(core)
    core.on_joint_state(js(types, 0))
    core.tick(0)
    wrong = tuple(n.upper() for n in NAMES)
    core.on_joint_state(js(types, 200 * MS, names=wrong))
    level, message = core.health.problems["joint_states"]
    assert level == ERROR and "lacks joint(s)" in message and "JOINT1" in message
    out = core.tick(200 * MS)
    assert core.last is not None and core.last.hold and out.command is not None
    assert core.health.counters["wrong_joint_names"] == 1
    fresh = reach_core()
    fresh.on_joint_state(js(types, 0, names=wrong))
    assert fresh.tick(0).command is None  # never a good state: nothing to hold, nothing sent


def test_out_of_order_stamps_are_dropped(types: mc.MessageTypes):
    core = reach_core()
    core.on_joint_state(js(types, 100 * MS))
    moved = HOME.copy()
    moved[0] = 0.5
    core.on_joint_state(js(types, 50 * MS, moved))
    assert core.health.problems["joint_order"][0] == WARN
    assert core.health.counters["out_of_order_joint_states"] == 1
    start(core)
    core.tick(100 * MS)
    np.testing.assert_allclose(core.monitor.measured_position(core.state(100 * MS)), HOME[:7])


def test_missing_object_pose_holds_for_object_tasks(types: mc.MessageTypes):
    core = PolicyCore(PolicyConfig(task="push", fallback="scripted"))
    start(core, [0.5, 0.1, 0.025], space="object_position")
    core.on_joint_state(js(types, 0))
    out = core.tick(0)
    assert core.health.problems["object_missing"][0] == ERROR
    assert core.last is not None and core.last.hold and core.last.flags & SafetyFlag.NON_FINITE
    np.testing.assert_allclose(out.command, HOME[:7])
    core.on_object_pose(cdr_roundtrip(mc.pose_stamped_msg(types, [0.5, 0, 0.025, 1, 0, 0, 0], 0, "world")))
    assert "frame 'world'" in core.health.problems["object_pose"][1]


def test_estop_holds_ends_the_episode_and_needs_release_before_reset(types: mc.MessageTypes):
    core = reach_core()
    start(core)
    core.on_joint_state(js(types, 0))
    core.tick(0)
    core.on_estop(True)
    core.on_joint_state(js(types, 40 * MS))
    out = core.tick(40 * MS)
    assert core.last is not None and core.last.hold and core.last.flags & SafetyFlag.ESTOP
    np.testing.assert_allclose(out.command, HOME[:7])
    core.on_joint_state(js(types, 80 * MS))
    out = core.tick(80 * MS)  # the e-stop step is published with its next observation
    assert out.steps[-1].safety_flags & SafetyFlag.ESTOP and not out.steps[-1].truncated
    assert out.command is not None  # still holding
    assert core.reset_estop()[0] is False  # the signal is still true
    core.on_estop(False)
    ok, _ = core.reset_estop()
    assert ok and not core.monitor.estop_latched
    assert core.tick(120 * MS).command is None  # episode over, e-stop released: nothing sent


def test_goal_outside_the_region_is_refused_with_one_flagged_step(types: mc.MessageTypes):
    core = reach_core()
    start(core, [1.2, 0.0, 0.2])
    core.on_joint_state(js(types, 0))
    out = core.tick(0)
    assert out.command is not None and core.last is not None and core.last.hold
    (s,) = out.steps
    assert s.safety_flags & SafetyFlag.GOAL_OUT_OF_REGION and s.truncated
    assert "refused" in core.health.diagnostic().message
    assert core.tick(40 * MS).steps == []


def test_episode_in_another_goal_space_is_not_acted_on(types: mc.MessageTypes):
    core = reach_core()
    start(core, [0.5, 0.1, 0.025], space="object_position")
    core.on_joint_state(js(types, 0))
    assert core.tick(0).command is None and core.episode is None
    assert "goal space 'object_position'" in core.health.problems["episode"][1]


def test_a_fitting_artefact_is_used(types: mc.MessageTypes, tmp_path: Path):
    path = write_artefact(tmp_path / "policy")
    core = PolicyCore(PolicyConfig(task="reach", artefact=str(path)))
    assert core.actor_kind.startswith("artefact") and core.artefact_hash
    assert core.policy == core.artefact_hash  # what its Steps name
    exploring = PolicyCore(PolicyConfig(task="reach", artefact=str(path), noise_std=0.2))
    assert exploring.policy == core.artefact_hash + "+explore"  # not the artefact's own actions
    assert core.health.level == OK
    start(core)
    core.on_joint_state(js(types, 0))
    assert core.tick(0).command is not None and not core.last.hold


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"goal_space": "object_position"}, "goal space"),
        ({"env": "FetchReach-v4"}, "another arm"),
        ({"task": "push"}, "object_position|task:push"),
        ({"obs_dim": 10}, "sizes"),
    ],
)
def test_an_artefact_that_does_not_fit_holds_the_arm(types, tmp_path: Path, kwargs: dict[str, Any], why: str):
    path = write_artefact(tmp_path / "policy", **kwargs)
    core = PolicyCore(PolicyConfig(task="reach", artefact=str(path)))
    level, message = core.health.problems["artefact"]
    assert level == ERROR and "holding" in message
    assert pytest.importorskip("re").search(why, message), message
    start(core)
    core.on_joint_state(js(types, 0))
    out = core.tick(0)
    assert core.last is not None and core.last.hold  # the actor never runs
    np.testing.assert_allclose(out.command, HOME[:7])


def test_missing_artefact_directory_is_reported(tmp_path: Path):
    core = PolicyCore(PolicyConfig(task="reach", artefact=str(tmp_path / "nope")))
    assert "not a policy artefact" in core.health.problems["artefact"][1]


def test_exploration_noise_and_random_actions(types: mc.MessageTypes):
    core = PolicyCore(PolicyConfig(task="reach", fallback="random", seed=3))
    a = core._act(np.zeros(8), GOAL)
    assert a.shape == (4,) and np.all(np.abs(a) <= 1)
    noisy = PolicyCore(PolicyConfig(task="reach", fallback="scripted", noise_std=0.2, random_eps=0.0, seed=1))
    clean = reach_core()
    obs, near = np.r_[0.5, 0.0, 0.2, np.zeros(5)], np.array([0.51, 0.0, 0.2])  # unsaturated actions
    assert not np.allclose(noisy._act(obs, near), clean._act(obs, near))
    hold = PolicyCore(PolicyConfig(task="reach", fallback="hold"))
    assert hold.health.problems["artefact"][0] == WARN


def test_command_topics_per_interface():
    # Relative: resolved in the node's namespace (a second arm under arm2/ has its own controllers).
    assert PolicyConfig().topic == "forward_position_controller/commands"
    assert PolicyConfig(command_interface="trajectory").topic == "joint_trajectory_controller/joint_trajectory"
    assert PolicyConfig(command_topic="/arm/cmd").topic == "/arm/cmd"


def test_the_drawer_task_reads_the_drawer_joint_and_its_geometry_from_the_arm_model(types, tmp_path: Path):
    from her_goals.errors import ConfigError
    from her_goals.robot.drawer import packaged_drawer_model_path

    with pytest.raises(ConfigError, match="has no drawer joint 'drawer_slide'"):
        PolicyCore(PolicyConfig(task="drawer", fallback="scripted"))  # the packaged arm has no drawer
    arm = tmp_path / "arm.yaml"
    arm.write_text(f"model_path: {packaged_drawer_model_path()}\nobject_body: null\n")
    core = PolicyCore(PolicyConfig(task="drawer", fallback="scripted", arm_config=str(arm)))
    assert core.observe.layout.names[-4:] == ("drawer_pos", "drawer_vel", "handle_pos", "handle_rel_pos")
    core.on_event(mc.EventData(0, 0, "drawer", "joint_position", np.array([0.15]), 0, False, "auto", 0))
    names = (*NAMES, "drawer_slide")
    core.on_joint_state(js(types, 0, np.array([*HOME, 0.05]), names))
    out = core.tick(0)
    assert out.command is not None and not core.last.hold
    core.on_joint_state(js(types, 40 * MS, np.array([*HOME, 0.06]), names))
    (step,) = core.tick(40 * MS).steps
    np.testing.assert_allclose(step.achieved_goal, [0.05])  # the drawer joint, as measured
    np.testing.assert_allclose(step.next_achieved_goal, [0.06])
    assert step.reward == -1.0
    # Joint states without the drawer's joint are dropped, naming it.
    core.on_joint_state(js(types, 80 * MS))
    assert "lacks joint(s) ['drawer_slide']" in core.health.diagnostic().message


def test_following_a_learner_swaps_versions_only_when_an_episode_starts(types: mc.MessageTypes, tmp_path: Path):
    from her_policy.artefact.versions import publish_version

    run = tmp_path / "learner"  # her learn --out RUN: versions in RUN/versions
    core = PolicyCore(PolicyConfig(task="reach", follow=str(run), fallback="scripted"))
    assert core.actor_kind == "following" and core.policy == "scripted"  # no version yet
    start(core)
    core.on_joint_state(js(types, 0))
    assert core.tick(0).command is not None and not core.last.hold
    # A version published mid-episode does not act in it: Steps still name the fallback.
    publish_version(run / "versions", 1, write_artefact(tmp_path / "a1"), [("s", "b", 0)])
    core.on_joint_state(js(types, 40 * MS))
    assert [s.policy for s in core.tick(40 * MS).steps] == ["scripted"]
    start(core, episode=1)  # between episodes: v0001 fits and swaps in
    assert core.following.version == "v0001" and core.policy == core.artefact_hash != ""
    # An unfit newer version (another goal space) is refused with a diagnostic; v0001 keeps acting.
    publish_version(run / "versions", 2, write_artefact(tmp_path / "a2", goal_space="object_position"), [])
    start(core, episode=2)
    assert core.following.version == "v0001"
    level, message = core.health.problems["version"]
    assert level == WARN and "v0002 refused, v0001 keeps acting" in message


def test_artefact_and_follow_together_are_refused():
    with pytest.raises(Exception, match="artefact .* or follow"):
        PolicyConfig(task="reach", artefact="x", follow="y")
