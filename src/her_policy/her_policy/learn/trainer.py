"""The one training core: ingest episodes, sample, update, evaluate, checkpoint, publish, log.

Every way HER-ROS learns drives one :class:`Trainer` (ARCHITECTURE.md, "learn"):

* ``her train --task T`` (online, :func:`her_policy.learn.train.train`): a collector hands
  it each cycle's episodes;
* ``her train --bags`` (offline, :mod:`her_policy.learn.offline`): the bags' episodes are
  ingested once, then it updates on the fixed data (:meth:`Trainer.run_offline`);
* ``her learn`` / ``her loop`` / ``her fleet`` (continuous, :mod:`her_policy.learn.continuous`):
  a session watcher hands it every closed episode once.

So the things that used to drift between three loops are decided here only:

* **what a batch is**: HER relabelling in the replay buffer (``relabel_strategy``,
  ``replay_k``, ``moving_share``), ``n_step`` returns, and with demonstrations
  (``her train --demos``) a fixed ``demo_share`` of every batch drawn from the demo
  episodes, RLPD's symmetric sampling (:meth:`Trainer.sample`);
* **how many updates**: ``updates_per_step`` gradient updates per ingested env step, earned
  from ``learning_starts`` on (:meth:`Trainer.ingest`) and paid by :meth:`Trainer.pay`;
  offline, a fixed count;
* **when to evaluate**: every ``eval_every`` env steps (offline: every ``eval_every_updates``
  updates) on held-out requested goals (periodic set 1; the final evaluation uses set 0, so
  stopping early at ``target_success`` does not select the goals the final number is
  measured on), written to ``OUT/train_log.jsonl`` and plotted to ``OUT/learning_curve.png``;
* **what a checkpoint is**: learner, normaliser, buffers, counters and the sampling stream,
  written atomically to one directory (:meth:`Trainer.checkpoint`) and read back by
  :meth:`Trainer.resume`;
* **what an artefact names**: the config, seeds, the digest of every episode it learned
  from, demonstrations included (:meth:`Trainer.save_artefact`).

Wall-clock: ``train_wall_s`` excludes evaluation and checkpoint time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from her_goals.config import to_plain
from her_goals.episode_arrays import EpisodeArrays
from her_goals.errors import storage_error
from her_goals.evaluation import TRAIN
from her_goals.learning_curve import plot_learning_curve
from her_goals.provenance import TRAINING_DATA_FILE, TrainingData, episode_digest
from her_goals.spaces import GoalSpace
from her_goals.training_log import LOG_FILE, TrainingLogRow, append_row, read_rows
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.numpy_actor import DeterministicPolicy
from her_policy.artefact.store import save_artefact
from her_policy.artefact.weights import ActorWeights
from her_policy.errors import PolicyError
from her_policy.learn.algorithms import Learner, make_learner
from her_policy.learn.buffer import HerBatch, HerReplayBuffer, concat_batches
from her_policy.learn.config import TrainConfig
from her_policy.learn.envs import EnvFactory
from her_policy.learn.evaluate import EvalResult, evaluate
from her_policy.learn.rundir import CHECKPOINT_DIR
from her_policy.learn.signals import StopSignals

PERIODIC_EVAL_SET = 1
"""Held-out goal set of the periodic evaluations."""
FINAL_EVAL_SET = 0
"""Held-out goal set of the final evaluation (never the periodic one)."""

Mode = Literal["online", "offline", "continuous"]


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


def _mean_of(values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def train_from_buffer(
    learner: Learner,
    buffer: HerReplayBuffer,
    n_updates: int,
    *,
    batch_size: int,
    n_step: int = 1,
    rng: np.random.Generator | None = None,
) -> UpdateStats:
    """``n_updates`` gradient updates of ``learner`` on relabelled batches from ``buffer``
    alone (benchmarks and tests; training runs go through :class:`Trainer`)."""

    def sample(_: int) -> HerBatch:
        return buffer.sample(batch_size, rng, n_step=n_step, gamma=learner.gamma)

    return run_updates(learner, sample, n_updates)


def run_updates(learner: Learner, sample: Callable[[int], HerBatch], n_updates: int) -> UpdateStats:
    """``n_updates`` gradient updates on ``sample(i)`` batches, with their hindsight figures."""
    start = time.perf_counter()
    ratio = 0.0
    pos_o: list[float] = []
    pos_r: list[float] = []
    metrics: dict[str, float] = {}
    for i in range(n_updates):
        batch = sample(i)
        metrics = learner.update(batch, with_metrics=i == n_updates - 1)
        s = batch.stats
        ratio += s.hindsight_ratio
        pos_o.append(s.positive_fraction_original)
        pos_r.append(s.positive_fraction_relabelled)
    return UpdateStats(
        n_updates=n_updates,
        seconds=time.perf_counter() - start,
        hindsight_ratio=ratio / n_updates if n_updates else math.nan,
        positive_fraction_original=_mean_of(pos_o),
        positive_fraction_relabelled=_mean_of(pos_r),
        metrics=metrics,
    )


def make_buffer(
    config: TrainConfig,
    goal_space: GoalSpace,
    layout: PolicyLayout,
    *,
    capacity: int | None = None,
    seed: int | None = None,
) -> HerReplayBuffer:
    """The HER replay buffer ``config`` asks for (the one place its settings are read).

    Refuses a capacity whose full buffer would not fit in this machine's available memory
    (before anything is allocated), naming the size and the fix."""
    rows = config.buffer_capacity if capacity is None else capacity
    need = HerReplayBuffer.bytes_per_row(layout.observation_dim, layout.action_dim, goal_space.dim) * rows
    available = available_memory_bytes()
    if available is not None and need > available:
        raise PolicyError(
            f"buffer_capacity {rows} rows needs {need / 2**30:.1f} GiB when full, but this machine "
            f"has {available / 2**30:.1f} GiB available; lower --buffer-capacity (the data of a run "
            "needs env steps + episodes rows)"
        )
    return HerReplayBuffer(
        goal_space,
        layout.observation_dim,
        layout.action_dim,
        capacity=config.buffer_capacity if capacity is None else capacity,
        strategy=config.relabel_strategy,
        k=config.replay_k,
        relabel_prob=config.relabel_prob,
        moving_share=config.moving_share,
        seed=config.seed if seed is None else seed,
    )


def available_memory_bytes() -> int | None:
    """MemAvailable of this machine (Linux /proc/meminfo); None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rows_needed(episodes: Sequence[EpisodeArrays]) -> int:
    """Buffer rows that hold ``episodes`` (T + 1 per episode of T steps)."""
    return sum(e.n_steps + 1 for e in episodes)


class Evaluator:
    """Requested-goal success of a snapshot on held-out goals of one env factory.

    ``envs`` lends envs already made (e.g. the trainer's probe env); otherwise one is
    made on first use and closed by :meth:`close`.
    """

    def __init__(
        self,
        env_factory: EnvFactory,
        layout: PolicyLayout,
        goal_space: GoalSpace,
        *,
        envs: Sequence[Any] | None = None,
    ) -> None:
        self.env_factory = env_factory
        self.layout = layout
        self.goal_space = goal_space
        self._lent = list(envs) if envs is not None else []
        self._owned: list[Any] = []

    def __call__(self, learner: Learner, n_episodes: int, heldout_set: int) -> EvalResult:
        if not self._lent and not self._owned:
            self._owned = [self.env_factory()]
        policy = DeterministicPolicy(learner.snapshot(), self.layout, self.goal_space)
        envs = self._lent or self._owned
        return evaluate(policy, self.env_factory, n_episodes, envs=envs, heldout_seed=heldout_set)

    def close(self) -> None:
        """Close the envs this evaluator made (lent ones stay open)."""
        for env in self._owned:
            env.close()
        self._owned = []


@dataclass
class TrainResult:
    """Outcome of a training run (any mode)."""

    config: TrainConfig
    goal_space: GoalSpace
    layout: PolicyLayout
    env_steps: int
    """Env steps ingested (offline: the recorded steps learned from)."""
    updates: int
    train_wall_s: float
    """Wall-clock of training from the start (env creation included), evaluation and
    checkpointing excluded."""
    eval_wall_s: float
    stopped_because: str
    evals: list[TrainingLogRow]
    final: EvalResult | None
    artefact: Path | None
    data_hash: str
    learner: Learner = field(repr=False)
    mode: Mode = "online"
    update_cpu_ms: float = math.nan
    """CPU milliseconds per gradient update (batch sampling included)."""

    def summary(self) -> str:
        if self.mode == "offline":
            settings = self.learner.describe()
            method = ", ".join(f"{k} {v}" for k, v in settings.items() if k not in ("algorithm", "gamma"))
            head = (
                f"trained {self.config.algo} offline ({method}) on {self.config.source}: "
                f"{self.updates} updates on {self.env_steps} recorded steps"
            )
        else:
            head = (
                f"trained {self.config.algo} on {self.config.source}: {self.env_steps} env steps, "
                f"{self.updates} updates"
            )
        lines = [
            f"{head}, {self.train_wall_s:.1f} s training wall-clock "
            f"(+{self.eval_wall_s:.1f} s evaluation; {self.update_cpu_ms:.1f} CPU-ms per update); "
            f"stopped: {self.stopped_because}"
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


class _Clock:
    """Wall-clock with excluded intervals (evaluation, checkpoints)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.excluded


class Trainer:
    """The training core; see the module docstring. Drivers call, in a loop,
    :meth:`ingest`, :meth:`pay` (or :meth:`update`), :meth:`evaluate_if_due`,
    :meth:`checkpoint_if_due`, and at the end :meth:`finish`.

    ``demos`` are demonstration episodes (another policy's, a teleoperator's): kept whole
    in their own buffer, never evicted, relabelled like any episode, and sampled as
    ``config.demo_share`` of every batch. ``evaluator`` measures held-out requested goals
    (None: no evaluation, e.g. bags of an env this machine cannot simulate).
    """

    def __init__(
        self,
        config: TrainConfig,
        layout: PolicyLayout,
        goal_space: GoalSpace,
        *,
        episode_length: int,
        mode: Mode = "online",
        out: Path | None = None,
        evaluator: Evaluator | None = None,
        capacity: int | None = None,
        demos: Sequence[EpisodeArrays] = (),
        min_transitions: int = 0,
        on_eval: Callable[[TrainingLogRow, Learner], None] | None = None,
        log: bool = True,
    ) -> None:
        cfg = config
        self.clock = _Clock()
        self.config = cfg
        self.layout = layout
        self.goal_space = goal_space
        self.mode: Mode = mode
        self.out = Path(out) if out is not None else None
        self.evaluator = evaluator
        self.on_eval = on_eval
        self.min_transitions = int(min_transitions)
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        self.episode_length = int(episode_length)
        self.gamma = cfg.resolved_gamma(self.episode_length)
        self.buffer = make_buffer(cfg, goal_space, layout, capacity=capacity)
        self.learner: Learner = make_learner(layout, cfg, gamma=self.gamma)
        self._trained_on: list[tuple[Any, int, str, str]] = []
        """(requested goal, episode digest, split, source) of every episode ingested."""
        self.demo_buffer: HerReplayBuffer | None = None
        if demos:
            # Its own stream: adding demos leaves the online sampling sequence unchanged.
            self.demo_buffer = make_buffer(
                cfg, goal_space, layout, capacity=max(2, rows_needed(demos)), seed=cfg.seed + 7919
            )
            for episode in demos:
                self._store(self.demo_buffer, episode, "demo")
        self.env_steps = 0
        self.updates = 0
        self.update_cpu_s = 0.0
        """CPU time of this process in gradient updates (sampling included)."""
        self._credit = 0.0
        self.evals: list[TrainingLogRow] = []
        self._recent_success: list[float] = []
        self._recent_cost: list[float] = []
        """Safety cost summed over each recent training episode (NaN where none was recorded)."""
        self.cost_multiplier = 0.0
        """The Lagrange multiplier of ``cost_budget`` (0 without one): added to ``cost_penalty``."""
        self._window: list[UpdateStats] = []
        self._next_eval = self._first(cfg.eval_every_updates if mode == "offline" else cfg.eval_every)
        self._next_ckpt = self._first(cfg.checkpoint_every)
        self.eval_wall_s = 0.0
        self._best: tuple[TrainingLogRow, ActorWeights] | None = None
        """The periodic evaluation with the highest success so far and the actor it measured."""
        self.log_path = self.out / LOG_FILE if (self.out is not None and log) else None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _first(every: int) -> float:
        return every if every > 0 else math.inf

    # -- data ----------------------------------------------------------------------------
    @property
    def demo_share(self) -> float:
        """Share of each batch drawn from the demonstrations (0 without them)."""
        return self.config.demo_share if self.demo_buffer is not None else 0.0

    @property
    def n_demo_episodes(self) -> int:
        return self.demo_buffer.n_episodes if self.demo_buffer is not None else 0

    def _store(self, buffer: HerReplayBuffer, episode: EpisodeArrays, source: str) -> None:
        buffer.add(episode)
        self._trained_on.append(
            (
                episode.desired_goal[0],
                episode_digest(episode.observation, episode.action, episode.desired_goal[0]),
                str(getattr(episode, "split", "") or TRAIN),
                source,
            )
        )
        self.learner.normaliser.update(
            np.concatenate([episode.observation, episode.next_observation[-1:]]),
            np.concatenate([episode.desired_goal, episode.next_achieved_goal]),
        )

    def ingest(self, episodes: Iterable[EpisodeArrays]) -> int:
        """Store episodes (buffer and normaliser) and earn their updates; returns their steps.

        Updates are earned at ``updates_per_step`` per env step once ``learning_starts``
        steps are in (the steps of the episode that crosses it included), and paid by
        :meth:`pay`.
        """
        new_steps = 0
        source = "bags" if self.mode == "offline" else "experience"
        batch_costs = []
        for episode in episodes:
            self._store(self.buffer, episode, source)
            new_steps += episode.n_steps
            self._recent_success.append(episode.success)
            cost = episode.safety_cost
            self._recent_cost.append(math.nan if cost is None else float(np.sum(cost)))
            if cost is not None:
                batch_costs.append(float(np.sum(cost)))
        budget = self.config.cost_budget
        if budget is not None and batch_costs and self.mode != "offline":
            # Dual ascent on the per-episode budget, from the episodes just collected.
            excess = float(np.mean(batch_costs)) - budget
            self.cost_multiplier = max(0.0, self.cost_multiplier + self.config.cost_multiplier_lr * excess)
        self.env_steps += new_steps
        self._recent_success = self._recent_success[-10 * max(1, self.config.n_envs) :]
        self._recent_cost = self._recent_cost[-10 * max(1, self.config.n_envs) :]
        if self.env_steps >= self.config.learning_starts:
            self._credit += self.config.updates_per_step * new_steps
        return new_steps

    @property
    def owed(self) -> int:
        """Gradient updates earned and not yet made."""
        return int(self._credit)

    # -- updates -------------------------------------------------------------------------
    @property
    def cost_weight(self) -> float:
        """Weight of a step's safety cost in the learner's reward: ``cost_penalty`` plus the
        ``cost_budget`` multiplier (0 unless one of them is on)."""
        return self.config.cost_penalty + self.cost_multiplier

    def sample(self, batch_size: int | None = None) -> HerBatch:
        """One training batch: relabelled, n-step, ``demo_share`` of it from the demos."""
        cfg = self.config
        size = cfg.batch_size if batch_size is None else batch_size
        weight = self.cost_weight
        if self.demo_buffer is None:
            return self.buffer.sample(size, n_step=cfg.n_step, gamma=self.gamma, cost_weight=weight)
        n_demo = size if self.buffer.n_transitions == 0 else round(self.demo_share * size)
        parts = []
        if n_demo:
            parts.append(self.demo_buffer.sample(
                n_demo, n_step=cfg.n_step, gamma=self.gamma, prior=True, cost_weight=weight))
        if size - n_demo:
            parts.append(self.buffer.sample(size - n_demo, n_step=cfg.n_step, gamma=self.gamma, cost_weight=weight))
        return parts[0] if len(parts) == 1 else concat_batches(parts)

    def update(self, n_updates: int) -> UpdateStats:
        """``n_updates`` gradient updates now (whatever is owed), checked for divergence."""
        cpu = time.process_time()
        stats = run_updates(self.learner, lambda _: self.sample(), n_updates)
        self.update_cpu_s += time.process_time() - cpu
        self.updates += n_updates
        where = f"env step {self.env_steps}, update {self.updates}" if self.mode != "offline" else f"update {self.updates} (offline)"
        self.learner.check_finite(where, stats.metrics)
        self._window = [*self._window[-9:], stats]
        return stats

    def pay(self, max_updates: int | None = None) -> int:
        """Make the owed updates (at most ``max_updates``); returns how many were made."""
        if self.buffer.n_transitions + (self.demo_buffer.n_transitions if self.demo_buffer else 0) < max(1, self.min_transitions):
            return 0
        n = self.owed if max_updates is None else min(self.owed, max_updates)
        if n <= 0:
            return 0
        self._credit -= n
        self.update(n)
        return n

    # -- evaluation and the training log -------------------------------------------------
    @property
    def progress(self) -> int:
        """What the evaluation and checkpoint schedules count: updates offline, env steps else."""
        return self.updates if self.mode == "offline" else self.env_steps

    def eval_due(self) -> bool:
        return self.progress >= self._next_eval

    def evaluate_if_due(self, *, force: bool = False) -> TrainingLogRow | None:
        """A periodic evaluation when one is due (``force``: now, if periodic ones are on)."""
        every = self.config.eval_every_updates if self.mode == "offline" else self.config.eval_every
        if self.evaluator is None or every <= 0 or not (force or self.eval_due()):
            return None
        row = self.evaluate_now()
        while self._next_eval <= self.progress:
            self._next_eval += every
        return row

    def evaluate_now(self) -> TrainingLogRow:
        """Evaluate on the periodic held-out set, append the row to the log, call on_eval."""
        if self.evaluator is None:
            raise PolicyError("this trainer has no evaluator: it cannot measure held-out goals")
        wall = self.clock.elapsed()
        t0 = time.perf_counter()
        result = self.evaluator(self.learner, self.config.eval_episodes, PERIODIC_EVAL_SET)
        window = self._window
        metrics = {**(window[-1].metrics if window else {}), **self.probe()}
        if self.config.cost_budget is not None:
            metrics["cost_multiplier"] = self.cost_multiplier
        row = TrainingLogRow(
            env_steps=self.env_steps,
            updates=self.updates,
            train_wall_s=wall,
            requested_success=result.requested_success,
            ci_low=result.ci_low,
            ci_high=result.ci_high,
            n_episodes=result.n_episodes,
            hindsight_ratio=_mean_of(s.hindsight_ratio for s in window),
            positive_fraction_relabelled=_mean_of(s.positive_fraction_relabelled for s in window),
            positive_fraction_original=_mean_of(s.positive_fraction_original for s in window),
            train_episode_success=_mean_of(self._recent_success) if self._recent_success else math.nan,
            moving_fraction=self.buffer.moving_fraction,
            train_episode_cost=_mean_of(self._recent_cost) if self._recent_cost else math.nan,
            metrics=metrics,
        )
        self.evals.append(row)
        if self._best is None or row.requested_success > self._best[0].requested_success:
            self._best = (row, self.learner.snapshot())
        if self.log_path is not None:
            try:
                append_row(self.log_path, row)
            except OSError as exc:
                raise storage_error(self.log_path, exc, kept="the last checkpoint is kept") from None
        if self.on_eval is not None:
            self.on_eval(row, self.learner)
        spent = time.perf_counter() - t0
        self.clock.excluded += spent
        self.eval_wall_s += spent
        return row

    def probe(self, n: int = 1024) -> dict[str, float]:
        """Diagnostics of what the learner sees, on a batch of the learner's own data that
        keeps the requested goals (its own sampling stream: training is not perturbed): the
        critic's Q of data and policy actions against the data's discounted return to go
        (``return_data``), the share of policy Q above 0 and the policy-data action gap."""
        buffer = self.buffer if self.buffer.n_transitions else self.demo_buffer
        if buffer is None or buffer.n_transitions == 0:
            return {}
        rng = np.random.default_rng([self.config.seed, self.updates, 0xD1A6])
        rows = buffer.sample_rows(n, rng)
        batch = buffer.sample(n, rng, rows=rows, relabel_prob=0.0)
        out = self.learner.probe(batch)
        out["return_data"] = float(buffer.return_to_go(rows, batch.desired_goal, self.gamma).mean())
        return out

    def reached_target(self) -> bool:
        """The last ``target_checks`` periodic evaluations all reached ``target_success``."""
        target, checks = self.config.target_success, self.config.target_checks
        last = self.evals[-checks:]
        return target is not None and len(last) == checks and all(r.requested_success >= target for r in last)

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint_if_due(
        self,
        driver: Callable[[], tuple[dict[str, Any], dict[str, Callable[[Path], None]]]] | None = None,
    ) -> Path | None:
        """A checkpoint when ``checkpoint_every`` has passed; ``driver()`` gives the driver's
        own (extra state, files) to put in it."""
        if self.out is None or self.progress < self._next_ckpt:
            return None
        extra, files = driver() if driver is not None else ({}, {})
        path = self.checkpoint(extra=extra, files=files)
        while self._next_ckpt <= self.progress:
            self._next_ckpt += self.config.checkpoint_every
        return path

    def checkpoint(
        self,
        path: Path | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        files: Mapping[str, Callable[[Path], None]] | None = None,
        finished: bool = False,
    ) -> Path:
        """Write learner, normaliser, buffers, counters and sampling streams atomically.

        The directory (default ``OUT/checkpoint``) is replaced as a whole: a crash leaves the
        previous one (or ``.checkpoint.old`` beside it), never a torn one. ``extra`` goes into
        its state, ``files`` (name -> writer) beside it (a driver's own state: the collector's
        streams, the weights of an in-flight collection). A full disk raises
        :class:`~her_goals.errors.StorageError` naming the path and saying the previous
        checkpoint is kept.
        """
        try:
            return self._checkpoint(path, extra, files, finished)
        except OSError as exc:
            where = path or (self.out / CHECKPOINT_DIR if self.out else "checkpoint")
            raise storage_error(where, exc, kept="the previous checkpoint, if any, is kept") from None

    def _checkpoint(
        self,
        path: Path | None,
        extra: Mapping[str, Any] | None,
        files: Mapping[str, Callable[[Path], None]] | None,
        finished: bool,
    ) -> Path:
        t0 = time.perf_counter()
        if path is None:
            if self.out is None:
                raise PolicyError("checkpoint: this trainer has no output directory")
            path = self.out / CHECKPOINT_DIR
        final = Path(path)
        tmp = final.with_name(f".{final.name}.tmp")
        old = final.with_name(f".{final.name}.old")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        torch.save(self.learner.state_dict(), tmp / "learner.pt")
        torch.save(torch.get_rng_state(), tmp / "torch_rng.pt")
        self.buffer.save(str(tmp / "buffer.npz"))
        if self._best is not None:
            self._best[1].save(tmp / "best_actor.npz")
        for name, write in (files or {}).items():
            write(tmp / name)
        if self.demo_buffer is not None:
            self.demo_buffer.save(str(tmp / "demo_buffer.npz"))
        self.training_data().save(tmp / TRAINING_DATA_FILE)
        state = {
            "mode": self.mode,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "credit": self._credit,
            "next_eval": None if math.isinf(self._next_eval) else self._next_eval,
            "recent_success": self._recent_success,
            "recent_cost": self._recent_cost,
            "cost_multiplier": self.cost_multiplier,
            "buffer_rng": self.buffer.rng.bit_generator.state,
            "demo_rng": self.demo_buffer.rng.bit_generator.state if self.demo_buffer else None,
            "config": to_plain(self.config),
            "finished": finished,
            "train_wall_s": self.clock.elapsed(),
            "update_cpu_s": self.update_cpu_s,
            "evals": len(self.evals),
            "best_eval": None if self._best is None else self.evals.index(self._best[0]),
            **dict(extra or {}),
        }
        (tmp / "state.json").write_text(json.dumps(state, default=int))
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)
        spent = time.perf_counter() - t0
        self.clock.excluded += spent
        return final

    def resume(self, path: Path | None = None) -> dict[str, Any] | None:
        """Load the checkpoint at ``path`` (default ``OUT/checkpoint``, or the ``.old`` one a
        crash during a checkpoint left); returns its state (None: no checkpoint there)."""
        if path is None:
            if self.out is None:
                return None
            path = self.out / CHECKPOINT_DIR
        path = Path(path)
        for candidate in (path, path.with_name(f".{path.name}.old")):
            if (candidate / "state.json").is_file():
                break
        else:
            return None
        state: dict[str, Any] = json.loads((candidate / "state.json").read_text())
        self.learner.load_state_dict(torch.load(candidate / "learner.pt", weights_only=False))
        self.buffer.load(str(candidate / "buffer.npz"))
        if self.demo_buffer is not None and (candidate / "demo_buffer.npz").is_file():
            self.demo_buffer.load(str(candidate / "demo_buffer.npz"))
        if (candidate / TRAINING_DATA_FILE).is_file():
            seen = TrainingData.load(candidate / TRAINING_DATA_FILE)
            self._trained_on = [
                (g, int(d), str(sp), str(so))
                for g, d, sp, so in zip(seen.goals, seen.digests, seen.splits, seen.sources)
            ]
        if (candidate / "torch_rng.pt").is_file():
            torch.set_rng_state(torch.load(candidate / "torch_rng.pt", weights_only=False))
        self.env_steps = int(state["env_steps"])
        self.updates = int(state["updates"])
        self.update_cpu_s = float(state.get("update_cpu_s", 0.0))
        self.clock.start = time.perf_counter() - float(state.get("train_wall_s", 0.0))
        self.clock.excluded = 0.0
        self._resume_log(int(state.get("evals", 0)))
        best = state.get("best_eval")
        if best is not None and (candidate / "best_actor.npz").is_file() and best < len(self.evals):
            self._best = (self.evals[best], ActorWeights.load(candidate / "best_actor.npz"))
        self._credit = float(state.get("credit", 0.0))
        self._recent_success = [float(s) for s in state.get("recent_success", [])]
        self._recent_cost = [float(c) for c in state.get("recent_cost", [])]
        self.cost_multiplier = float(state.get("cost_multiplier", 0.0))
        if state.get("next_eval") is not None:
            self._next_eval = float(state["next_eval"])
        if state.get("buffer_rng"):
            self.buffer.rng.bit_generator.state = state["buffer_rng"]
        if self.demo_buffer is not None and state.get("demo_rng"):
            self.demo_buffer.rng.bit_generator.state = state["demo_rng"]
        return state

    def _resume_log(self, n_rows: int) -> None:
        """The first ``n_rows`` rows of the training log are the resumed run's evaluations;
        rows written after the checkpoint (by the interrupted run) are dropped from the log."""
        self.evals = []
        if self.log_path is None or not self.log_path.is_file():
            return
        rows = read_rows(self.log_path)[:n_rows]
        self.evals = rows
        tmp = self.log_path.with_name(f".{self.log_path.name}.tmp")
        tmp.unlink(missing_ok=True)
        for row in rows:
            append_row(tmp, row)
        if not rows:
            tmp.write_text("")
        os.replace(tmp, self.log_path)

    @property
    def best(self) -> tuple[TrainingLogRow, ActorWeights] | None:
        """The best periodic evaluation so far and the actor it measured (None before one)."""
        return self._best

    # -- artefacts -----------------------------------------------------------------------
    def training_data(self) -> TrainingData:
        """Every episode this learner trained on: requested goal, digest, split, source."""
        rows = self._trained_on
        dim = self.goal_space.dim
        return TrainingData(
            goals=np.array([r[0] for r in rows], np.float64).reshape(len(rows), dim),
            digests=np.array([r[1] for r in rows], np.int64),
            splits=np.array([r[2] for r in rows], dtype=str),
            sources=np.array([r[3] for r in rows], dtype=str),
        )

    def data_hashes(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Digests of every episode the policy learned from (demonstrations separately)."""
        out = {"replay_episodes_sha256": self.buffer.data_hash}
        if self.demo_buffer is not None:
            out["demo_episodes_sha256"] = self.demo_buffer.data_hash
        return {**out, **dict(extra or {})}

    def save_artefact(
        self,
        path: Path,
        *,
        seeds: Mapping[str, Any] | None = None,
        data_hashes: Mapping[str, str] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Path:
        """The current actor as a policy artefact naming its config, seeds and data."""
        extra: dict[str, Any] = {
            "mode": self.mode,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "gamma": self.gamma,
            "algorithm_settings": self.learner.describe(),
        }
        if self.demo_buffer is not None:
            extra["demos"] = {"episodes": self.n_demo_episodes, "share": self.demo_share}
        try:
            return self._save_artefact(path, seeds, data_hashes, {**extra, **dict(provenance or {})})
        except OSError as exc:
            raise storage_error(path, exc, kept="the previous artefact there, if any, is unchanged") from None

    def _save_artefact(
        self,
        path: Path,
        seeds: Mapping[str, Any] | None,
        data_hashes: Mapping[str, str] | None,
        provenance: Mapping[str, Any],
    ) -> Path:
        return save_artefact(
            path,
            snapshot=self.learner.snapshot(),
            layout=self.layout,
            goal_space=self.goal_space,
            algorithm=self.learner.algorithm,
            config=self.config,
            seeds={"run": self.config.seed, **dict(seeds or {})},
            data_hashes=self.data_hashes(data_hashes),
            provenance=dict(provenance),
            training_data=self.training_data(),
        )

    def plot_curve(self, *, title: str | None = None) -> Path | None:
        """``OUT/learning_curve.png`` of the periodic evaluations (offline: against updates)."""
        if self.out is None:
            return None
        return plot_learning_curve(
            self.evals, self.out / "learning_curve.png",
            title=title or f"her train {self.config.source}: requested-goal success on held-out goals",
            x="updates" if self.mode == "offline" else "env_steps",
        )  # fmt: skip

    # -- the end -------------------------------------------------------------------------
    def finish(
        self,
        stopped_because: str,
        *,
        seeds: Mapping[str, Any] | None = None,
        data_hashes: Mapping[str, str] | None = None,
        provenance: Mapping[str, Any] | None = None,
        title: str | None = None,
    ) -> TrainResult:
        """Final evaluation (held-out set 0), artefact, learning curve and checkpoint."""
        cfg = self.config
        train_wall = self.clock.elapsed()
        final = None
        if self.evaluator is not None and cfg.final_eval_episodes > 0:
            final = self.evaluator(self.learner, cfg.final_eval_episodes, FINAL_EVAL_SET)
            self.eval_wall_s += final.seconds
        artefact = None
        if self.out is not None:
            artefact = self.save_artefact(
                self.out / "policy",
                seeds={
                    "periodic_eval_set": PERIODIC_EVAL_SET,
                    "final_eval_set": FINAL_EVAL_SET,
                    **dict(seeds or {}),
                },
                data_hashes=data_hashes,
                provenance={
                    "train_wall_s": round(train_wall, 3),
                    "update_cpu_ms": round(1000 * self.update_cpu_s / max(1, self.updates), 3),
                    "stopped_because": stopped_because,
                    "final_eval": final.as_dict() if final is not None else None,
                    **dict(provenance or {}),
                },
            )
            self.plot_curve(title=title)
            if cfg.checkpoint_every > 0:
                self.checkpoint(finished=True)
        if self.evaluator is not None:
            self.evaluator.close()
        return TrainResult(
            config=cfg,
            goal_space=self.goal_space,
            layout=self.layout,
            env_steps=self.env_steps,
            updates=self.updates,
            train_wall_s=train_wall,
            eval_wall_s=self.eval_wall_s,
            stopped_because=stopped_because,
            evals=self.evals,
            final=final,
            artefact=artefact,
            data_hash=self.buffer.data_hash,
            learner=self.learner,
            mode=self.mode,
            update_cpu_ms=1000 * self.update_cpu_s / self.updates if self.updates else math.nan,
        )

    def finish_interrupted(
        self,
        *,
        extra: Mapping[str, Any] | None = None,
        files: Mapping[str, Callable[[Path], None]] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> TrainResult:
        """Stop where the run is (a signal): checkpoint, and the best-so-far policy as the
        artefact, said as such (the actor of the best periodic evaluation, or the current one
        before any); no final evaluation. Running the same command again resumes."""
        train_wall = self.clock.elapsed()
        artefact = None
        if self.out is not None:
            self.checkpoint(extra=extra, files=files)
            best = self._best
            chosen: dict[str, Any] = {"interrupted": True, "resume": "run the same command again"}
            if best is not None:
                chosen["policy_is"] = (
                    f"best so far: periodic evaluation {best[0].requested_success:.3f} on "
                    f"{best[0].n_episodes} held-out goals (set {PERIODIC_EVAL_SET}) at env step "
                    f"{best[0].env_steps}, update {best[0].updates}"
                )
            else:
                chosen["policy_is"] = "the current actor (no periodic evaluation yet)"
            snapshot = best[1] if best is not None else self.learner.snapshot()
            try:
                artefact = save_artefact(
                    self.out / "policy",
                    snapshot=snapshot,
                    layout=self.layout,
                    goal_space=self.goal_space,
                    algorithm=self.learner.algorithm,
                    config=self.config,
                    seeds={"run": self.config.seed},
                    data_hashes=self.data_hashes(),
                    provenance={"mode": self.mode, "env_steps": self.env_steps, "updates": self.updates,
                                "train_wall_s": round(train_wall, 3), **chosen, **dict(provenance or {})},
                    training_data=self.training_data(),
                )  # fmt: skip
            except OSError as exc:
                raise storage_error(self.out / "policy", exc, kept="the checkpoint is written") from None
            self.plot_curve()
        if self.evaluator is not None:
            self.evaluator.close()
        return TrainResult(
            config=self.config, goal_space=self.goal_space, layout=self.layout,
            env_steps=self.env_steps, updates=self.updates, train_wall_s=train_wall,
            eval_wall_s=self.eval_wall_s, stopped_because="interrupted", evals=self.evals,
            final=None, artefact=artefact, data_hash=self.buffer.data_hash, learner=self.learner,
            mode=self.mode,
            update_cpu_ms=1000 * self.update_cpu_s / self.updates if self.updates else math.nan,
        )  # fmt: skip

    # -- offline -------------------------------------------------------------------------
    def run_offline(
        self, n_updates: int, *, chunk: int = 100, progress: Any = None, stop: StopSignals | None = None
    ) -> str:
        """``n_updates`` updates on the stored data with the periodic evaluations between
        chunks; returns why it stopped (``n_updates``, ``max_wall_s``, ``target_success`` or,
        when ``stop`` was signalled, ``interrupted``)."""
        cfg = self.config
        while self.updates < n_updates:
            if stop is not None and stop.requested:
                return "interrupted"
            n = min(chunk, n_updates - self.updates)
            if self.evaluator is not None and cfg.eval_every_updates > 0 and math.isfinite(self._next_eval):
                n = min(n, max(1, int(self._next_eval) - self.updates))  # stop at the evaluation
            self.update(n)
            if progress is not None:
                progress.update(n)
            last = self.updates >= n_updates
            walled = cfg.max_wall_s is not None and self.clock.elapsed() >= cfg.max_wall_s
            row = self.evaluate_if_due(force=last or walled)
            if row is not None and progress is not None:
                progress.set_postfix(success=f"{row.requested_success:.2f}")
            self.checkpoint_if_due()
            if walled:
                return "max_wall_s"
            if row is not None and self.reached_target():
                return "target_success"
        return "n_updates"
