"""One episode stepper, two drivers: ControlLoop (her demo, her sim) and PolicyCore (policy_node)
run the same episode the same way, step for step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip

from her_goals.extractors import RobotState
from her_goals.robot.arm_config import ARM_JOINTS, GRIPPER_JOINTS, HOME_QPOS_RAD
from her_goals.rosglue import msgconv as mc
from her_policy.deploy.loop import ControlLoop
from her_policy.deploy.pipeline import pipeline_for
from her_policy.deploy.policy_core import PolicyConfig, PolicyCore
from her_policy.deploy.safety import SafetyDecision
from her_policy.deploy.sinks import ListSink
from her_policy.deploy.stepper import EpisodeStepper

MS = 1_000_000
NAMES = ARM_JOINTS + GRIPPER_JOINTS
HOME = np.array([*HOME_QPOS_RAD, 0.04, 0.04])


def actor(observation: Any, goal: Any) -> Any:
    return np.array([0.4, -0.3, -0.2, 0.5])


@pytest.mark.parametrize(("goal", "refused"), [((0.55, 0.05, 0.25), False), ((2.0, 0.0, 0.2), True)])
def test_the_loop_and_the_node_drive_one_stepper_to_the_same_steps(types: mc.MessageTypes, tmp_path: Path,
                                                                   goal: Any, refused: bool):
    cfg = tmp_path / "safety.yaml"
    cfg.write_text("loop:\n  max_ticks_per_episode: 4\n")
    core = PolicyCore(PolicyConfig(task="reach", safety_config=str(cfg)), actor=actor)
    assert isinstance(core.stepper, EpisodeStepper)
    desired = np.asarray(goal)

    # The node: a state message, then a tick, every 40 ms; a perfect position controller.
    q = HOME.copy()
    core.on_event(mc.EventData(0, 0, "reach", "ee_position", desired, 0, False, "auto", 0))
    node_steps = []
    for k in range(6):
        core.on_joint_state(cdr_roundtrip(mc.joint_state_msg(types, NAMES, q, np.zeros(9), [], k * 40 * MS)))
        out = core.tick(k * 40 * MS)
        if out.command is not None and k < 4:
            q[:7] = out.command
        node_steps += out.steps

    # The loop: the same rig, settings and actor, the same plant.
    plant = {"q": HOME.copy(), "t": 0}

    def send(d: SafetyDecision) -> None:
        if d.command is not None:
            plant["q"][:7] = d.command
        plant["t"] += 40 * MS

    sink = ListSink()
    loop = ControlLoop(
        pipeline_for(core.rig, core.stack, actor), core.stack.loop,
        read_state=lambda: RobotState(NAMES, plant["q"].copy(), np.zeros(9), stamp_ns=plant["t"]),
        send_command=send, now_ns=lambda: plant["t"], sink=sink, goal_space=core.space, realtime=False,
    )  # fmt: skip
    result = loop.run_episode(desired)
    assert isinstance(loop.stepper, EpisodeStepper) and result.refused == refused
    loop_steps = sink.steps

    assert len(node_steps) == len(loop_steps) == (1 if refused else 4)
    for n, s in zip(node_steps, loop_steps):
        for name in ("observation", "next_observation", "action_applied", "achieved_goal", "next_achieved_goal"):
            np.testing.assert_array_equal(getattr(n, name), getattr(s, name), err_msg=name)
        np.testing.assert_array_equal(n.action_raw, s.action_raw)
        assert (n.safety_flags, n.truncated, n.stamp_ns) == (s.safety_flags, s.truncated, s.stamp_ns)
        # The reward is the goal space's, on both paths (ARCHITECTURE.md, rule 2).
        assert n.reward == float(core.space.compute_reward(s.next_achieved_goal, desired))
    assert [s.truncated for s in node_steps] == [False] * (len(node_steps) - 1) + [True]
