"""``her train --bags``: a policy from recorded episode bags only — the robot's data path.

The bags are read by the validating reader (bad episodes are left out with a
visible summary line), every complete episode goes into a HER replay buffer,
and a fresh learner is trained on it with :func:`~her_policy.learn.train.train_offline`.
The artefact's data hashes name the bag files it learned from. When the bags
come from one of our MuJoCo tasks, the policy is also evaluated on that task's
held-out requested goals.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from her_goals.provenance import sha256_file
from her_goals.tasks import TASKS
from her_policy.artefact.layout import PolicyLayout
from her_policy.errors import PolicyError
from her_policy.learn.buffer import HerReplayBuffer
from her_policy.learn.config import TrainConfig
from her_policy.learn.envs import EnvSource
from her_policy.learn.train import TrainResult, train_offline


def bag_file_hashes(bags: Sequence[Path]) -> dict[str, str]:
    """sha256 of every storage file of the bags read, for the artefact's provenance."""
    out: dict[str, str] = {}
    for bag in bags:
        for path in sorted(Path(bag).glob("*.mcap")):
            out[f"bag:{path}"] = sha256_file(path)
    return out


def train_from_bags(
    paths: Sequence[str | Path],
    config: TrainConfig,
    *,
    n_updates: int | None = None,
    evaluate_on_task: bool = True,
) -> TrainResult:
    """Fill a HER buffer from bags and train a fresh learner on it; see the module doc.

    ``n_updates`` defaults to ``max(2000, 2 * updates_per_step * stored steps)``:
    offline there is no new data, so the learner makes more passes over what it has.
    """
    from her_recorder.reader import read_episodes

    result = read_episodes([Path(p) for p in paths], log_summary=True)
    print(result.report.summary_line(), file=sys.stderr)
    episodes = result.episodes
    if not episodes:
        raise PolicyError(
            f"no complete episode could be read from {', '.join(map(str, paths))}; "
            "run `her bag check` on them to see why"
        )
    space = episodes[0].goal_space
    tasks = sorted({e.task for e in episodes})
    obs_dim = int(episodes[0].observation.shape[1])
    act_dim = int(episodes[0].action.shape[1])
    for e in episodes:
        if not e.goal_space.same_as(space) or e.observation.shape[1] != obs_dim:
            raise PolicyError(
                f"{e.bag} episode {e.episode_id}: goal space {e.goal_space.name} / observation "
                f"size {e.observation.shape[1]} differ from the first bag's {space.name} / "
                f"{obs_dim}; train on bags of one task at a time"
            )
    task = tasks[0] if len(tasks) == 1 and tasks[0] in TASKS else None
    layout = _layout(task, obs_dim, space.dim, act_dim)
    total_steps = sum(len(e) for e in episodes)
    buffer = HerReplayBuffer(
        space,
        obs_dim,
        act_dim,
        capacity=max(config.buffer_capacity, total_steps + len(episodes)),
        strategy=config.relabel_strategy,
        k=config.replay_k,
        relabel_prob=config.relabel_prob,
        moving_share=config.moving_share,
        seed=config.seed,
    )
    for e in episodes:
        # Actions as applied after limits and safety: what the arm actually did.
        buffer.add(e)
    if n_updates is None:
        n_updates = max(2000, int(2 * config.updates_per_step * total_steps))
    horizon = int(np.median([len(e) for e in episodes]))
    return train_offline(
        config,
        buffer,
        layout,
        n_updates,
        episode_length=horizon,
        data_hashes=bag_file_hashes([b.path for b in result.report.bags]),
        env_factory=EnvSource(task=task) if (task is not None and evaluate_on_task) else None,
    )


def _layout(task: str | None, obs_dim: int, goal_dim: int, act_dim: int) -> PolicyLayout:
    if task is not None:
        from her_policy.learn.envs import layout_of

        env = EnvSource(task=task)()
        layout = layout_of(env)
        env.close()
        if (layout.observation_dim, layout.goal_dim, layout.action_dim) == (
            obs_dim,
            goal_dim,
            act_dim,
        ):
            return layout
    # Bags from another source: actions are taken to be normalised to [-1, 1].
    return PolicyLayout(
        observation_dim=obs_dim,
        goal_dim=goal_dim,
        action_dim=act_dim,
        action_low=(-1.0,) * act_dim,
        action_high=(1.0,) * act_dim,
    )
