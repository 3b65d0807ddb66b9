"""The four node cores wired as sim.launch.py wires the nodes, without ROS.

Every message crosses a CDR round trip (as on the wire), time is the bridge's clock,
the policy ticks at 25 Hz on the 100 Hz bridge. What the launch tests check for real
is checked here on every machine: goals flow, episodes land in a valid bag, e-stop halts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ros_testlib import cdr_roundtrip

from her_goals.errors import StateError
from her_goals.goals_core import GoalsConfig, GoalsCore
from her_goals.rosglue import frames
from her_goals.rosglue import msgconv as mc
from her_mujoco.bridge_core import BridgeConfig, BridgeCore
from her_policy.deploy.policy_core import PolicyConfig, PolicyCore
from her_recorder import read_episodes
from her_recorder.interfaces import typestore
from her_recorder.recorder_core import RecorderConfig, RecorderCore


class Graph:
    """Routes the topics between the cores like the launch file's graph."""

    def __init__(self, types: mc.MessageTypes, bag_dir: Path, task: str = "reach", **bridge: Any) -> None:
        self.types = types
        self.bridge = BridgeCore(BridgeConfig(task=task, **bridge))
        # tf2 stands in as the bridge's static transforms (what it puts on /tf_static)
        statics = {(t.parent, t.child): t for t in self.bridge.static_transforms()}

        def lookup(target: str, source: str, stamp_ns: int) -> frames.Transform:
            if (target, source) not in statics:
                raise StateError(f"no transform {target} <- {source}")
            return statics[target, source]._replace(stamp_ns=stamp_ns)  # static: valid at any stamp

        self.lookup = lookup
        self.goals = GoalsCore(GoalsConfig(task=task, start_delay_s=0.2))
        self.policy = PolicyCore(PolicyConfig(task=task, fallback="scripted"))
        self.recorder = RecorderCore(RecorderConfig(task=task, bag_dir=str(bag_dir), queue_size=0, fsync=False))
        self.recorder.open()
        self.events: list[mc.EventData] = []
        self.steps: list[mc.StepData] = []
        self.commands: list[np.ndarray] = []
        self.states: list[np.ndarray] = []

    def publish_event(self, event: Any) -> None:
        if event is None:
            return
        data = mc.episode_event_data(cdr_roundtrip(mc.episode_event_msg(self.types, self.goals.event_data(event))))
        self.events.append(data)
        now = self.bridge.clock_ns
        if data.event == 0:
            self.bridge.reset(desired_goal=data.desired_goal)  # goals_node calls /bridge_node/reset first
        self.policy.on_event(data)
        self.recorder.on_event(data, now)

    def run(self, seconds: float, estop_at: float | None = None) -> None:
        store = typestore()
        for i in range(round(seconds * 100)):
            now = self.bridge.clock_ns
            if estop_at is not None and abs(now * 1e-9 - estop_at) < 0.005:
                self.policy.on_estop(True)
            for m in self.bridge.step():
                js = cdr_roundtrip(mc.joint_state_msg(self.types, m.names, m.position, m.velocity, m.effort, m.stamp_ns))
                pose = cdr_roundtrip(mc.pose_stamped_msg(self.types, *self.bridge.published_pose(m.object_pose)[:1],
                                                         m.stamp_ns, self.bridge.object_frame))
                for core in (self.goals, self.policy):
                    core.on_joint_state(js)
                    core.on_object_pose(pose, self.lookup)
                self.recorder.on_raw("/joint_states", js.__msgtype__, store.serialize_cdr(js, js.__msgtype__), m.stamp_ns)
                self.states.append(m.position[:7].copy())
            now = self.bridge.clock_ns
            if i % 4 == 0:  # 25 Hz
                event, goal = self.goals.tick(now)
                self.publish_event(event)
                if goal is not None:
                    self.publish_event(self.goals.start(goal, now, "auto"))
                out = self.policy.tick(now)
                if out.command is not None:
                    cmd = mc.float64_multi_array_values(cdr_roundtrip(mc.float64_multi_array_msg(self.types, out.command)))
                    self.bridge.command(cmd)
                    self.commands.append(cmd)
                if out.gripper_m is not None:
                    self.bridge.gripper([out.gripper_m])
                for s in out.steps:
                    data = mc.step_data(cdr_roundtrip(mc.step_msg(self.types, s)))
                    self.steps.append(data)
                    self.recorder.on_step(data, now)
                    self.publish_event(self.goals.on_step(data, now))
            self.recorder.tick(now)


def test_episodes_flow_into_a_valid_bag(types: mc.MessageTypes, tmp_path: Path):
    g = Graph(types, tmp_path / "bags")
    g.run(5.0)
    kinds = [(e.event, e.reason) for e in g.events]
    assert kinds[:2] == [(0, "auto"), (1, "success")]  # the scripted reach succeeds
    assert g.events[1].num_steps == 50
    g.recorder.close()
    result = read_episodes(tmp_path / "bags", log_summary=False)
    assert not result.report.errors() and len(result.episodes) == 2
    for ep in result.episodes:
        assert len(ep) == 50 and ep.success and ep.truncated[-1] and not ep.truncated[:-1].any()
    assert not any(g.policy.health.problems) and not any(g.goals.health.problems)


def test_estop_holds_the_arm_and_aborts_the_episode(types: mc.MessageTypes, tmp_path: Path):
    g = Graph(types, tmp_path / "bags")
    g.run(3.0, estop_at=1.0)
    assert (2, "estop") in [(e.event, e.reason) for e in g.events]
    assert g.steps[-1].safety_flags & 128
    late = np.stack(g.states[-100:])  # the last second: nothing moves
    assert np.ptp(late, axis=0).max() < 1e-3
    assert g.policy.monitor.estop_latched and g.goals.auto_paused
    g.recorder.close()
    result = read_episodes(tmp_path / "bags", log_summary=False)
    assert result.report.left_out["aborted"] == 1


def test_bags_from_the_nodes_audit_with_the_tasks_region(types: mc.MessageTypes, tmp_path: Path):
    from her_recorder.audit import run_audit

    g = Graph(types, tmp_path / "bags")
    g.run(2.5)
    g.recorder.close()
    report = run_audit([tmp_path / "bags"], out_dir=tmp_path / "audit", plots=False)
    text = (tmp_path / "audit" / "report.md").read_text()
    assert "bag config" in text  # the region came from the bag, not from the desired goals
    assert report is not None


def test_a_push_with_the_object_seen_by_a_camera_goes_through_the_transform(types: mc.MessageTypes, tmp_path: Path):
    """The bridge publishes the object pose in a camera frame (its pose on /tf_static); goals and
    policy transform it to base_link and the scripted push succeeds as with base_link poses."""
    g = Graph(types, tmp_path / "bags", task="push", object_frame="camera")
    assert g.bridge.static_transforms()[0].child == "camera"
    g.run(6.0)
    ends = [e for e in g.events if e.event == 1]
    assert ends and ends[0].num_steps == 50 and any(e.success for e in ends)
    assert not any(g.policy.health.problems) and not any(g.goals.health.problems)
