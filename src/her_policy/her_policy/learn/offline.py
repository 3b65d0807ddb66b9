"""Learning from recorded episodes: ``her train --bags`` (offline) and ``--demos`` (online).

The bags are read by the validating reader (bad episodes are left out with a visible
summary line) and checked as training data (:func:`load_training_episodes`): one task, one
goal space, one observation layout, and no held-out evaluation episode unless asked for
(``--allow-eval-episodes``, recorded in the artefact): evaluation goals must never train a
policy that is then evaluated on them.

Offline, every complete episode goes into the training core
(:class:`~her_policy.learn.trainer.Trainer`) once, and a fresh learner updates on that fixed
data with periodic held-out evaluations (:func:`train_on_episodes`). The artefact's data
hashes name the bag files it learned from. When the bags come from one of our MuJoCo tasks,
the policy is evaluated on that task's held-out requested goals.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from her_goals.episode_arrays import EpisodeArrays
from her_goals.evaluation import TRAIN
from her_goals.provenance import sha256_file
from her_goals.spaces import GoalSpace
from her_goals.tasks import TASKS
from her_policy.artefact.layout import PolicyLayout
from her_policy.errors import PolicyError
from her_policy.learn.config import TrainConfig
from her_policy.learn.envs import EnvSource, layout_of
from her_policy.learn.signals import StopSignals
from her_policy.learn.trainer import Evaluator, Trainer, TrainResult, rows_needed
from her_recorder.datasets import read_training_input, storage_files


class TrainingDataError(PolicyError):
    """Recorded episodes that cannot be training data for this run (another task, goal
    space or observation layout; held-out evaluation episodes)."""


def bag_file_hashes(bags: Sequence[Path], prefix: str = "bag") -> dict[str, str]:
    """sha256 of every storage file of the bags (and exported datasets) read, for the
    artefact's provenance."""
    out: dict[str, str] = {}
    for bag in bags:
        for path in storage_files(Path(bag)):
            out[f"{prefix}:{path}"] = sha256_file(path)
    return out


@dataclass(frozen=True)
class TrainingData:
    """Episodes read from bags and checked as training data, with where they came from."""

    episodes: list[Any]
    """The reader's ``Episode`` objects (EpisodeArrays with bag, task, split...)."""
    task: str | None
    """The registered task of the bags (None: bags of an unregistered task)."""
    goal_space: GoalSpace
    observation_dim: int
    action_dim: int
    bags: list[Path]
    summary: str
    """The reader's one-line summary (what was read, what was left out)."""
    eval_episodes: int
    """Held-out evaluation episodes among them (kept only with allow_eval_episodes)."""

    @property
    def n_steps(self) -> int:
        return sum(len(e) for e in self.episodes)

    def hashes(self, prefix: str = "bag") -> dict[str, str]:
        return bag_file_hashes(self.bags, prefix)


def _is_eval(split: str) -> bool:
    # Anything but training is refused: evaluation episodes and goals asked for by hand alike
    # may be what an evaluation is measured on. Bags from before splits were recorded say ''.
    return bool(split) and split != TRAIN


def load_training_episodes(
    paths: Sequence[str | Path],
    *,
    what: str = "--bags",
    allow_eval_episodes: bool = False,
    expect: Mapping[str, Any] | None = None,
) -> TrainingData:
    """Read and check bags as training data; ``what`` names the flag in errors.

    ``expect`` (task, goal_space, observation_dim, action_dim) is what the bags must match
    (demonstrations for a given task); otherwise the first bag sets it and every other bag
    must agree.
    """
    # Bags and datasets `her export` wrote alike (her_recorder/datasets/inputs.py).
    result = read_training_input([Path(p) for p in paths])
    summary = result.summary
    episodes = list(result.episodes)
    if not episodes:
        raise TrainingDataError(
            f"{what}: no complete episode could be read from {', '.join(map(str, paths))}; "
            "run `her bag check` on them to see why"
        )
    want: dict[str, Any] = dict(expect or {})
    first = episodes[0]
    task = want.get("task", first.task)
    space: GoalSpace = want.get("goal_space", first.goal_space)
    obs_dim = int(want["observation_dim"]) if "observation_dim" in want else int(first.observation.shape[1])
    act_dim = int(want["action_dim"]) if "action_dim" in want else int(first.action.shape[1])
    source = "the task being trained" if expect else f"the first bag's ({first.bag})"
    for e in episodes:
        where = f"{what} {e.bag} episode {e.episode_id}"
        if task is not None and e.task and e.task != task:
            raise TrainingDataError(
                f"{where}: task {e.task!r}, but {source} is {task!r}; train on bags of one task"
            )
        if not e.goal_space.same_as(space):
            raise TrainingDataError(
                f"{where}: goal space {e.goal_space.spec()} differs from {source} {space.spec()}; "
                "train on bags of one goal space"
            )
        if e.observation.shape[1] != obs_dim or e.action.shape[1] != act_dim:
            raise TrainingDataError(
                f"{where}: observation size {e.observation.shape[1]} / action size "
                f"{e.action.shape[1]} differ from {source} {obs_dim} / {act_dim} (another "
                "arm, task or observation layout); train on bags of one layout"
            )
    evals = [e for e in episodes if _is_eval(getattr(e, "split", ""))]
    if evals and not allow_eval_episodes:
        bags = sorted({str(e.bag) for e in evals})
        raise TrainingDataError(
            f"{what}: {len(evals)} of {len(episodes)} episodes are held-out evaluation episodes "
            f"(split {evals[0].split!r}, e.g. {evals[0].bag} episode {evals[0].episode_id}; bags: "
            f"{', '.join(bags[:3])}{' ...' if len(bags) > 3 else ''}). Evaluation goals must not "
            "train a policy that is then evaluated on them: leave those bags out, or pass "
            "--allow-eval-episodes (recorded in the artefact)"
        )
    return TrainingData(
        episodes=episodes,
        task=task if task in TASKS else None,
        goal_space=space,
        observation_dim=obs_dim,
        action_dim=act_dim,
        bags=result.sources,
        summary=summary,
        eval_episodes=len(evals),
    )


def task_layout(task: str | None, obs_dim: int, goal_dim: int, act_dim: int) -> PolicyLayout:
    """The policy layout of the registered ``task`` if the sizes fit it; else a plain one
    with actions taken to be normalised to [-1, 1] (bags from another source)."""
    if task is not None:
        env = EnvSource(task=task)()
        layout = layout_of(env)
        env.close()
        if (layout.observation_dim, layout.goal_dim, layout.action_dim) == (obs_dim, goal_dim, act_dim):
            return layout
    return PolicyLayout(
        observation_dim=obs_dim,
        goal_dim=goal_dim,
        action_dim=act_dim,
        action_low=(-1.0,) * act_dim,
        action_high=(1.0,) * act_dim,
    )


def train_on_episodes(
    config: TrainConfig,
    episodes: Sequence[EpisodeArrays],
    layout: PolicyLayout,
    goal_space: GoalSpace,
    n_updates: int,
    *,
    episode_length: int,
    evaluator: Evaluator | None = None,
    data_hashes: Mapping[str, str] | None = None,
    provenance: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> TrainResult:
    """A fresh learner trained for ``n_updates`` on ``episodes`` only (offline).

    SIGINT/SIGTERM stop between chunks of updates with a checkpoint and the best-so-far
    policy (with ``config.out``); ``resume`` continues from ``OUT/checkpoint``."""
    trainer = Trainer(
        config,
        layout,
        goal_space,
        episode_length=episode_length,
        mode="offline",
        out=config.out,
        evaluator=evaluator,
        capacity=max(config.buffer_capacity, rows_needed(episodes)),
    )
    trainer.ingest(episodes)
    if resume:
        trainer.resume()
    bar = tqdm(total=n_updates, initial=trainer.updates, unit="update", disable=not config.progress,
               dynamic_ncols=True)  # fmt: skip
    try:
        with StopSignals() as stop:
            stopped = trainer.run_offline(n_updates, progress=bar, stop=stop)
    finally:
        bar.close()
    if stopped == "interrupted":
        return trainer.finish_interrupted(provenance={"offline": True, **dict(provenance or {})})
    return trainer.finish(
        stopped,
        data_hashes=data_hashes,
        provenance={"offline": True, "episodes": len(episodes), **dict(provenance or {})},
        title=f"her train --bags ({config.algo}): requested-goal success on held-out goals",
    )


def train_from_bags(
    paths: Sequence[str | Path],
    config: TrainConfig,
    *,
    n_updates: int | None = None,
    evaluate_on_task: bool = True,
    allow_eval_episodes: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Train a fresh learner on the episodes of ``paths`` only; see the module doc."""
    data = load_training_episodes(paths, allow_eval_episodes=allow_eval_episodes)
    print(data.summary, file=sys.stderr)
    layout = task_layout(data.task, data.observation_dim, data.goal_space.dim, data.action_dim)
    if n_updates is None:
        n_updates = config.offline_updates
    evaluator = None
    if data.task is not None and evaluate_on_task:
        evaluator = Evaluator(EnvSource(task=data.task), layout, data.goal_space)
    horizon = int(np.median([len(e) for e in data.episodes]))
    return train_on_episodes(
        config,
        data.episodes,
        layout,
        data.goal_space,
        n_updates,
        episode_length=horizon,
        evaluator=evaluator,
        data_hashes=data.hashes(),
        provenance={
            "env": f"task:{data.task}" if data.task else None,
            "bags": [str(b) for b in data.bags],
            "eval_episodes_in_training_data": data.eval_episodes,
            "allow_eval_episodes": allow_eval_episodes,
        },
        resume=resume,
    )


def load_demos(
    paths: Sequence[str | Path],
    *,
    task: str,
    goal_space: GoalSpace,
    layout: PolicyLayout,
    allow_eval_episodes: bool = False,
) -> TrainingData:
    """Demonstration episodes for training ``task`` online, checked like any bags and
    against the task's goal space and observation layout."""
    return load_training_episodes(
        paths,
        what="--demos",
        allow_eval_episodes=allow_eval_episodes,
        expect={
            "task": task,
            "goal_space": goal_space,
            "observation_dim": layout.observation_dim,
            "action_dim": layout.action_dim,
        },
    )
