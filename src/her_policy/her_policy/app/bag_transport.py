"""Training data through rosbag2: the robot's data path, exercised in simulation.

On the robot, episodes reach the trainer only as bags (ARCHITECTURE.md, rule 4). The
:class:`BagRoundTrip` puts simulated training on the same path: each batch of
collected episodes is written with the crash-safe recorder, the bag is closed,
read back with the validating reader, and only what was read is stored in the
replay buffer. A bag the reader rejects shows up in its summary line and never
reaches the learner.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

from her_goals.episode_arrays import EpisodeArrays
from her_goals.evaluation import NO_INDEX, POLICY_LEARNER
from her_goals.safety_flags import flag_names
from her_policy.errors import PolicyError
from her_recorder.reader import read_episodes


class BagRoundTrip:
    """Write collected episodes to a bag, close it, and return what the reader gets back."""

    def __init__(
        self,
        recorder: Any,
        *,
        split: str = "train",
        step_ns: int = 40_000_000,
        policy: str = POLICY_LEARNER,
    ) -> None:
        """``recorder`` is an open ``her_recorder.EpisodeRecorder``; ``split`` is the
        START split (and reason) that tells the audit these are exploration episodes;
        ``step_ns`` is the control period, so stamps are simulated time, increasing across
        the bag; ``policy`` is recorded in every Step (the policy being trained)."""
        self.recorder = recorder
        self.split = split
        self.policy = policy
        self.step_ns = int(step_ns)
        self._clock_ns = 0
        self.bags: list[Path] = []
        self.episodes_written = 0
        self.steps_written = 0

    def __call__(self, episodes: list[EpisodeArrays]) -> list[EpisodeArrays]:
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
        # What trains is what the bag holds (the reader's episodes are EpisodeArrays); the
        # success of the exploring policy is the collector's own (the bag's END says it too).
        return [
            dataclasses.replace(cast(Any, read), success=written.success)
            for read, written in zip(result.episodes, episodes, strict=True)
        ]

    def _write(self, episode: EpisodeArrays) -> None:
        rec = self.recorder
        n = episode.n_steps
        t0 = self._clock_ns
        rec.start_episode(
            episode.desired_goal[0],
            stamp_ns=t0,
            reason=self.split,
            split=self.split,
            stream_index=NO_INDEX,
            sim_params=episode.sim_params,
        )
        for t in range(n):
            last = t == n - 1
            rec.record_step(
                observation=episode.observation[t],
                next_observation=episode.next_observation[t],
                action_raw=episode.action[t],
                achieved_goal=episode.achieved_goal[t],
                next_achieved_goal=episode.next_achieved_goal[t],
                terminated=bool(episode.terminated[t] and last),
                truncated=bool(episode.truncated[t] and last),
                stamp_ns=t0 + (t + 1) * self.step_ns,
                policy=self.policy,
                # The training env's safety layer: recorded as an evaluation's steps are.
                safety_flags=0 if episode.safety_flags is None else int(episode.safety_flags[t]),
                safety_cost=0.0 if episode.safety_cost is None else float(episode.safety_cost[t]),
                safety_reasons=() if episode.safety_flags is None else flag_names(int(episode.safety_flags[t])),
            )
        rec.end_episode(stamp_ns=t0 + n * self.step_ns + 1)
        self._clock_ns = t0 + (n + 1) * self.step_ns
        self.episodes_written += 1
        self.steps_written += n
