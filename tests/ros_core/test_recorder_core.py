"""recorder_node's core: events and steps from topics into bags, whatever order they arrive in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_testlib import cdr_roundtrip

from her_goals import get_goal_space
from her_goals.errors import ConfigError
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue.params import config_from_parameters
from her_recorder import read_episodes
from her_recorder.recorder_core import RecorderConfig, RecorderCore

SPACE = get_goal_space("ee_position")
GOAL = np.array([0.5, 0.0, 0.2])
S = 1_000_000_000


def event(kind: int, episode: int, num_steps: int = 0, *, success: bool = False, reason: str = "",
          t: int = 0, space: str = "ee_position") -> mc.EventData:
    return mc.EventData(kind, episode, "reach", space, GOAL, num_steps, success, reason, t, "base_link")


def steps(episode: int, n: int, t0: int = S) -> list[mc.StepData]:
    out = []
    path = [np.array([0.3 + 0.01 * k, 0.0, 0.2]) for k in range(n + 1)]  # never within 5 cm of GOAL
    for i in range(n):
        ag, nag = path[i], path[i + 1]
        success = bool(SPACE.is_success(nag, GOAL))
        out.append(mc.StepData(episode, i, np.r_[ag, np.zeros(5)], np.r_[nag, np.zeros(5)], np.zeros(4),
                               np.zeros(4), ag, nag, GOAL, float(success) - 1.0, False, i == n - 1, success,
                               0, 0.0, (), t0 + i * 40_000_000, "base_link"))
    return out


def core(tmp_path: Path, **kw: Any) -> RecorderCore:
    c = RecorderCore(RecorderConfig(bag_dir=str(tmp_path / "bags"), queue_size=0, fsync=False, **kw))
    c.open()
    return c


def finish(c: RecorderCore, tmp_path: Path) -> Any:
    c.close()
    return read_episodes(tmp_path / "bags", log_summary=False)


def test_an_episode_through_cdr_is_a_valid_bag_episode(tmp_path: Path, types: mc.MessageTypes):
    c = core(tmp_path)
    c.on_event(mc.episode_event_data(cdr_roundtrip(mc.episode_event_msg(types, event(0, 7, t=S)))), S)
    for s in steps(7, 10):
        c.on_step(mc.step_data(cdr_roundtrip(mc.step_msg(types, s))), 2 * S)
    c.on_raw("/joint_states", "sensor_msgs/msg/JointState",
             bytes(types_serialize(mc.joint_state_msg(types, ["a"], [0.1], [], [], S))), S)
    last = steps(7, 10)[-1]
    c.on_event(event(1, 7, 10, success=last.is_success, reason="time_limit", t=3 * S), 3 * S)
    assert c.recorded == 1 and c.ros_episode is None
    result = finish(c, tmp_path)
    (ep,) = result.episodes
    assert len(ep) == 10 and ep.truncated[-1] and not result.report.errors()
    np.testing.assert_array_equal(ep.desired_goal[0], GOAL)


def types_serialize(msg: Any) -> bytes:
    from her_recorder.interfaces import typestore

    return typestore().serialize_cdr(msg, msg.__msgtype__)


def test_end_waits_for_steps_still_in_flight(tmp_path: Path):
    c = core(tmp_path, end_grace_s=1.0)
    c.on_event(event(0, 0), 0)
    batch = steps(0, 5)
    for s in batch[:3]:
        c.on_step(s, S)
    c.on_event(event(1, 0, 5, reason="time_limit", t=2 * S), 2 * S)
    assert c.ros_episode == 0  # waiting for steps 3 and 4
    for s in batch[3:]:
        c.on_step(s, 2 * S)
    assert c.ros_episode is None and c.recorded == 1
    (ep,) = finish(c, tmp_path).episodes
    assert len(ep) == 5


def test_end_after_the_grace_period_records_what_arrived(tmp_path: Path):
    c = core(tmp_path, end_grace_s=0.5)
    c.on_event(event(0, 0), 0)
    for s in steps(0, 3):
        c.on_step(s, S)
    c.on_event(event(1, 0, 5, reason="time_limit", t=S), S)
    c.tick(S + 400_000_000)
    assert c.ros_episode == 0
    c.tick(S + 600_000_000)
    assert c.ros_episode is None and "2 step(s) missing" in c.health.problems["missing"][1]
    c.close()


def test_steps_before_their_start_are_kept_and_others_dropped(tmp_path: Path):
    c = core(tmp_path)
    early = steps(4, 3)
    stale = steps(3, 2)
    for s in stale + early:
        c.on_step(s, 0)
    c.on_event(event(0, 4), S)
    assert c.health.counters["dropped_steps"] == 2
    c.on_event(event(1, 4, 3, reason="time_limit", t=2 * S), 2 * S)
    (ep,) = finish(c, tmp_path).episodes
    assert len(ep) == 3


def test_pause_resume_discard(tmp_path: Path):
    c = core(tmp_path)
    c.on_event(event(0, 0), 0)
    c.on_step(steps(0, 1)[0], S)
    assert c.pause()[0] and not c.pause()[0]
    c.on_event(event(0, 1), S)  # not recorded while paused
    assert c.ros_episode is None and c.health.counters["episodes_not_recorded"] == 1
    assert c.resume()[0] and not c.resume()[0]
    c.on_event(event(0, 2), 2 * S)
    ok, message = c.discard()
    assert ok and "discarded" in message
    assert not c.discard()[0]
    result = finish(c, tmp_path)
    assert result.episodes == [] and result.report.left_out["aborted"] == 1
    assert result.report.left_out["discarded"] == 1


def test_close_aborts_the_open_episode_cleanly(tmp_path: Path):
    c = core(tmp_path)
    c.on_event(event(0, 0), 0)
    for s in steps(0, 2):
        c.on_step(s, S)
    c.close()
    c.close()  # idempotent (SIGINT then SIGTERM)
    assert (tmp_path / "bags" / "bag_0000" / "metadata.yaml").is_file()
    result = read_episodes(tmp_path / "bags", log_summary=False)
    assert result.report.left_out["aborted"] == 1


def test_episode_in_another_goal_space_is_not_recorded(tmp_path: Path):
    c = core(tmp_path)
    c.on_event(event(0, 0, space="object_position"), 0)
    assert c.ros_episode is None and "not recorded" in c.health.problems["goal_space"][1]
    c.close()


def test_resume_continues_a_session_with_new_ids(tmp_path: Path):
    for _ in range(2):
        c = core(tmp_path)
        c.on_event(event(0, 0), 0)  # the goals node restarted too: its ids start at 0 again
        for s in steps(0, 2):
            c.on_step(s, S)
        c.on_event(event(1, 0, 2, reason="time_limit", t=S), S)
        c.close()
    result = read_episodes(tmp_path / "bags", log_summary=False)
    assert sorted(e.episode_id for e in result.episodes) == [0, 1]


def test_config_checks():
    with pytest.raises(ConfigError):
        RecorderConfig(bag_dir="")
    with pytest.raises(ConfigError, match="no known goal space"):
        RecorderCore(RecorderConfig(task="door"))


def test_every_written_episode_is_announced_and_num_episodes_ends_the_recording(tmp_path: Path):
    lines: list[str] = []
    c = core(tmp_path, num_episodes=3, end_grace_s=1.0)
    c.on_written = lines.append
    c.on_event(event(0, 1, t=S), S)  # END that waits for its steps: written later, from tick()
    c.on_event(event(1, 1, 4, reason="time_limit", t=2 * S), 2 * S)
    assert not lines
    for s in steps(1, 4):
        c.on_step(s, 2 * S)
    assert len(lines) == 1 and "episode 0 written (END time_limit, 4 steps" in lines[0]
    c.on_event(event(0, 2, t=3 * S), 3 * S)  # END whose steps never come: written after the grace
    c.on_event(event(1, 2, 5, reason="time_limit", t=4 * S), 4 * S)
    c.tick(int(4.5 * S))
    assert len(lines) == 1
    c.tick(6 * S)
    assert len(lines) == 2 and "END time_limit, 0 steps" in lines[1] and not c.done
    c.on_event(event(0, 3, t=7 * S), 7 * S)
    c.on_event(event(0, 4, t=8 * S), 8 * S)  # a START supersedes: episode 3 is aborted
    assert len(lines) == 3 and "ABORT" in lines[2] and "3 of 3" in lines[2] and c.done
    assert c.ros_episode is None  # done: episode 4 is not recorded
    assert c.health.counters["episodes_not_recorded"] == 1
    result = finish(c, tmp_path)
    assert len(result.episodes) == 1


def test_a_robot_evaluation_carries_the_demos_provenance(tmp_path: Path, types: mc.MessageTypes):
    """goals node -> recorder node, the ROS way: the bags hold the plan the parameters give, each
    START its split and stream index, each Step its policy; the audit verifies them as it
    verifies her demo's bags."""
    from her_goals.goals_core import GoalsConfig, GoalsCore
    from her_recorder.audit import run_audit

    goals = GoalsCore(GoalsConfig(task="reach", split="heldout", seed=5, num_episodes=3, max_steps=5))
    c = core(tmp_path, split="heldout", goal_seed=5, num_episodes=3, fallback="scripted")
    assert c.plan is not None and c.plan.same_as(goals.plan(policy="scripted"))
    t = S
    for _ in range(3):
        goal = goals.choose_goal()
        start = goals.event_data(goals.start(goal, t, "auto"))
        c.on_event(mc.episode_event_data(cdr_roundtrip(mc.episode_event_msg(types, start))), t)
        path = [goal + np.array([0.21 - 0.04 * k, 0.0, 0.0]) for k in range(6)]  # ends 1 cm short
        for i in range(5):
            ok = bool(SPACE.is_success(path[i + 1], goal))
            s = mc.StepData(start.episode_id, i, np.r_[path[i], np.zeros(5)], np.r_[path[i + 1], np.zeros(5)],
                            np.zeros(4), np.zeros(4), path[i], path[i + 1], goal, float(ok) - 1.0, False, i == 4,
                            ok, 0, 0.0, (), t + (i + 1) * 40_000_000, "base_link", policy="scripted")
            c.on_step(mc.step_data(cdr_roundtrip(mc.step_msg(types, s))), t)
        end = goals.on_step(s, t + S // 2)
        assert end is not None and end.kind == 1 and end.success
        c.on_event(goals.event_data(end), t + S // 2)
        t += S
    c.close()
    report = run_audit([tmp_path / "bags"], out_dir=tmp_path / "audit", plots=False)
    assert report.verdict == "verified", [f.line() for f in report.findings]
    headline = report.evaluation["headline"]
    assert (headline.successes, headline.n) == (3, 3)


def test_a_full_disk_stops_the_recording_with_an_error_on_diagnostics_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lowest write (the MCAP file's) fails with ENOSPC mid-run: the core reports it once,
    records nothing more, closes cleanly; every completed episode is readable after recover."""
    import errno

    from her_goals.rosglue.health import ERROR
    from her_recorder import rosbags_adapter
    from her_recorder.recover import recover

    for queue_size in (0, 100):
        bags = tmp_path / f"q{queue_size}"
        c = RecorderCore(RecorderConfig(bag_dir=str(bags), queue_size=queue_size, fsync=False))
        c.open()
        for episode in range(2):
            c.on_event(event(0, episode, t=S), S)
            for s in steps(episode, 5):
                c.on_step(s, S)
            c.on_event(event(1, episode, 5, reason="time_limit", t=2 * S), 2 * S)
        with monkeypatch.context() as m:
            def full(self: Any, *, fsync: bool) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            m.setattr(rosbags_adapter.DurableMcap, "sync", full)
            c.on_event(event(0, 2, t=S), S)
            for s in steps(2, 5):
                c.on_step(s, S)
            c.on_event(event(1, 2, 5, reason="time_limit", t=2 * S), 2 * S)
            c.tick(3 * S)
            assert c.stopped is not None, queue_size
            level, message = c.health.problems["storage"]
            assert level == ERROR and "the disk is full" in message and "the 2 completed episodes" in message
            c.on_event(event(0, 3, t=S), S)  # more episodes: counted, not recorded, no exception
            for s in steps(3, 2):
                c.on_step(s, S)
            c.on_raw("/joint_states", "sensor_msgs/msg/JointState", b"\0\1\0\0", S)
            assert c.health.counters["episodes_not_recorded"] >= 1
            assert c.status_values()["recording"] == "stopped"
            assert not c.discard()[0]
            c.close()
            c.close()
        recover([bags])
        read = read_episodes(bags, log_summary=False)
        assert [len(e) for e in read.episodes] == [5, 5], queue_size


def test_a_raw_topic_the_recorder_cannot_take_is_refused_naming_the_ones_it_can(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"raw_topics \['/tf'\] cannot be recorded raw; use some of "
                                          r"\['/her/achieved_goal', '/joint_states', '/object_pose'\]"):
        config_from_parameters(RecorderConfig, {"bag_dir": str(tmp_path), "raw_topics": ["/joint_states", "/tf"]},
                               where="recorder_node")
    config = RecorderConfig(bag_dir=str(tmp_path), raw_topics=("/her/achieved_goal",))
    assert config.subscription("/her/achieved_goal") == "her/achieved_goal"
