"""A recorder that runs until it is killed (driven by test_crash.py).

Usage: python _crash_child.py SESSION_DIR SEED

Prints ``READY`` once the recorder is open, then ``END <episode_id> <num_steps>``
after each ``end_episode()`` has returned (the episode is durable by then), and
``GONE <episode_id>`` after an abort or discard. Every value it records is a
function of (episode_id, step), so the test can check content, not only counts.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from her_goals import get_goal_space
from her_recorder import EpisodeRecorder, typestore
from her_recorder.writer import header


def values(episode_id: int, step: int, n: int) -> np.ndarray:
    return episode_id + step / 1000.0 + np.arange(n) / 1e6


def main() -> None:
    session, seed = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(seed)
    space = get_goal_space("ee_position")
    types = typestore().types
    rec = EpisodeRecorder(
        session,
        goal_space=space,
        task="reach",
        seeds={"child": seed},
        max_episodes_per_bag=int(rng.integers(2, 6)),
        max_bag_bytes=int(rng.integers(20_000, 200_000)),
        compression="zstd" if seed % 3 == 0 else "none",
        queue_size=0 if seed % 2 == 0 else 256,
        fsync=seed % 4 != 1,
    )
    rec.open()
    print("READY", flush=True)
    t = 1_000_000_000
    while True:
        episode_id = rec.start_episode(np.full(3, 0.5), stamp_ns=t)
        n_steps = int(rng.integers(1, 25))
        for step in range(n_steps):
            t += 1_000_000
            ag = values(episode_id, step, 3)
            rec.record_step(
                observation=values(episode_id, step, 7),
                next_observation=values(episode_id, step + 1, 7),
                action_raw=values(episode_id, step, 4),
                achieved_goal=ag,
                next_achieved_goal=values(episode_id, step + 1, 3),
                truncated=step == n_steps - 1,
                stamp_ns=t,
            )
            time.sleep(0.001)  # a 1 kHz control loop, so kills land mid-episode too
            if rng.random() < 0.3:
                js = types["sensor_msgs/msg/JointState"](
                    header=header(t, "base_link"),
                    name=["j0", "j1"],
                    position=values(episode_id, step, 2),
                    velocity=np.zeros(2),
                    effort=np.zeros(2),
                )
                rec.record_raw("/joint_states", js, t)
        t += 1_000_000
        roll = rng.random()
        if roll < 0.1:
            rec.discard_episode(stamp_ns=t)
            print(f"GONE {episode_id}", flush=True)
        elif roll < 0.2:
            rec.abort_episode("safety", stamp_ns=t)
            print(f"GONE {episode_id}", flush=True)
        else:
            rec.end_episode(stamp_ns=t)
            print(f"END {episode_id} {n_steps}", flush=True)
        t += 1_000_000


if __name__ == "__main__":
    main()
