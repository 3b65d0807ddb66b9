"""Rewards and successes the recorder fills in are the goal space's, step by step; given ones
are kept as given. The recorder computes them over an episode's steps at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from her_recorder_testlib import SPACE
from rosbags.rosbag2 import Reader

from her_recorder import EpisodeRecorder, typestore
from her_recorder import interfaces as ifc


def _steps(session: Path) -> list[object]:
    store = typestore()
    with Reader(session / "bag_0000") as reader:
        conns = [c for c in reader.connections if c.topic == ifc.TOPIC_STEP]
        return [store.deserialize_cdr(d, ifc.STEP_TYPE) for _, _, d in reader.messages(conns)]


def test_filled_in_rewards_are_the_goal_space_s_for_each_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    desired = np.array([0.1, 0.2, 0.3])
    n = 600  # longer than the recorder's batch of pending steps
    next_ag = rng.uniform(-0.5, 0.5, (n, 3))
    next_ag[::7] = desired + 0.001  # within tolerance
    next_ag[5] = [np.nan, 0.0, 0.0]  # no reward: recorded as -1 (the reader reports it)
    given = {10: (5.0, None), 11: (None, True), 12: (0.0, False)}
    with EpisodeRecorder(tmp_path, goal_space=SPACE, task="reach") as rec:
        rec.start_episode(desired, stamp_ns=1)
        for s in range(n):
            reward, success = given.get(s, (None, None))
            rec.record_step(
                observation=np.zeros(2), next_observation=np.zeros(2), action_raw=np.zeros(1),
                achieved_goal=np.zeros(3), next_achieved_goal=next_ag[s], stamp_ns=2 + s,
                reward=reward, is_success=success,
            )  # fmt: skip
        rec.end_episode(stamp_ns=n + 2)
    steps: list = _steps(tmp_path)  # type: ignore[type-arg]
    assert [m.step for m in steps] == list(range(n))
    for s, m in enumerate(steps):
        if s == 5:
            expected = -1.0
        else:
            expected = float(SPACE.compute_reward(next_ag[s], desired))
        reward, success = given.get(s, (None, None))
        assert m.reward == (expected if reward is None else reward), s
        assert m.is_success == (expected == 0.0 if success is None else success), s
    assert sum(m.is_success for m in steps) > n // 8  # the goal was reached on many steps
