"""policy_node's lifecycle without ROS: configure checks, activate, deactivate holds, errors recover, e-stop in every state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip, write_artefact

from her_goals.robot.arm_config import ARM_JOINTS, GRIPPER_JOINTS, HOME_QPOS_RAD
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue.health import ERROR, OK, WARN
from her_goals.rosglue.params import parameter_specs
from her_goals.safety_flags import SafetyFlag
from her_policy.deploy.managed import ManagedPolicy
from her_policy.deploy.policy_core import PolicyConfig

MS = 1_000_000
NAMES = ARM_JOINTS + GRIPPER_JOINTS
HOME = np.array([*HOME_QPOS_RAD, 0.04, 0.04])
GOAL = np.array([0.55, 0.05, 0.25])


def params(**kw: Any) -> dict[str, Any]:
    """Parameter values as the node reads them (ROS types: "" for None, lists for tuples)."""
    values = {name: default for name, (default, _) in parameter_specs(PolicyConfig).items()}
    return {**values, "task": "reach", **kw}


def js(types: mc.MessageTypes, stamp: int, q: Any = HOME, names: tuple[str, ...] = NAMES) -> Any:
    return cdr_roundtrip(mc.joint_state_msg(types, names, q, np.zeros(len(names)), [], stamp))


def start(m: ManagedPolicy, episode: int = 0) -> None:
    assert m.core is not None
    m.core.on_event(mc.EventData(0, episode, "reach", "ee_position", GOAL, 0, False, "auto", 0))


@pytest.fixture(scope="module")
def push_artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_artefact(tmp_path_factory.mktemp("art") / "policy", task="push")


def test_unconfigured_sends_nothing_and_says_so():
    m = ManagedPolicy()
    assert m.state_label == "unconfigured" and m.tick(0).command is None
    status = m.diagnostic(m.state_label)
    assert "unconfigured: no command is sent" in status.message and status.values["lifecycle_state"] == "unconfigured"


def test_an_artefact_that_does_not_fit_fails_configure_and_a_fixed_parameter_recovers(push_artefact: Path):
    m = ManagedPolicy()
    ok, message = m.configure(params(artefact=str(push_artefact)))
    assert not ok and "configure failed" in message and "object_position" in message
    assert m.core is None and m.state_label == "unconfigured"
    assert m.health.problems["configure"][0] == ERROR  # on /diagnostics until it is fixed
    ok, message = m.configure(params(artefact="", fallback="scripted"))
    assert ok and m.state_label == "inactive" and "configure" not in m.health.problems


def test_a_bad_parameter_fails_configure_with_its_name():
    ok, message = ManagedPolicy().configure(params(noise_std=-1.0))
    assert not ok and "noise_std" in message


def test_configure_and_activate_check_the_joint_names(types: mc.MessageTypes):
    m = ManagedPolicy()
    m.on_joint_state(js(types, 0, names=tuple(n.upper() for n in NAMES)))
    ok, message = m.configure(params(fallback="scripted"))
    assert not ok and "lacks the arm's joint(s)" in message and "joint1" in message
    m.on_joint_state(js(types, 40 * MS))
    ok, message = m.configure(params(fallback="scripted"))
    assert ok and "checked against joint_states" in message
    m.on_joint_state(js(types, 80 * MS, names=tuple(n.upper() for n in NAMES)))
    ok, message = m.activate()
    assert not ok and "activate refused" in message and not m.active
    m.on_joint_state(js(types, 120 * MS))
    assert m.activate()[0] and m.state_label == "active"


def test_inactive_sends_nothing_active_commands_deactivate_holds_at_the_measured_position(types: mc.MessageTypes):
    m = ManagedPolicy()
    assert m.configure(params(fallback="scripted"))[0]
    m.on_joint_state(js(types, 0))
    start(m)
    assert m.tick(0).command is None  # inactive: configured, not commanding
    assert m.activate()[0]
    q = HOME.copy()
    for k in range(1, 4):
        m.on_joint_state(js(types, k * 40 * MS, q))
        out = m.tick(k * 40 * MS)
        assert out.command is not None
        q[:7] = out.command  # the arm follows
    measured = q.copy()
    m.on_joint_state(js(types, 200 * MS, measured))
    out = m.deactivate(200 * MS)
    np.testing.assert_allclose(out.command, measured[:7])  # one last command: hold where it is
    assert m.state_label == "inactive" and m.core is not None and m.core.episode is None
    assert m.tick(240 * MS).command is None and not m.tick(240 * MS).steps


def test_the_estop_works_before_configure_and_survives_cleanup(types: mc.MessageTypes):
    m = ManagedPolicy()
    assert m.on_estop(True) and m.estop_engaged
    assert m.reset_estop()[0] is False  # the signal is still true
    m.on_estop(False)
    assert m.configure(params(fallback="scripted"))[0] and m.activate()[0]
    assert m.core is not None and m.core.monitor.estop_latched  # latched into the new core
    m.on_joint_state(js(types, 0))
    start(m)
    m.tick(0)
    assert m.core.last is not None and m.core.last.flags & SafetyFlag.ESTOP
    m.deactivate(40 * MS)
    m.cleanup()
    assert m.estop_engaged and m.diagnostic(m.state_label).values["estop_latched"] is True
    assert m.reset_estop()[0] and not m.estop_engaged
    assert m.engage_estop()[0] and m.estop_engaged  # the service, unconfigured


def test_a_fault_is_reported_and_a_bad_input_topic_falls_back_to_the_default():
    m = ManagedPolicy()
    message = m.fault("tick", RuntimeError("boom"))
    assert "boom" in message and m.health.problems["fault"][0] == ERROR
    names = ManagedPolicy.input_topics({"joint_states_topic": "joint states", "estop_topic": "/plc/estop"}, m.health)
    assert names == {"joint_states_topic": "joint_states", "object_pose_topic": "object_pose", "estop_topic": "/plc/estop"}
    assert "not a valid topic name" in m.health.problems["joint_states_topic"][1]


# -- what the node publishes and logs (policy_node only hands these to rclpy) ----------------
def running(types: mc.MessageTypes, ticks: int = 2, **kw: Any) -> tuple[ManagedPolicy, list[Any]]:
    """An active scripted policy in an episode after ``ticks`` ticks, and each tick's output."""
    m = ManagedPolicy()
    assert m.configure(params(fallback="scripted", **kw))[0]
    m.on_joint_state(js(types, 0))
    assert m.activate()[0]
    start(m)
    outs = []
    for k in range(ticks):
        m.on_joint_state(js(types, k * 40 * MS))
        outs.append(m.tick(k * 40 * MS))
    return m, outs


def test_the_publishers_follow_the_command_interface_and_the_gripper_topic():
    assert ManagedPolicy().publications() == []  # unconfigured: nothing to publish on
    m = ManagedPolicy()
    assert m.configure(params(fallback="scripted"))[0]
    pubs = {p.key: p for p in m.publications()}
    assert (pubs["command"].type_name, pubs["command"].topic) == (mc.FLOAT64_MULTI_ARRAY, "forward_position_controller/commands")
    assert (pubs["gripper"].type_name, pubs["gripper"].topic) == (mc.FLOAT64_MULTI_ARRAY, "gripper_controller/commands")
    assert (pubs["step"].type_name, pubs["step"].topic, pubs["step"].qos.depth) == (mc.STEP, "her/step", 100)
    assert m.configure(params(fallback="scripted", command_interface="trajectory", gripper_topic="",
                              command_topic="arm/trajectory"))[0]
    assert [(p.key, p.type_name, p.topic) for p in m.publications()] == [
        ("command", mc.JOINT_TRAJECTORY, "arm/trajectory"), ("step", mc.STEP, "her/step")]


def test_a_tick_becomes_a_forward_command_the_gripper_opening_and_the_previous_step(types: mc.MessageTypes):
    m, outs = running(types)
    first, second = (m.messages(types, out) for out in outs)
    assert [k for k, _ in first] == ["command", "gripper"]  # a step is published one tick late
    assert [k for k, _ in second] == ["command", "gripper", "step"]
    command, gripper, step = (cdr_roundtrip(msg) for _, msg in second)
    np.testing.assert_allclose(command.data, outs[1].command)
    np.testing.assert_allclose(gripper.data, [outs[1].gripper_m])
    assert step.episode_id == 0 and step.step == 0
    np.testing.assert_allclose(step.action_applied, outs[1].steps[0].action_applied)
    assert ManagedPolicy().messages(types, outs[1]) == []  # no core: nothing goes out


def test_the_trajectory_interface_commands_one_point_in_one_control_period_and_no_gripper_without_a_topic(
        types: mc.MessageTypes):
    m, outs = running(types, command_interface="trajectory", gripper_topic="")
    pairs = m.messages(types, outs[1])
    assert [k for k, _ in pairs] == ["command", "step"]
    trajectory = cdr_roundtrip(pairs[0][1])
    assert list(trajectory.joint_names) == list(ARM_JOINTS) and len(trajectory.points) == 1
    np.testing.assert_allclose(trajectory.points[0].positions, outs[1].command)
    duration = trajectory.points[0].time_from_start
    assert duration.sec + duration.nanosec * 1e-9 == pytest.approx(0.04)  # the loop's 25 Hz period


def test_stopping_holds_once_at_the_measured_position_then_sends_nothing(types: mc.MessageTypes):
    m, _ = running(types)
    measured = HOME.copy()
    measured[0] += 0.1
    m.on_joint_state(js(types, 200 * MS, measured))
    messages, logs = m.stop_commanding(types, 200 * MS)
    assert [k for k, _ in messages] == ["command"] and m.state_label == "inactive"
    np.testing.assert_allclose(cdr_roundtrip(messages[0][1]).data, measured[:7])
    assert logs == [(OK, "inactive: holding at the measured position, no further command")]
    assert m.stop_commanding(types, 240 * MS) == ([], [])  # already inactive: no second hold, no log


def test_an_error_while_active_says_where_holds_and_ends_unconfigured(types: mc.MessageTypes):
    m, _ = running(types, command_interface="trajectory")
    assert m.transition_error("active") == (ERROR, "error while leaving active: back to unconfigured")
    messages, _ = m.stop_commanding(types, 80 * MS)
    hold = cdr_roundtrip(messages[0][1])
    assert messages[0][0] == "command" and list(hold.joint_names) == list(ARM_JOINTS)  # the configured interface
    m.cleanup()
    assert m.state_label == "unconfigured" and m.messages(types, m.tick(120 * MS)) == []


def test_the_estop_topic_logs_a_new_stop_once_and_the_services_answer_with_their_log_line():
    m = ManagedPolicy()
    assert m.estop_topic(True) == [(ERROR, "e-stop: holding the arm until ~/reset_estop")]
    assert m.estop_topic(True) == []  # already engaged: not logged again
    refused = m.reset_estop_service()
    assert not refused.success and refused.log == (WARN, refused.message) and "still true" in refused.message
    m.estop_topic(False)
    released = m.reset_estop_service()
    assert released == (True, "e-stop released", (OK, "e-stop released")) and not m.estop_engaged
    engaged = m.estop_service()
    assert engaged.success and m.estop_engaged and engaged.log == (ERROR, f"e-stop: {engaged.message}")


def test_an_episode_event_message_reaches_the_core_only_when_configured(types: mc.MessageTypes):
    msg = cdr_roundtrip(mc.episode_event_msg(types, mc.EventData(0, 3, "reach", "ee_position", GOAL, 0, False, "auto", 0)))
    m = ManagedPolicy()
    m.on_episode_event(msg)  # unconfigured: dropped, no error
    assert m.configure(params(fallback="scripted"))[0]
    m.on_episode_event(msg)
    assert m.core is not None and m.core.episode is not None and m.core.episode.episode_id == 3


@pytest.mark.parametrize(("values", "period_s"), [({"diagnostics_rate_hz": 4.0}, 0.25),
                                                  ({"diagnostics_rate_hz": 0.01}, 10.0),
                                                  ({"diagnostics_rate_hz": "fast"}, 0.5), ({}, 0.5)])
def test_the_diagnostics_period_comes_from_the_rate_parameter(values: dict[str, Any], period_s: float):
    assert ManagedPolicy.diagnostics_period_s(values) == pytest.approx(period_s)
