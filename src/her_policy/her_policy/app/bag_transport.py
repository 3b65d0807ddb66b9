"""Training data through rosbag2: the robot's data path, exercised in simulation.

On the robot, episodes reach the trainer only as bags (ARCHITECTURE.md, rule 4). The
:class:`BagRoundTrip` puts simulated training on the same path: each batch of
collected episodes is written with the crash-safe recorder, the bag is closed,
read back with the validating reader, and only what was read is stored in the
replay buffer. A bag the reader rejects shows up in its summary line and never
reaches the learner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from her_policy.errors import PolicyError
from her_policy.learn.collect import Episode


class BagRoundTrip:
    """Write collected episodes to a bag, close it, and return what the reader gets back."""

    def __init__(self, recorder: Any, *, split: str = "train", step_ns: int = 40_000_000) -> None:
        """``recorder`` is an open ``her_recorder.EpisodeRecorder``; ``split`` is the
        START reason that tells the audit these are exploration episodes; ``step_ns``
        is the control period, so stamps are simulated time, increasing across the bag."""
        self.recorder = recorder
        self.split = split
        self.step_ns = int(step_ns)
        self._clock_ns = 0
        self.bags: list[Path] = []
        self.episodes_written = 0
        self.steps_written = 0

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        from her_recorder.reader import read_episodes

        if not episodes:
            return []
        for episode in episodes:
            self._write(episode)
        bag = self.recorder.split_bag()
        if bag is None:
            raise PolicyError("the recorder wrote no bag for the collected episodes")
        self.bags.append(bag)
        result = read_episodes(bag, goal_space=self.recorder.goal_space, log_summary=False)
        if not result.report.ok or len(result.episodes) != len(episodes):
            # Never silently: a training batch that does not survive its bag is a
            # recorder or schema bug the user must see.
            raise PolicyError(
                f"{bag}: wrote {len(episodes)} episodes, read back {len(result.episodes)}; "
                f"{result.report.summary_line()}"
            )
        return [
            _from_bag(read, written.success)
            for read, written in zip(result.episodes, episodes, strict=True)
        ]

    def _write(self, episode: Episode) -> None:
        rec = self.recorder
        obs, ach = episode.observation, episode.achieved_goal
        n = episode.n_steps
        t0 = self._clock_ns
        rec.start_episode(episode.desired_goal[0], stamp_ns=t0, reason=self.split)
        for t in range(n):
            last = t == n - 1
            rec.record_step(
                observation=obs[t],
                next_observation=obs[t + 1],
                action_raw=episode.action[t],
                achieved_goal=ach[t],
                next_achieved_goal=ach[t + 1],
                terminated=bool(episode.terminated and last),
                truncated=bool(episode.truncated and last),
                stamp_ns=t0 + (t + 1) * self.step_ns,
            )
        rec.end_episode(stamp_ns=t0 + n * self.step_ns + 1)
        self._clock_ns = t0 + (n + 1) * self.step_ns
        self.episodes_written += 1
        self.steps_written += n


def _from_bag(read: Any, success: float) -> Episode:
    """A reader ``Episode`` in the collector's shapes ((T+1) observations and achieved goals)."""
    return Episode(
        observation=np.concatenate([read.observation, read.next_observation[-1:]]),
        action=read.action_applied,
        achieved_goal=np.concatenate([read.achieved_goal, read.next_achieved_goal[-1:]]),
        desired_goal=read.desired_goal,
        terminated=bool(read.terminated[-1]),
        truncated=bool(read.truncated[-1]),
        success=success,
    )
