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
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from her_goals.episode_arrays import EpisodeArrays
from her_goals.training_log import TrainingLogRow
from her_mujoco.randomization import DomainRandomization
from her_policy.artefact.weights import ActorWeights
from her_policy.errors import PolicyError
from her_policy.learn.algorithms import Learner
from her_policy.learn.collect import Collector, Exploration, ProcessCollector, exploration_dict
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
from her_policy.learn.signals import StopSignals
from her_policy.learn.trainer import (
    CHECKPOINT_DIR,
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
    resume: bool = False,
) -> TrainResult:
    """Train a policy online in the env of ``config`` (or ``env_factory``); see the module doc.

    ``episode_transport`` sees every cycle's episodes before the learner (e.g. a bag round
    trip: the learner only learns what survived the bag); ``demos`` are demonstration
    episodes kept in their own buffer (``demo_hashes`` name their bag files).

    With ``config.out``, SIGINT/SIGTERM stop the run at the end of the current cycle with a
    checkpoint and the best-so-far policy (``stopped_because`` "interrupted"), and
    ``resume`` continues from ``OUT/checkpoint`` exactly as the uninterrupted run would have
    (same seed, same data, same weights): the checkpoint holds the learner, buffers, counters,
    every random stream of the collector's envs and the weights of the collection in flight.
    Checkpoints are also written every ``checkpoint_every`` env steps, so a killed run
    resumes from the last one.
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
        if cfg.near_start:
            extra.append(("train_near_start", cfg.near_start))
            extra.append(("train_near_start_m", tuple(cfg.near_start_m)))
        if cfg.randomize != "none":
            extra.append(("randomization", DomainRandomization.from_spec(cfg.randomize)))
        if extra:
            env_factory = dataclasses.replace(env_factory, kwargs=(*env_factory.kwargs, *extra))
        if cfg.safety_layer:
            env_factory = dataclasses.replace(env_factory, safety_layer=True)
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
    resumed = trainer.resume() if resume else None
    if resumed is None and demos and cfg.demo_pretrain_updates:
        trainer.update(cfg.demo_pretrain_updates)
    parallel = _use_parallel(cfg.parallel)
    collector: Collector | ProcessCollector = (
        ProcessCollector(env_factory, cfg.n_envs, cfg.seed, layout)
        if parallel
        else Collector(env_factory, cfg.n_envs, cfg.seed, layout)
    )
    exploring = Exploration(
        noise=cfg.resolved_exploration_noise, random_eps=cfg.resolved_random_eps, color=cfg.noise_color
    )
    bar = tqdm(total=cfg.env_steps, initial=trainer.env_steps, unit="step", disable=not cfg.progress,
               dynamic_ncols=True)  # fmt: skip
    stopped = "env_steps"
    tracking = cfg.out is not None  # only a run with a directory can be resumed
    # The collector's streams and the weights of the collection in flight, as of the last
    # submission: what a checkpoint needs to resume the collector exactly.
    in_flight: dict[str, Any] = {}

    def policy_args() -> tuple[Any, Exploration]:
        if trainer.env_steps < cfg.random_steps:
            return None, Exploration(uniform=True)
        return trainer.learner.snapshot(), exploring

    def submit(args: tuple[Any, Exploration]) -> None:
        assert isinstance(collector, ProcessCollector)
        if tracking:
            in_flight.update(state=collector.state(), snapshot=args[0], exploration=args[1])
        collector.submit(*args)

    def driver_state() -> tuple[dict[str, Any], dict[str, Callable[[Path], None]]]:
        if isinstance(collector, ProcessCollector):
            state, snapshot, exploration = in_flight["state"], in_flight["snapshot"], in_flight["exploration"]
            pending: dict[str, Any] | None = {"exploration": exploration_dict(exploration),
                                              "has_snapshot": snapshot is not None}  # fmt: skip
        else:
            state, snapshot, pending = collector.state(), None, None
        def write_state(path: Path) -> None:
            path.write_text(json.dumps(state))

        files: dict[str, Callable[[Path], None]] = {"collector.json": write_state}
        if snapshot is not None:
            files["pending_actor.npz"] = snapshot.save
        return {"pending": pending, "parallel": parallel}, files

    try:
        with StopSignals() as stop:
            if resumed is not None:
                checkpoint = trainer.out / CHECKPOINT_DIR if trainer.out else Path()
                if not (checkpoint / "collector.json").is_file():
                    raise PolicyError(
                        f"{checkpoint} holds no collector state (collector.json): it was not written by an "
                        "interrupted her train run, so it cannot be resumed; choose a new --out, or "
                        "--overwrite to start over"
                    )
                collector.restore(json.loads((checkpoint / "collector.json").read_text()))
                pending = resumed.get("pending")
                if isinstance(collector, ProcessCollector):
                    if pending is None:
                        raise PolicyError(
                            f"{checkpoint} was written by a run without the collector process "
                            "(parallel off); resume it with --parallel off"
                        )
                    snapshot = ActorWeights.load(checkpoint / "pending_actor.npz") if pending["has_snapshot"] else None
                    submit((snapshot, Exploration(**pending["exploration"])))
                elif pending is not None:
                    raise PolicyError(
                        f"{checkpoint} was written by a run with the collector process "
                        "(parallel on); resume it with --parallel on"
                    )
            elif isinstance(collector, ProcessCollector):
                submit(policy_args())
            while trainer.env_steps < cfg.env_steps:
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
                    submit(policy_args())
                trainer.pay()
                bar.update(new_steps)
                if not more:
                    stopped = "env_steps"
                elif cfg.max_wall_s is not None and trainer.clock.elapsed() >= cfg.max_wall_s:
                    stopped = "max_wall_s"
                row = trainer.evaluate_if_due(force=not more or stopped == "max_wall_s")
                if row is not None:
                    shown = {"success": f"{row.requested_success:.2f}", "wall": f"{row.train_wall_s:.0f}s"}
                    if math.isfinite(row.train_episode_cost):  # the safety layer's mean cost per episode
                        shown["cost_per_ep"] = f"{row.train_episode_cost:.1f}"
                    bar.set_postfix(shown)
                    if trainer.reached_target():
                        stopped = "target_success"
                if stopped == "env_steps" and more and stop.requested:
                    stopped = "interrupted"
                    break
                trainer.checkpoint_if_due(driver_state)
                if not more or stopped != "env_steps":
                    break
    finally:
        bar.close()
    if stopped == "interrupted":
        extra_state, files = driver_state() if tracking else ({}, {})
        collector.close()
        probe.close()
        return trainer.finish_interrupted(extra=extra_state, files=files, provenance={"env": cfg.source})
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
