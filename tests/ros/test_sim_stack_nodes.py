"""The sim stack for real: sim.launch.py comes up, goals flow, episodes land in a bag, e-stop halts.

Skipped without rclpy/launch_pytest or without the built her_policy package on the ament index.
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
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from ros_probe_node import lifecycle, start_probe  # noqa: E402

from her_goals.tasks import TASKS  # noqa: E402

ESTOP, START, END, ABORT = 128, 0, 1, 2


@pytest.fixture(scope="module")
def bag_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim") / "bags"


@launch_pytest.fixture(scope="module")
def sim_stack(bag_dir: Path) -> Any:
    source = PythonLaunchDescriptionSource(str(SHARE / "launch" / "sim.launch.py"))
    args = {"task": "reach", "bag_dir": str(bag_dir), "fallback": "scripted"}
    return launch.LaunchDescription(
        [IncludeLaunchDescription(source, launch_arguments=args.items()), launch_pytest.actions.ReadyToTest()]
    )


@pytest.fixture(scope="module")
def probe() -> Any:
    node = start_probe()
    yield node
    node.close()
    rclpy.try_shutdown()


@pytest.mark.launch(fixture=sim_stack)
def test_goals_flow(probe: Any):
    start = probe.wait_for("/her/episode", lambda m: m.event == START, timeout=60)
    desired = probe.wait_for("/her/desired_goal", lambda m: m.episode_id == start.episode_id)
    assert desired.goal_space == "ee_position" and desired.header.frame_id == "base_link"
    assert list(desired.value) == list(start.desired_goal)
    assert bool(TASKS["reach"].goal_region.contains(np.array(desired.value)))
    achieved = probe.wait_for("/her/achieved_goal", lambda m: m.episode_id == start.episode_id)
    assert len(achieved.value) == 3 and achieved.header.frame_id == "base_link"
    step = probe.wait_for("/her/step", lambda m: m.episode_id == start.episode_id)
    assert len(step.observation) == 8 and len(step.action_raw) == 4
    for node in ("her_goals", "her_policy", "her_recorder", "her_mujoco"):
        # The first diagnostic of a node may be the startup STALE one (no state yet): wait until
        # each node reports OK or WARN, and say what it last reported if it never does.
        try:
            probe.wait_for("/diagnostics", lambda m, n=node: m.status[0].name.startswith(n)
                           and m.status[0].level in (b"\x00", b"\x01"), timeout=30)
        except AssertionError:
            last = [m.status[0] for m in probe.messages("/diagnostics") if m.status[0].name.startswith(node)]
            raise AssertionError(f"{node} never healthy; last: {last[-1] if last else None}") from None


@pytest.mark.launch(fixture=sim_stack)
def test_an_episode_ends_and_is_recorded(probe: Any, bag_dir: Path):
    end = probe.wait_for("/her/episode", lambda m: m.event == END, timeout=60)
    assert end.num_steps == 50 and end.reason in ("success", "time_limit")
    steps = [s for s in probe.messages("/her/step") if s.episode_id == end.episode_id]
    assert [s.step for s in steps] == list(range(50)) and steps[-1].truncated
    yield  # after the launch shut down: the recorder closed its bag on SIGINT
    from her_recorder import read_episodes

    assert (bag_dir / "bag_0000" / "metadata.yaml").is_file()
    result = read_episodes(bag_dir, log_summary=False)
    assert len(result.episodes) >= 1 and not result.report.errors()
    first = result.episodes[0]
    assert len(first) == 50 and first.truncated[-1] and first.end_reason in ("success", "time_limit")
    recorded_goals = [tuple(e.desired_goal[0]) for e in result.episodes]
    assert tuple(end.desired_goal) in recorded_goals  # the episode we watched is in the bag


@pytest.mark.launch(fixture=sim_stack)
def test_estop_halts_the_policy(probe: Any):
    from her_interfaces.srv import StartEpisode
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    probe.wait_for("/her/step", timeout=60)
    t0 = time.monotonic()
    probe.estop_pub.publish(Bool(data=True))
    stop_step = probe.wait_for("/her/step", lambda m: m.safety_flags & ESTOP, since=t0, timeout=10)
    abort = probe.wait_for("/her/episode", lambda m: m.event == ABORT and m.reason == "estop", since=t0)
    assert abort.episode_id == stop_step.episode_id
    time.sleep(1.0)  # the arm is held: joint positions stop changing
    t1 = time.monotonic()
    time.sleep(1.0)
    states = [np.array(m.position[:7]) for m in probe.messages("/joint_states", since=t1)]
    assert len(states) > 20 and np.ptp(np.stack(states), axis=0).max() < 2e-3
    commands = [np.array(m.data) for m in probe.messages("/forward_position_controller/commands", since=t1)]
    assert commands and all(np.allclose(c, states[-1], atol=5e-3) for c in commands)  # holds = measured
    assert not [s for s in probe.messages("/her/step", since=t1)]  # no episode runs under e-stop
    refused = probe.call(Trigger, "/policy_node/reset_estop", Trigger.Request())
    assert not refused.success and "still true" in refused.message
    probe.estop_pub.publish(Bool(data=False))
    time.sleep(0.5)
    assert probe.call(Trigger, "/policy_node/reset_estop", Trigger.Request()).success
    t2 = time.monotonic()
    started = probe.call(StartEpisode, "/goals_node/start_episode", StartEpisode.Request(split="heldout"))
    assert started.success, started.message
    step = probe.wait_for("/her/step", lambda m: m.episode_id == started.episode_id, since=t2, timeout=15)
    assert not step.safety_flags & ESTOP


@pytest.mark.launch(fixture=sim_stack)
def test_ros2_lifecycle_deactivate_holds_and_activate_resumes(probe: Any):
    """The launch configured and activated policy_node (autostart); `ros2 lifecycle` drives it."""
    import shutil

    from ros_cli import run

    ros2 = shutil.which("ros2")
    assert ros2
    got = run([ros2, "lifecycle", "get", "/policy_node"], timeout=60)
    assert got.stdout.startswith("active"), got.stdout
    t0 = time.monotonic()
    step = probe.wait_for("/her/step", lambda m: m.step < 10, since=t0, timeout=60)  # an episode has just begun
    t1 = time.monotonic()
    # deactivate through the lifecycle service (what `ros2 lifecycle set` calls) while it runs
    assert lifecycle(probe, "/policy_node", "deactivate")
    abort = probe.wait_for("/her/episode", lambda m: m.event == ABORT, since=t1, timeout=15)
    assert abort.episode_id == step.episode_id and "policy_node stopped listening" in abort.reason
    time.sleep(1.0)
    t2 = time.monotonic()
    time.sleep(1.5)
    assert not probe.messages("/forward_position_controller/commands", since=t2)  # inactive: silent
    assert not probe.messages("/her/step", since=t2)
    held = [np.array(m.data) for m in probe.messages("/forward_position_controller/commands", since=t1)][-1]
    states = [np.array(m.position[:7]) for m in probe.messages("/joint_states", since=t2)]
    assert states and np.allclose(held, states[-1], atol=5e-3)  # the last command held the measured position
    assert run([ros2, "lifecycle", "get", "/policy_node"], timeout=60).stdout.startswith("inactive")
    t3 = time.monotonic()
    done = run([ros2, "lifecycle", "set", "/policy_node", "activate"], timeout=60)
    assert "Transitioning successful" in done.stdout, done.stdout
    start = probe.wait_for("/her/episode", lambda m: m.event == START, since=t3, timeout=30)
    probe.wait_for("/her/step", lambda m: m.episode_id == start.episode_id, since=t3, timeout=15)
