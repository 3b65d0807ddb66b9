"""Shared helpers of the her_recorder tests: record small sessions with known content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from her_goals import GoalSpace, get_goal_space
from her_recorder import EpisodeRecorder, typestore
from her_recorder.writer import header

SPACE: GoalSpace = get_goal_space("ee_position")


@dataclass
class Recorded:
    """What a test recorded, step by step, to compare with what is read back."""

    episodes: dict[int, dict[str, Any]] = field(default_factory=dict)


def record_session(
    path: Path,
    *,
    n_episodes: int = 4,
    n_steps: int = 10,
    seed: int = 0,
    raw: bool = True,
    succeed_every: int = 2,
    **options: Any,
) -> Recorded:
    """Record ``n_episodes`` episodes of ``n_steps`` steps with random but known data."""
    rng = np.random.default_rng(seed)
    out = Recorded()
    types = typestore().types
    t = 1_700_000_000_000_000_000
    with EpisodeRecorder(
        path, goal_space=SPACE, task="reach", config={"lr": 1e-3}, seeds={"train": seed}, **options
    ) as rec:
        for e in range(n_episodes):
            desired = rng.uniform(-0.5, 0.5, 3)
            episode_id = rec.start_episode(desired, stamp_ns=t)
            obs = rng.normal(size=6)
            ag = rng.uniform(-0.5, 0.5, 3)
            rows: dict[str, list[Any]] = {
                k: []
                for k in (
                    "observation",
                    "next_observation",
                    "action_raw",
                    "action_applied",
                    "achieved_goal",
                    "next_achieved_goal",
                    "stamp_ns",
                    "safety_flags",
                )
            }
            for s in range(n_steps):
                t += 10_000_000
                obs2 = rng.normal(size=6)
                last = s == n_steps - 1
                ag2 = (
                    desired + 0.001
                    if (last and e % succeed_every == 0)
                    else rng.uniform(-0.5, 0.5, 3)
                )
                act = rng.uniform(-2, 2, 4)
                applied = np.clip(act, -1, 1)
                flags = 1 if (np.abs(act) > 1).any() else 0
                rec.record_step(
                    observation=obs,
                    next_observation=obs2,
                    action_raw=act,
                    action_applied=applied,
                    achieved_goal=ag,
                    next_achieved_goal=ag2,
                    truncated=last,
                    safety_flags=flags,
                    safety_cost=float(flags),
                    safety_reasons=["clipped"] if flags else [],
                    stamp_ns=t,
                )
                for k, v in (
                    ("observation", obs),
                    ("next_observation", obs2),
                    ("action_raw", act),
                    ("action_applied", applied),
                    ("achieved_goal", ag),
                    ("next_achieved_goal", ag2),
                    ("stamp_ns", t),
                    ("safety_flags", flags),
                ):
                    rows[k].append(v)
                if raw:
                    js = types["sensor_msgs/msg/JointState"](
                        header=header(t, ""),
                        name=["a", "b"],
                        position=obs[:2],
                        velocity=np.zeros(2),
                        effort=np.zeros(2),
                    )
                    rec.record_raw("/joint_states", js, t)
                obs, ag = obs2, ag2
            t += 10_000_000
            ended = rec.end_episode(stamp_ns=t)
            out.episodes[episode_id] = {
                **{k: np.array(v) for k, v in rows.items()},
                "desired_goal": desired,
                "success": ended.success,
            }
            t += 10_000_000
    return out
