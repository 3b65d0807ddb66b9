"""The continuous learner: follows recording sessions, trains while the arm runs, publishes versions.

``her learn --watch SESSION... --out RUN`` (and the fleet's learner) runs this loop:

1. **Ingest.** Every closed episode of the watched sessions (an END on disk, after the
   recorder's per-episode fsync; a torn last episode of a bag being written is not closed
   and waits) goes into the HER replay buffer exactly once, keyed by
   ``(session id, bag, episode id)``.
2. **Train.** Gradient updates keep the update-to-data ratio of the task's preset
   (``updates_per_step`` updates per ingested env step), so learning goes on as data
   arrives and never runs away on a stalled arm.
3. **Publish.** Every ``publish_every`` updates a numbered artefact version is published
   (:mod:`her_policy.artefact.versions`), naming exactly the episodes that trained it;
   the running arm swaps to it between episodes.
4. **Checkpoint.** After each version the learner, its normaliser, the buffer and the set
   of ingested episodes are written atomically to ``RUN/checkpoint``; a learner killed and
   restarted resumes there, re-ingests what came after it, and so loses no episode and
   counts none twice.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from her_goals.episode_arrays import EpisodeArrays
from her_goals.spaces import GoalSpace
from her_goals.tasks import get_task, task_goal_space
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.versions import (
    VERSIONS_DIR,
    EpisodeKey,
    publish_version,
    published,
    trained_on,
    version_name,
)
from her_policy.errors import PolicyError
from her_policy.learn.algorithms import Learner
from her_policy.learn.buffer import HerReplayBuffer
from her_policy.learn.config import TrainConfig, build_train_config
from her_policy.learn.envs import EnvSource, layout_of
from her_policy.learn.offline import load_demos
from her_policy.learn.trainer import CHECKPOINT_DIR, Evaluator, Trainer
from her_recorder.reader import bag_summary, find_bags, read_episodes

CHECKPOINT = CHECKPOINT_DIR


class SessionError(PolicyError):
    """A watched directory that is not a recording session of the learner's task."""


# -- watching sessions ---------------------------------------------------------------------
@dataclass
class _BagState:
    size: int = -1
    mtime_ns: int = -1
    closed: bool = False


@dataclass
class SessionWatcher:
    """Closed episodes of one or more recording sessions, each handed out once."""

    sessions: Sequence[Path]
    seen: set[EpisodeKey] = field(default_factory=set)
    task: str | None = None
    goal_space: GoalSpace | None = None
    _bags: dict[Path, _BagState] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse a watched path that is not (or cannot become) a recording session."""
        for session in self.sessions:
            if session.exists() and not session.is_dir():
                raise SessionError(f"--watch {session}: a file, not a session directory of bags")
            if session.is_dir() and any(session.iterdir()):
                try:
                    find_bags(session)
                except Exception as exc:  # a BagFormatError with the reader's own reason
                    raise SessionError(
                        f"--watch {session} is not a recording session ({exc}); give the "
                        "directory the recorder node or her sim --out writes bags into"
                    ) from None

    def _changed(self, bag: Path) -> bool:
        state = self._bags.setdefault(bag, _BagState())
        if state.closed:
            return False
        files = [f for f in bag.iterdir() if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        mtime = max((f.stat().st_mtime_ns for f in files), default=0)
        if (size, mtime) == (state.size, state.mtime_ns):
            return False
        state.size, state.mtime_ns = size, mtime
        state.closed = (bag / "metadata.yaml").is_file()
        return True

    def poll(self) -> list[tuple[EpisodeKey, EpisodeArrays]]:
        """New closed episodes since the last poll (never one already handed out)."""
        out: list[tuple[EpisodeKey, EpisodeArrays]] = []
        for session in self.sessions:
            if not session.is_dir():
                continue
            for bag in find_bags(session):
                if not self._changed(bag):
                    continue
                meta = bag_summary(bag).meta
                if meta is None:
                    continue  # a bag whose recorder has not written its metadata record yet
                self._check_task(bag, meta.task, meta.goal_space)
                result = read_episodes(bag, goal_space=self.goal_space, log_summary=False)
                # The recorder's session id (kept across resumed recordings): two arms' session
                # directories may share a name, their ids never.
                session_id = meta.session or str(session.resolve())
                for episode in result.episodes:
                    key = (session_id, bag.name, int(episode.episode_id))
                    if key not in self.seen:
                        self.seen.add(key)
                        out.append((key, episode))
        out.sort(key=lambda item: item[0])
        return out

    def _check_task(self, bag: Path, task: str, space: GoalSpace) -> None:
        if self.goal_space is None:
            self.task, self.goal_space = task or self.task, space
            return
        if not space.same_as(self.goal_space) or (task and self.task and task != self.task):
            raise SessionError(
                f"{bag} holds task {task!r} in goal space {space.spec()}, but this learner "
                f"trains {self.task!r} in {self.goal_space.spec()}; watch sessions of one task"
            )


# -- the learner ---------------------------------------------------------------------------
@dataclass
class LearnerStatus:
    """Where a continuous learner is (what ``her learn`` prints and the fleet reports)."""

    episodes: int
    env_steps: int
    updates: int
    version: int
    wall_s: float

    def line(self) -> str:
        return (
            f"{self.episodes} episodes, {self.env_steps} env steps ingested; {self.updates} "
            f"updates; version v{self.version:04d}; {self.wall_s:.0f} s"
        )


class ContinuousLearner:
    """See the module docstring: a :class:`~her_policy.learn.trainer.Trainer` fed by a
    :class:`SessionWatcher`, publishing versions. ``layout`` is the policy's; ``config`` the
    training settings; ``demos`` demonstration episodes sampled as ``config.demo_share`` of
    every batch; ``evaluator`` (optional) measures held-out goals every ``eval_every``
    ingested env steps into ``RUN/train_log.jsonl``."""

    def __init__(
        self,
        sessions: Sequence[Path],
        out: Path,
        config: TrainConfig,
        layout: PolicyLayout,
        *,
        goal_space: GoalSpace,
        task: str,
        episode_length: int,
        publish_every: int = 2000,
        min_transitions: int | None = None,
        demos: Sequence[EpisodeArrays] = (),
        demo_hashes: dict[str, str] | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        if publish_every < 1:
            raise PolicyError(f"publish_every must be >= 1 update, got {publish_every}")
        self.out = Path(out)
        self.config = config
        self.layout = layout
        self.task = task
        self.publish_every = publish_every
        self.watcher = SessionWatcher([Path(s) for s in sessions], task=task, goal_space=goal_space)
        self.watcher.check()
        self.trainer = Trainer(
            config,
            layout,
            goal_space,
            episode_length=episode_length,
            mode="continuous",
            out=self.out,
            evaluator=evaluator,
            demos=demos,
            min_transitions=min_transitions or config.batch_size,
        )
        self.demo_hashes = dict(demo_hashes or {})
        self.version = 0
        self._last_published_at = 0
        self._start = time.monotonic()
        self.resumed = self._resume()

    # The trainer's state, under the names the fleet and the commands read.
    @property
    def learner(self) -> Learner:
        return self.trainer.learner

    @property
    def buffer(self) -> HerReplayBuffer:
        return self.trainer.buffer

    @property
    def gamma(self) -> float:
        return self.trainer.gamma

    @property
    def env_steps(self) -> int:
        return self.trainer.env_steps

    @property
    def updates(self) -> int:
        return self.trainer.updates

    @property
    def versions(self) -> Path:
        return self.out / VERSIONS_DIR

    def status(self) -> LearnerStatus:
        return LearnerStatus(
            len(self.watcher.seen), self.env_steps, self.updates, self.version,
            time.monotonic() - self._start,
        )  # fmt: skip

    # -- one round ---------------------------------------------------------------------
    def ingest(self) -> int:
        """Store every new closed episode; returns how many."""
        new = self.watcher.poll()
        self.trainer.ingest(episode for _, episode in new)
        return len(new)

    def train(self, max_updates: int | None = None) -> int:
        """Updates owed by the update-to-data ratio (at most ``max_updates``); returns how many.

        A periodic held-out evaluation follows when one is due (with an evaluator)."""
        n = self.trainer.pay(max_updates)
        self.trainer.evaluate_if_due()
        return n

    def publish_if_due(self, *, force: bool = False) -> Path | None:
        """Publish a version when ``publish_every`` updates have passed since the last one."""
        due = self.updates - self._last_published_at >= self.publish_every
        if not (due or (force and self.updates > self._last_published_at)):
            return None
        number = max([self.version, *published(self.versions)]) + 1
        staging = self.out / f".staging-v{number:04d}"
        if staging.exists():
            shutil.rmtree(staging)
        self.trainer.save_artefact(
            staging,
            data_hashes=self.demo_hashes,
            provenance={
                "env": f"task:{self.task}",
                "continuous": True,
                "version": number,
                "episodes": len(self.watcher.seen),
            },
        )
        path = publish_version(self.versions, number, staging, sorted(self.watcher.seen))
        self.version = number
        self._last_published_at = self.updates
        self.checkpoint()
        return path

    def step(self, max_updates: int = 200) -> tuple[int, int, Path | None]:
        """One round: ingest, train (at most ``max_updates``), publish if due."""
        n_new = self.ingest()
        n_updates = self.train(max_updates)
        return n_new, n_updates, self.publish_if_due()

    def run(
        self,
        *,
        poll_s: float = 1.0,
        until: Callable[[ContinuousLearner], bool] | None = None,
        report: Callable[[str], Any] | None = None,
    ) -> None:
        """Rounds until ``until(self)`` is true (or Ctrl-C); sleeps ``poll_s`` when idle."""
        while until is None or not until(self):
            n_new, n_updates, version = self.step()
            if version is not None and report is not None:
                report(f"published {version.name}: {self.status().line()}")
            if not n_new and not n_updates:
                time.sleep(poll_s)

    def plot_curve(self) -> Path | None:
        """``RUN/learning_curve.png`` from the periodic evaluations so far (None: none yet)."""
        return self.trainer.plot_curve(title=f"her learn task:{self.task}: requested-goal success on held-out goals")

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint(self) -> Path:
        """Write learner, normaliser, buffer and ingested episodes atomically to RUN/checkpoint."""
        return self.trainer.checkpoint(
            self.out / CHECKPOINT,
            extra={
                "seen": sorted(list(k) for k in self.watcher.seen),
                "version": self.version,
                "last_published_at": self._last_published_at,
            },
        )

    def _resume(self) -> bool:
        state = self.trainer.resume(self.out / CHECKPOINT)
        if state is None:
            return False
        self.watcher.seen = {(str(s), str(b), int(e)) for s, b, e in state["seen"]}
        self.version = int(state["version"])
        self._last_published_at = int(state["last_published_at"])
        return True


def episodes_in(versions: Path, number: int) -> list[EpisodeKey]:
    """The episodes version ``number`` names (for tests and the audit)."""
    return trained_on(versions / version_name(number))


def continuous_learner(
    sessions: Sequence[Path],
    out: Path,
    *,
    task: str,
    overrides: dict[str, Any] | None = None,
    publish_every: int = 2000,
    demos: Sequence[Path] = (),
    evaluate: bool = False,
) -> ContinuousLearner:
    """A continuous learner for a registered task, with the task's training preset.

    ``demos``: bags of demonstration episodes (checked like any training bags against the
    task); ``evaluate``: measure held-out goals in simulation every ``eval_every`` env steps
    (``her learn``; ``her loop`` and ``her fleet`` measure through the arm's own loop)."""
    spec = get_task(task)
    config = build_train_config({"task": task, "progress": False, **(overrides or {})}, demos=bool(demos))
    env = EnvSource(task=task)()
    layout = layout_of(env)
    env.close()
    space = task_goal_space(spec)
    demo_episodes: list[Any] = []
    demo_hashes: dict[str, str] = {}
    if demos:
        data = load_demos(list(demos), task=task, goal_space=space, layout=layout)
        demo_episodes, demo_hashes = data.episodes, data.hashes("demo")
    return ContinuousLearner(
        sessions,
        out,
        config,
        layout,
        goal_space=space,
        task=task,
        episode_length=spec.episode_steps,
        publish_every=publish_every,
        demos=demo_episodes,
        demo_hashes=demo_hashes,
        evaluator=Evaluator(EnvSource(task=task), layout, space) if evaluate else None,
    )
