"""Two complete stacks (bridge, goals, policy, recorder) side by side in one graph, under arm1/ and arm2/.

arm1 reaches; arm2 pushes with the object seen by a simulated camera (its pose in the camera
frame, the camera on arm2's own tf_static), so arm2's goals and policy go through tf2.
Nothing leaks into the root namespace or the other arm; an e-stop of one arm stops that arm.

Skipped without rclpy/launch_pytest or without the built workspace.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_cli import bringup_share

SHARE = bringup_share(launch_tests=True)
import launch  # noqa: E402
import launch_pytest  # noqa: E402
import rclpy  # noqa: E402
from launch.actions import GroupAction, IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from ros_probe_node import RELIABLE, start_probe  # noqa: E402

START, END, ABORT, ESTOP = 0, 1, 2, 128
ARMS = {"arm1": {"task": "reach"}, "arm2": {"task": "push", "object_frame": "camera"}}


@pytest.fixture(scope="module")
def bag_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleet")


@launch_pytest.fixture(scope="module")
def two_arms(bag_root: Path) -> Any:
    source = str(SHARE / "launch" / "sim.launch.py")
    stacks = [
        GroupAction([IncludeLaunchDescription(PythonLaunchDescriptionSource(source), launch_arguments={
            "namespace": ns, "bag_dir": str(bag_root / ns), "fallback": "scripted", **args}.items())], scoped=True)
        for ns, args in ARMS.items()
    ]
    return launch.LaunchDescription([*stacks, launch_pytest.actions.ReadyToTest()])


@pytest.fixture(scope="module")
def probe() -> Any:
    from her_interfaces.msg import EpisodeEvent, Goal, Step
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import JointState

    node = start_probe()
    for ns in ARMS:
        node.listen(f"/{ns}/her/episode", EpisodeEvent, RELIABLE)
        node.listen(f"/{ns}/her/step", Step, RELIABLE)
        node.listen(f"/{ns}/her/achieved_goal", Goal, RELIABLE)
        node.listen(f"/{ns}/joint_states", JointState, qos_profile_sensor_data)
    yield node
    node.close()
    rclpy.try_shutdown()


@pytest.mark.launch(fixture=two_arms)
def test_two_stacks_run_side_by_side_in_their_namespaces(probe: Any, bag_root: Path):
    for ns in ARMS:
        start = probe.wait_for(f"/{ns}/her/episode", lambda m: m.event == START, timeout=90)
        probe.wait_for(f"/{ns}/her/step", lambda m, e=start.episode_id: m.episode_id == e, timeout=30)
        for pkg in ("her_goals", "her_policy", "her_recorder", "her_mujoco"):
            probe.wait_for("/diagnostics", lambda m, n=f"{pkg}: /{ns}/": m.status[0].name.startswith(n)
                           and m.status[0].level in (b"\x00", b"\x01"), timeout=30)
    push = probe.wait_for("/arm2/her/episode", lambda m: m.event == START)
    assert push.goal_space == "object_position"
    # arm2's object is published in its camera frame; goals_node measures it in base_link through tf2
    achieved = probe.wait_for("/arm2/her/achieved_goal", lambda m: m.episode_id == push.episode_id)
    assert achieved.header.frame_id == "base_link" and abs(achieved.value[2] - 0.025) < 0.01
    assert not probe.messages("/her/episode") and not probe.messages("/her/step")  # nothing in the root
    for ns in ARMS:
        probe.wait_for(f"/{ns}/her/episode", lambda m: m.event == END, timeout=90)
    yield  # after the launch: each arm's recorder closed its own bag
    from her_recorder import read_episodes

    for ns, args in ARMS.items():
        result = read_episodes(bag_root / ns, log_summary=False)
        assert result.episodes and not result.report.errors()
        assert result.episodes[0].goal_space.name == ("ee_position" if args["task"] == "reach" else "object_position")


@pytest.mark.launch(fixture=two_arms)
def test_an_estop_of_one_arm_stops_that_arm_only(probe: Any):
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    for ns in ARMS:
        probe.wait_for(f"/{ns}/her/step", timeout=90)
    pub = probe.create_publisher(Bool, "/arm1/her/estop", 10)  # as `ros2 topic pub` would
    deadline = time.monotonic() + 10
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    pub.publish(Bool(data=True))
    abort = probe.wait_for("/arm1/her/episode", lambda m: m.event == ABORT and m.reason == "estop", since=t0,
                           timeout=15)
    assert abort is not None
    time.sleep(1.0)
    t1 = time.monotonic()
    time.sleep(2.0)
    assert not probe.messages("/arm1/her/step", since=t1)  # arm1 holds
    states = [np.array(m.position[:7]) for m in probe.messages("/arm1/joint_states", since=t1)]
    assert states and np.ptp(np.stack(states), axis=0).max() < 2e-3
    assert probe.messages("/arm2/her/step", since=t1) or probe.messages("/arm2/her/episode", since=t1)  # arm2 runs on
    pub.publish(Bool(data=False))
    time.sleep(0.5)
    assert probe.call(Trigger, "/arm1/policy_node/reset_estop", Trigger.Request()).success
