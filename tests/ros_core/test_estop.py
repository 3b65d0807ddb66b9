"""The software e-stop cannot be missed: every likely publisher QoS matches, the service engages it.

The launch tests (tests/ros/test_estop_nodes.py) publish for real; here the matching rule
and the core's behaviour are checked on every machine.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip

from her_goals.robot.arm_config import ARM_JOINTS, GRIPPER_JOINTS, HOME_QPOS_RAD
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import qos
from her_goals.safety_flags import SafetyFlag
from her_policy.deploy.policy_core import PolicyConfig, PolicyCore

MS = 1_000_000
NAMES = ARM_JOINTS + GRIPPER_JOINTS
HOME = np.array([*HOME_QPOS_RAD, 0.04, 0.04])
PUBLISHERS = [qos.QosSpec(depth=1, reliable=r, latched=t) for r, t in itertools.product((True, False), repeat=2)]


def test_the_matching_rule_is_ddss_request_versus_offered():
    volatile = qos.QosSpec(depth=10)
    latched = qos.QosSpec(depth=10, latched=True)
    best_effort = qos.QosSpec(depth=10, reliable=False)
    assert not qos.compatible(volatile, latched)  # the README's `ros2 topic pub` vs the old subscription
    assert qos.compatible(latched, volatile) and qos.compatible(volatile, best_effort)
    assert not qos.compatible(best_effort, volatile)


@pytest.mark.parametrize("offered", PUBLISHERS, ids=lambda s: f"reliable={s.reliable}-latched={s.latched}")
def test_every_publisher_qos_engages_the_estop(offered: qos.QosSpec):
    matched = [sub for sub in qos.ESTOP_SUBSCRIPTIONS if qos.compatible(offered, sub)]
    assert matched, f"no e-stop subscription matches a publisher offering {offered}"
    if offered.reliable:  # never downgraded to best effort when the publisher offers reliable
        assert any(sub.reliable for sub in matched)
    if offered.latched and offered.reliable:  # a stop latched before the node started is delivered
        assert any(sub.latched for sub in matched)


def js(types: mc.MessageTypes, stamp: int) -> Any:
    return cdr_roundtrip(mc.joint_state_msg(types, NAMES, HOME, np.zeros(len(NAMES)), [], stamp))


def test_the_estop_service_holds_aborts_and_releases_without_a_signal(types: mc.MessageTypes):
    core = PolicyCore(PolicyConfig(task="reach", fallback="scripted"))
    core.on_event(mc.EventData(0, 0, "reach", "ee_position", np.array([0.55, 0.05, 0.25]), 0, False, "auto", 0))
    core.on_joint_state(js(types, 0))
    assert not core.tick(0).steps
    ok, message = core.engage_estop()
    assert ok and "~/reset_estop" in message and core.monitor.estop_latched
    core.on_joint_state(js(types, 40 * MS))
    out = core.tick(40 * MS)
    assert core.last is not None and core.last.hold and core.last.flags & SafetyFlag.ESTOP
    np.testing.assert_allclose(out.command, HOME[:7])
    core.on_joint_state(js(types, 80 * MS))
    out = core.tick(80 * MS)
    assert out.steps[-1].safety_flags & SafetyFlag.ESTOP  # the goals node turns it into ABORT estop
    assert core.tick(120 * MS).command is not None  # still holding between episodes
    ok, _ = core.reset_estop()  # no topic signal is active: the latch releases
    assert ok and not core.monitor.estop_latched
    assert core.tick(160 * MS).command is None
