"""``her train --task T`` / ``--env ID``: online training in a simulated goal env.

Each cycle collects one episode in each of ``n_envs`` envs with the exploring policy and
hands them to the training core (:class:`~her_policy.learn.trainer.Trainer`), which stores
them whole in the HER buffer, updates the normaliser, makes the updates they earned
(``updates_per_step`` per env step), evaluates on held-out goals every ``eval_every`` env
steps and checkpoints. With ``parallel`` on, collection of cycle ``c + 1`` runs in a worker
process while the learner updates on cycle ``c`` (see :mod:`her_policy.learn.collect`).
With demonstrations (``her train --demos BAGS``) the core samples ``demo_share`` of every
batch from them, optionally after ``demo_pretrain_updates`` updates on them alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from her_goals.episode_arrays import EpisodeArrays
from her_goals.training_log import TrainingLogRow
from her_mujoco.randomization import DomainRandomization
from her_policy.errors import PolicyError
from her_policy.learn.algorithms import Learner
from her_policy.learn.collect import Collector, Exploration, ProcessCollector
from her_policy.learn.config import TrainConfig
from her_policy.learn.envs import (
    HELDOUT_SEED_BASE,
    EnvFactory,
    EnvSource,
    episode_length,
    goal_space_of,
    layout_of,
    training_seed,
)
from her_policy.learn.trainer import (
    FINAL_EVAL_SET,
    PERIODIC_EVAL_SET,
    Evaluator,
    Trainer,
    TrainResult,
    UpdateStats,
    train_from_buffer,
)

__all__ = [
    "FINAL_EVAL_SET",
    "PERIODIC_EVAL_SET",
    "TrainResult",
    "UpdateStats",
    "train",
    "train_from_buffer",
]


def _use_parallel(setting: str) -> bool:
    if setting == "on":
        return True
    if setting == "off":
        return False
    return (os.cpu_count() or 1) >= 2


def train(
    config: TrainConfig,
    *,
    env_factory: EnvFactory | None = None,
    on_eval: Callable[[TrainingLogRow, Learner], None] | None = None,
    episode_transport: Callable[[list[EpisodeArrays]], list[EpisodeArrays]] | None = None,
    demos: Sequence[EpisodeArrays] = (),
    demo_hashes: dict[str, str] | None = None,
) -> TrainResult:
    """Train a policy online in the env of ``config`` (or ``env_factory``); see the module doc.

    ``episode_transport`` sees every cycle's episodes before the learner (e.g. a bag round
    trip: the learner only learns what survived the bag); ``demos`` are demonstration
    episodes kept in their own buffer (``demo_hashes`` name their bag files).
    """
    cfg = config
    if env_factory is None:
        if cfg.env is None and cfg.task is None:
            raise PolicyError("train() needs config.env or config.task, or an env_factory")
        env_factory = EnvSource(env_id=cfg.env, task=cfg.task)
    if isinstance(env_factory, EnvSource) and env_factory.task is not None:
        # Only training-split resets use these; evaluation asks for requested goals.
        extra: list[tuple[str, Any]] = []
        if cfg.grasped_start:
            extra.append(("train_grasped_start", cfg.grasped_start))
        if cfg.randomize != "none":
            extra.append(("randomization", DomainRandomization.from_spec(cfg.randomize)))
        if extra:
            env_factory = dataclasses.replace(env_factory, kwargs=(*env_factory.kwargs, *extra))
    probe = env_factory()
    space = goal_space_of(probe, name=cfg.env)
    layout = layout_of(probe)
    trainer = Trainer(
        cfg,
        layout,
        space,
        episode_length=episode_length(probe),
        mode="online",
        out=cfg.out,
        evaluator=Evaluator(env_factory, layout, space, envs=[probe]),
        demos=demos,
        on_eval=on_eval,
    )
    if demos and cfg.demo_pretrain_updates:
        trainer.update(cfg.demo_pretrain_updates)
    parallel = _use_parallel(cfg.parallel)
    collector: Collector | ProcessCollector = (
        ProcessCollector(env_factory, cfg.n_envs, cfg.seed, layout)
        if parallel
        else Collector(env_factory, cfg.n_envs, cfg.seed, layout)
    )
    exploring = Exploration(
        noise=cfg.resolved_exploration_noise, random_eps=cfg.resolved_random_eps
    )

    bar = tqdm(total=cfg.env_steps, unit="step", disable=not cfg.progress, dynamic_ncols=True)
    stopped = "env_steps"

    def policy_args() -> tuple[Any, Exploration]:
        if trainer.env_steps < cfg.random_steps:
            return None, Exploration(uniform=True)
        return trainer.learner.snapshot(), exploring

    try:
        if isinstance(collector, ProcessCollector):
            collector.submit(*policy_args())
        while True:
            if isinstance(collector, ProcessCollector):
                episodes = collector.result()
            else:
                episodes = collector.collect(*policy_args())
            if episode_transport is not None:
                # e.g. a BagRoundTrip: the learner only sees what survived the bag.
                episodes = episode_transport(episodes)
            new_steps = trainer.ingest(episodes)
            more = trainer.env_steps < cfg.env_steps
            if more and isinstance(collector, ProcessCollector):
                collector.submit(*policy_args())
            trainer.pay()
            bar.update(new_steps)
            if not more:
                stopped = "env_steps"
            elif cfg.max_wall_s is not None and trainer.clock.elapsed() >= cfg.max_wall_s:
                stopped = "max_wall_s"
            row = trainer.evaluate_if_due(force=not more or stopped == "max_wall_s")
            if row is not None:
                bar.set_postfix(success=f"{row.requested_success:.2f}", wall=f"{row.train_wall_s:.0f}s")
                if trainer.reached_target():
                    stopped = "target_success"
            trainer.checkpoint_if_due()
            if not more or stopped != "env_steps":
                break
    finally:
        bar.close()
        collector.close()
    result = trainer.finish(
        stopped,
        seeds={
            "training_env_resets": [training_seed(cfg.seed, i) for i in range(cfg.n_envs)],
            "heldout_eval_seed_base": HELDOUT_SEED_BASE,
        },
        data_hashes=demo_hashes,
        provenance={"env": cfg.source},
    )
    probe.close()
    return result
