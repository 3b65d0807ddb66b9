"""Training: online in a simulated goal env, or offline from an already filled replay buffer.

Online, each cycle collects one episode in each of ``n_envs`` envs with the
exploring policy, stores them whole in the HER buffer, updates the normaliser,
then runs ``updates_per_step * steps`` gradient updates on relabelled batches.
With ``parallel`` on, collection of cycle ``c + 1`` runs in a worker process
while the learner updates on cycle ``c`` (see :mod:`her_policy.learn.collect`).

Periodic evaluations measure requested-goal success on held-out goals (set 1);
the final evaluation uses another held-out set (set 0), so stopping early at
``target_success`` does not select the goals the final number is measured on.
Evaluation time is excluded from ``train_wall_s``.

The update loop is :func:`train_from_buffer`; ``her train --bags`` reuses it on
a buffer filled from recorded episodes, no env needed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from her_goals.config import to_plain
from her_goals.episode_arrays import EpisodeArrays
from her_goals.spaces import GoalSpace
from her_goals.training_log import LOG_FILE, TrainingLogRow, append_row
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.numpy_actor import DeterministicPolicy
from her_policy.artefact.store import save_artefact
from her_policy.errors import PolicyError
from her_policy.learn.algorithms import Learner, make_learner
from her_policy.learn.buffer import HerReplayBuffer
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
from her_policy.learn.evaluate import EvalResult, evaluate

PERIODIC_EVAL_SET = 1
FINAL_EVAL_SET = 0


@dataclass(frozen=True)
class UpdateStats:
    """What a run of gradient updates did, with the hindsight figures of its batches."""

    n_updates: int
    seconds: float
    hindsight_ratio: float
    """Mean share of relabelled samples per batch."""
    positive_fraction_original: float
    """Mean share of reward-0 samples among those keeping the requested goal."""
    positive_fraction_relabelled: float
    """Mean share of reward-0 samples among relabelled ones (hindsight success)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Losses and values of the last update."""


def train_from_buffer(
    learner: Learner,
    buffer: HerReplayBuffer,
    n_updates: int,
    *,
    batch_size: int,
    n_step: int = 1,
    rng: np.random.Generator | None = None,
) -> UpdateStats:
    """``n_updates`` gradient updates of ``learner`` on relabelled batches from ``buffer``."""
    start = time.perf_counter()
    ratio = pos_o = pos_r = 0.0
    n_o = n_r = 0
    metrics: dict[str, float] = {}
    for i in range(n_updates):
        batch = buffer.sample(batch_size, rng, n_step=n_step, gamma=learner.gamma)
        metrics = learner.update(batch, with_metrics=i == n_updates - 1)
        s = batch.stats
        ratio += s.hindsight_ratio
        if not math.isnan(s.positive_fraction_original):
            pos_o += s.positive_fraction_original
            n_o += 1
        if not math.isnan(s.positive_fraction_relabelled):
            pos_r += s.positive_fraction_relabelled
            n_r += 1
    nan = float("nan")
    return UpdateStats(
        n_updates=n_updates,
        seconds=time.perf_counter() - start,
        hindsight_ratio=ratio / n_updates if n_updates else nan,
        positive_fraction_original=pos_o / n_o if n_o else nan,
        positive_fraction_relabelled=pos_r / n_r if n_r else nan,
        metrics=metrics,
    )


@dataclass
class TrainResult:
    """Outcome of :func:`train`."""

    config: TrainConfig
    goal_space: GoalSpace
    layout: PolicyLayout
    env_steps: int
    updates: int
    train_wall_s: float
    """Wall-clock of training from the call (env creation included), evaluation and
    checkpointing excluded."""
    eval_wall_s: float
    stopped_because: str
    evals: list[TrainingLogRow]
    final: EvalResult | None
    artefact: Path | None
    data_hash: str
    learner: Learner = field(repr=False)

    def summary(self) -> str:
        lines = [
            f"trained {self.config.algo} on {self.config.source}: {self.env_steps} env steps, "
            f"{self.updates} updates, {self.train_wall_s:.1f} s training wall-clock "
            f"(+{self.eval_wall_s:.1f} s evaluation); stopped: {self.stopped_because}"
        ]
        if self.evals:
            last = self.evals[-1]
            lines.append(
                f"last periodic eval: requested-goal success {last.requested_success:.3f}; "
                f"hindsight (relabelled) positive fraction {last.positive_fraction_relabelled:.3f}"
            )
        if self.final is not None:
            lines.append(f"final: {self.final}")
        if self.artefact is not None:
            lines.append(f"artefact: {self.artefact}")
        return "\n".join(lines)


def store_episode(buffer: HerReplayBuffer, learner: Learner, episode: EpisodeArrays) -> None:
    """Add an episode to the buffer and its observations and goals to the normaliser."""
    buffer.add(episode)
    learner.normaliser.update(
        np.concatenate([episode.observation, episode.next_observation[-1:]]),
        np.concatenate([episode.desired_goal, episode.next_achieved_goal]),
    )


def _use_parallel(setting: str) -> bool:
    if setting == "on":
        return True
    if setting == "off":
        return False
    return (os.cpu_count() or 1) >= 2


class _Clock:
    """Wall-clock with excluded intervals (evaluation, checkpoints)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.excluded


def train(
    config: TrainConfig,
    *,
    env_factory: EnvFactory | None = None,
    on_eval: Callable[[TrainingLogRow, Learner], None] | None = None,
    episode_transport: Callable[[list[EpisodeArrays]], list[EpisodeArrays]] | None = None,
) -> TrainResult:
    """Train a policy online in the env of ``config`` (or ``env_factory``); see the module doc."""
    cfg = config
    clock = _Clock()  # from the start: env creation and the collector's start-up count
    if cfg.torch_threads > 0:
        import torch

        torch.set_num_threads(cfg.torch_threads)
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
            from her_mujoco.randomization import DomainRandomization

            extra.append(("randomization", DomainRandomization.from_spec(cfg.randomize)))
        if extra:
            env_factory = dataclasses.replace(env_factory, kwargs=(*env_factory.kwargs, *extra))
    probe = env_factory()
    space = goal_space_of(probe, name=cfg.env)
    layout = layout_of(probe)
    horizon = episode_length(probe)
    gamma = cfg.resolved_gamma(horizon)
    buffer = HerReplayBuffer(
        space,
        layout.observation_dim,
        layout.action_dim,
        capacity=cfg.buffer_capacity,
        strategy=cfg.relabel_strategy,
        k=cfg.replay_k,
        relabel_prob=cfg.relabel_prob,
        moving_share=cfg.moving_share,
        seed=cfg.seed,
    )
    learner = make_learner(layout, cfg, gamma=gamma)
    parallel = _use_parallel(cfg.parallel)
    collector: Collector | ProcessCollector = (
        ProcessCollector(env_factory, cfg.n_envs, cfg.seed, layout)
        if parallel
        else Collector(env_factory, cfg.n_envs, cfg.seed, layout)
    )
    exploring = Exploration(
        noise=cfg.resolved_exploration_noise, random_eps=cfg.resolved_random_eps
    )
    out = Path(cfg.out) if cfg.out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    log_path = out / LOG_FILE if out is not None else None

    from tqdm import tqdm

    bar = tqdm(total=cfg.env_steps, unit="step", disable=not cfg.progress, dynamic_ncols=True)
    steps = updates = 0
    updates_due = 0.0
    next_eval = cfg.eval_every if cfg.eval_every > 0 else math.inf
    next_ckpt = cfg.checkpoint_every if cfg.checkpoint_every > 0 else math.inf
    evals: list[TrainingLogRow] = []
    recent_success: list[float] = []
    window: list[UpdateStats] = []
    stopped = "env_steps"

    def policy_args() -> tuple[Any, Exploration]:
        if steps < cfg.random_steps:
            return None, Exploration(uniform=True)
        return learner.snapshot(), exploring

    def evaluate_now(n: int, heldout: int) -> EvalResult:
        policy = DeterministicPolicy(learner.snapshot(), layout, space)
        return evaluate(policy, env_factory, n, envs=[probe], heldout_seed=heldout)

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
            new_steps = 0
            for ep in episodes:
                store_episode(buffer, learner, ep)
                new_steps += ep.n_steps
                recent_success.append(ep.success)
            steps += new_steps
            recent_success = recent_success[-10 * cfg.n_envs :]
            more = steps < cfg.env_steps
            if more and isinstance(collector, ProcessCollector):
                collector.submit(*policy_args())
            if steps >= cfg.learning_starts:
                updates_due += cfg.updates_per_step * new_steps
                n = int(updates_due)
                updates_due -= n
                if n:
                    stats = train_from_buffer(
                        learner, buffer, n, batch_size=cfg.batch_size, n_step=cfg.n_step
                    )
                    updates += n
                    learner.check_finite(f"env step {steps}, update {updates}", stats.metrics)
                    window = [*window[-9:], stats]
            bar.update(new_steps)
            wall = clock.elapsed()
            if not more:
                stopped = "env_steps"
            elif cfg.max_wall_s is not None and wall >= cfg.max_wall_s:
                stopped = "max_wall_s"
            if steps >= next_eval or ((not more or stopped == "max_wall_s") and cfg.eval_every > 0):
                t0 = time.perf_counter()
                result = evaluate_now(cfg.eval_episodes, PERIODIC_EVAL_SET)
                row = TrainingLogRow(
                    env_steps=steps,
                    updates=updates,
                    train_wall_s=wall,
                    requested_success=result.requested_success,
                    ci_low=result.ci_low,
                    ci_high=result.ci_high,
                    n_episodes=result.n_episodes,
                    hindsight_ratio=_mean(window, "hindsight_ratio"),
                    positive_fraction_relabelled=_mean(window, "positive_fraction_relabelled"),
                    positive_fraction_original=_mean(window, "positive_fraction_original"),
                    train_episode_success=float(np.nanmean(recent_success))
                    if recent_success
                    else math.nan,
                    moving_fraction=buffer.moving_fraction,
                    metrics=window[-1].metrics if window else {},
                )
                evals.append(row)
                if log_path is not None:
                    append_row(log_path, row)
                if on_eval is not None:
                    on_eval(row, learner)
                bar.set_postfix(success=f"{row.requested_success:.2f}", wall=f"{wall:.0f}s")
                while next_eval <= steps:
                    next_eval += cfg.eval_every
                clock.excluded += time.perf_counter() - t0
                if cfg.target_success is not None and row.requested_success >= cfg.target_success:
                    stopped = "target_success"
            if out is not None and steps >= next_ckpt:
                t0 = time.perf_counter()
                _checkpoint(out, learner, cfg, steps)
                while next_ckpt <= steps:
                    next_ckpt += cfg.checkpoint_every
                clock.excluded += time.perf_counter() - t0
            if not more or stopped != "env_steps":
                break
    finally:
        bar.close()
        collector.close()
    train_wall = clock.elapsed()
    eval_wall = clock.excluded
    final = None
    if cfg.final_eval_episodes > 0:
        final = evaluate_now(cfg.final_eval_episodes, FINAL_EVAL_SET)
        eval_wall += final.seconds
    probe.close()
    artefact = None
    if out is not None:
        artefact = save_artefact(
            out / "policy",
            snapshot=learner.snapshot(),
            layout=layout,
            goal_space=space,
            algorithm=learner.algorithm,
            config=cfg,
            seeds={
                "run": cfg.seed,
                "training_env_resets": [training_seed(cfg.seed, i) for i in range(cfg.n_envs)],
                "heldout_eval_seed_base": HELDOUT_SEED_BASE,
                "periodic_eval_set": PERIODIC_EVAL_SET,
                "final_eval_set": FINAL_EVAL_SET,
            },
            data_hashes={"replay_episodes_sha256": buffer.data_hash},
            provenance={
                "env": cfg.source,
                "env_steps": steps,
                "updates": updates,
                "gamma": gamma,
                "train_wall_s": round(train_wall, 3),
                "final_eval": final.as_dict() if final is not None else None,
            },
        )
        from her_goals.learning_curve import plot_learning_curve

        plot_learning_curve(
            evals, out / "learning_curve.png",
            title=f"her train {cfg.source}: requested-goal success on held-out goals",
        )  # fmt: skip
        if cfg.checkpoint_every > 0:
            _checkpoint(out, learner, cfg, steps)
    return TrainResult(
        config=cfg,
        goal_space=space,
        layout=layout,
        env_steps=steps,
        updates=updates,
        train_wall_s=train_wall,
        eval_wall_s=eval_wall,
        stopped_because=stopped,
        evals=evals,
        final=final,
        artefact=artefact,
        data_hash=buffer.data_hash,
        learner=learner,
    )


def train_offline(
    config: TrainConfig,
    buffer: HerReplayBuffer,
    layout: PolicyLayout,
    n_updates: int,
    *,
    episode_length: int,
    data_hashes: dict[str, str] | None = None,
    env_factory: EnvFactory | None = None,
) -> TrainResult:
    """Train a fresh learner on an already filled buffer (e.g. episodes read from bags).

    The normaliser is fitted to the stored data first. With ``env_factory`` the
    policy is evaluated on held-out requested goals at the end; with
    ``config.out`` an artefact is written whose data hashes name the buffer's
    episodes (plus ``data_hashes``, e.g. the bag files read).
    """
    clock = _Clock()
    if config.torch_threads > 0:
        import torch

        torch.set_num_threads(config.torch_threads)
    gamma = config.resolved_gamma(episode_length)
    learner = make_learner(layout, config, gamma=gamma)
    obs, desired, achieved = buffer.stored()
    learner.normaliser.update(obs, np.concatenate([desired, achieved]))
    stats = train_from_buffer(learner, buffer, n_updates, batch_size=config.batch_size, n_step=config.n_step)
    learner.check_finite(f"update {n_updates} (offline)", stats.metrics)
    train_wall = clock.elapsed()
    final = None
    if env_factory is not None and config.final_eval_episodes > 0:
        policy = DeterministicPolicy(learner.snapshot(), layout, buffer.goal_space)
        final = evaluate(policy, env_factory, config.final_eval_episodes, heldout_seed=FINAL_EVAL_SET)
    artefact = None
    if config.out is not None:
        artefact = save_artefact(
            Path(config.out) / "policy",
            snapshot=learner.snapshot(),
            layout=layout,
            goal_space=buffer.goal_space,
            algorithm=learner.algorithm,
            config=config,
            seeds={"run": config.seed},
            data_hashes={"replay_episodes_sha256": buffer.data_hash, **(data_hashes or {})},
            provenance={
                "offline": True,
                "updates": n_updates,
                "gamma": gamma,
                "train_wall_s": round(train_wall, 3),
                "hindsight_ratio": stats.hindsight_ratio,
                "final_eval": final.as_dict() if final is not None else None,
            },
        )
    return TrainResult(
        config=config,
        goal_space=buffer.goal_space,
        layout=layout,
        env_steps=0,
        updates=n_updates,
        train_wall_s=train_wall,
        eval_wall_s=final.seconds if final is not None else 0.0,
        stopped_because="n_updates",
        evals=[],
        final=final,
        artefact=artefact,
        data_hash=buffer.data_hash,
        learner=learner,
    )


def _mean(window: list[UpdateStats], name: str) -> float:
    values = [getattr(s, name) for s in window if not math.isnan(getattr(s, name))]
    return float(np.mean(values)) if values else math.nan


def _checkpoint(out: Path, learner: Learner, cfg: TrainConfig, steps: int) -> Path:
    import torch

    path = out / "checkpoints" / f"step_{steps:09d}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"learner": learner.state_dict(), "config": to_plain(cfg), "env_steps": steps}, path)
    return path
