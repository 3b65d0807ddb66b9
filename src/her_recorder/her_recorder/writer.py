"""The episode recorder: goal-conditioned episodes into crash-safe rosbag2 (MCAP) bags.

A *session* is a directory of bags ``bag_0000/``, ``bag_0001/``, ... Each bag is
an ordinary rosbag2 directory (metadata version 9, one MCAP file) written by
rosbags, so ``ros2 bag info`` and ``ros2 bag play`` read it.

Durability: the rosbags MCAP writer keeps the current chunk in memory (up to
1 MiB) and writes ``metadata.yaml`` and the MCAP summary only on close, so a
killed process would lose the chunk and leave a file the rosbags reader refuses.
Therefore every episode boundary (END, ABORT, DISCARD) closes the chunk, flushes
and ``fsync``\\ s the file before :meth:`EpisodeRecorder.end_episode` returns: a
completed episode is on disk in whole, intact chunks. After a crash
:func:`her_recorder.recover.recover_bag` cuts the file at the last intact record,
appends the summary and rebuilds ``metadata.yaml``; readers read an unrecovered
bag with a tolerant scan and say so.

A full disk (or a read-only or vanished output) is a :class:`~her_goals.errors.StorageError`,
raised from the call that wrote and from every call after it: the recorder stops writing,
closes the open bag's file without writing more into it (the bag then needs
``her bag recover``, which keeps every episode whose boundary reached the disk) and says
how many completed episodes of this run are on disk, and where.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import re
import struct
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Writer
from rosbags.typesys import TypesysError
from rosbags.typesys.store import Typestore

from her_goals import GoalSpace
from her_goals.config import config_hash
from her_goals.errors import (
    GoalError,
    GoalShapeError,
    NonFiniteGoalError,
    StorageError,
    storage_error,
)
from her_goals.evaluation import NO_INDEX, EvaluationPlan
from her_recorder import cdr
from her_recorder import interfaces as ifc
from her_recorder.bagmeta import MCAP_METADATA_NAME, BagMeta
from her_recorder.errors import (
    BagMismatchError,
    NonFiniteStepError,
    RecorderError,
    StepShapeError,
)
from her_recorder.mcapscan import metadata_record
from her_recorder.reader import bag_summary
from her_recorder.recover import recover_bag
from her_recorder.rosbags_adapter import DurableMcap, open_mcap

log = logging.getLogger("her_recorder")

BAG_NAME = re.compile(r"^bag_(\d{4,})$")


def bag_name(index: int) -> str:
    """Directory name of the ``index``-th bag of a session."""
    return f"bag_{index:04d}"


def _sec_nanosec(stamp_ns: int) -> tuple[int, int]:
    if stamp_ns < 0:
        raise RecorderError(
            f"stamps are integer nanoseconds >= 0, got {stamp_ns}: pass time.time_ns() or "
            "leave stamp_ns out"
        )
    return divmod(int(stamp_ns), 1_000_000_000)


def stamp(stamp_ns: int) -> Any:
    """A ``std_msgs/Header`` stamp (``builtin_interfaces/Time``) from integer nanoseconds."""
    sec, nanosec = _sec_nanosec(stamp_ns)
    return ifc.typestore().types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def header(stamp_ns: int, frame_id: str) -> Any:
    """A ``std_msgs/Header`` from integer nanoseconds and a frame id."""
    return ifc.typestore().types["std_msgs/msg/Header"](stamp=stamp(stamp_ns), frame_id=frame_id)


def _vector(value: ArrayLike, what: str) -> NDArray[np.float64]:
    if type(value) is np.ndarray and value.dtype == np.float64 and value.ndim == 1:
        return value  # what a control loop passes: nothing to convert
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1:
        raise StepShapeError(
            f"{what} must be a vector, got shape {arr.shape}: pass one row (flatten it)"
        )
    return np.ascontiguousarray(arr.reshape(-1))


def _desired_goal(space: GoalSpace, value: ArrayLike) -> NDArray[np.float64]:
    """``value`` checked by the goal space; its errors re-raised as her_recorder errors."""
    try:
        return space.check(_vector(value, "desired_goal"), "desired_goal")
    except NonFiniteGoalError as exc:
        raise NonFiniteStepError(f"{exc}; start the episode with a finite goal") from None
    except GoalShapeError as exc:
        raise StepShapeError(
            f"{exc}; start the episode with a goal of goal space {space.name!r} ({space.dim},)"
        ) from None


class RecordedEpisode(NamedTuple):
    """What :meth:`EpisodeRecorder.end_episode` (and abort/discard) recorded."""

    episode_id: int
    num_steps: int
    success: bool
    reason: str
    bag: Path


@dataclass
class _Episode:
    episode_id: int
    desired_goal: NDArray[np.float64]
    split: str = ""
    stream_index: int = NO_INDEX
    num_steps: int = 0
    last_next_achieved: NDArray[np.float64] | None = None
    last_stamp_ns: int = 0
    pending: list[_PendingStep] = dataclasses.field(default_factory=list)
    """Step messages encoded and not yet emitted (EpisodeRecorder._flush_steps)."""


@dataclass
class _PendingStep:
    """An encoded Step (or true achieved goal, ``next_achieved`` empty) not yet written; a
    nonzero ``reward_at``/``success_at`` is the byte offset of a field the goal space fills."""

    stamp_ns: int
    data: bytes
    next_achieved: bytes
    reward_at: int
    success_at: int


_PENDING_STEPS = 256
"""Steps held before their rewards are computed and they are written (and at every episode end)."""
_F32 = struct.Struct("<f")


class _Bag:
    """One rosbag2 directory being written, with episode-boundary durability."""

    def __init__(
        self,
        path: Path,
        *,
        meta: BagMeta,
        compression: Literal["none", "zstd"],
        fsync: bool,
        store: Typestore,
    ) -> None:
        self.path = path
        self.meta = meta
        self.compression = compression
        self.fsync = fsync
        self.store = store
        self.writer: Writer | None = None
        self.storage: DurableMcap | None = None
        self.connections: dict[str, Connection] = {}
        self.episode_ids: dict[str, list[int]] = {"ended": [], "aborted": [], "discarded": []}

    @property
    def mcap_path(self) -> Path:
        """The bag's MCAP file (rosbags names it after the bag directory)."""
        return self.path / f"{self.path.name}.mcap"

    def open(self) -> None:
        self.writer, self.storage = open_mcap(self.path, zstd=self.compression == "zstd")
        # The HER description goes into the data section right after the MCAP
        # header, so it survives a crash; metadata.yaml only exists after close.
        self.storage.append_record(metadata_record(MCAP_METADATA_NAME, self.meta.to_strings()))
        self.sync()
        if self.fsync:
            _fsync_dir(self.path)
            _fsync_dir(self.path.parent)

    def write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes | memoryview) -> None:
        assert self.writer is not None
        conn = self.connections.get(topic)
        if conn is None:
            try:
                msgdef, rihs01 = ifc.message_definition(msgtype, self.store)
            except TypesysError as exc:
                raise RecorderError(
                    f"cannot record {topic}: {exc}; record only types of the ROS 2 Jazzy "
                    "typestore or her_interfaces"
                ) from None
            conn = self.writer.add_connection(
                topic,
                msgtype,
                msgdef=msgdef,
                rihs01=rihs01,
                offered_qos_profiles=ifc.offered_qos(topic),
            )
            self.connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise RecorderError(
                f"topic {topic} is recorded as {conn.msgtype}; cannot also write {msgtype} to it "
                "(record the other type on another topic)"
            )
        assert self.storage is not None
        self.storage.write_message(conn, stamp_ns, data)

    def sync(self, *, durable: bool = True) -> None:
        """Close the chunk and flush it to the OS (survives a killed process);
        with ``durable`` also ``fsync`` it (survives power loss, if enabled)."""
        assert self.storage is not None
        self.storage.sync(fsync=durable and self.fsync)

    @property
    def size_bytes(self) -> int:
        return 0 if self.storage is None else self.storage.size_bytes

    @property
    def num_episodes(self) -> int:
        return sum(len(ids) for ids in self.episode_ids.values())

    def abandon(self) -> None:
        """Close the file without writing more into it (after a failed write): what reached
        the disk stays as it is, for ``her bag recover``."""
        storage, self.writer, self.storage = self.storage, None, None
        if storage is not None:
            storage.abandon()

    def close(self, *, dropped_messages: int) -> None:
        writer = self.writer
        if writer is None:
            return
        ids = [i for v in self.episode_ids.values() for i in v]
        episodes = {k: len(v) for k, v in self.episode_ids.items()}
        if ids:
            episodes.update(first_id=min(ids), last_id=max(ids))
        meta = dataclasses.replace(self.meta, episodes=episodes, dropped_messages=dropped_messages)
        for key, value in meta.to_strings().items():
            writer.set_custom_data(key, value)
        storage, self.writer, self.storage = self.storage, None, None
        try:
            writer.close()
        except OSError:  # the summary did not fit: the file stays as it is, for her bag recover
            if storage is not None:
                storage.abandon()
            raise
        if self.fsync:
            with (self.path / "metadata.yaml").open("rb") as fh:
                os.fsync(fh.fileno())
            _fsync_dir(self.path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_STOP = object()


class EpisodeRecorder:
    """Record goal-conditioned episodes into a session directory of rosbag2 bags.

    Usage::

        with EpisodeRecorder("runs/reach", goal_space=space, task="reach") as rec:
            rec.start_episode(desired_goal)
            for ...:
                rec.record_step(observation=o, next_observation=o2, action_raw=a,
                                achieved_goal=ag, next_achieved_goal=ag2)
            rec.end_episode()            # durable on disk when this returns

    Like rosbags' writer, ``__init__`` does no I/O; :meth:`open`/:meth:`close` (or
    the context manager) own the files. With ``queue_size > 0`` messages are
    serialised and written by a background thread, so a control loop or ROS
    callback never waits for the disk; a full queue drops the message and counts
    it in :attr:`dropped_messages` (logged on close and stored in the bag).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        goal_space: GoalSpace,
        task: str,
        config: Any = None,
        seeds: Any = None,
        plan: EvaluationPlan | None = None,
        max_episodes_per_bag: int | None = None,
        max_bag_bytes: int | None = None,
        compression: Literal["none", "zstd"] = "none",
        fsync: bool = True,
        queue_size: int = 0,
        resume: bool = False,
    ) -> None:
        """Configure a recorder; nothing touches the disk before :meth:`open`.

        Args:
            path: Session directory; bags are created inside it.
            goal_space: Goal space of every episode (stored in each bag).
            task: Task name (stored in each bag and in every EpisodeEvent).
            config: Run configuration (dataclass or mapping), stored with its hash.
            seeds: Seeds of the run (int, list or mapping), stored as JSON.
            plan: What the recording promises (her_goals.evaluation): split, goal stream,
                planned episodes, acting policy; stored in each bag for ``her audit``.
            max_episodes_per_bag: Start a new bag after this many episodes.
            max_bag_bytes: Start a new bag once the MCAP file reaches this size.
            compression: ``"zstd"`` compresses MCAP chunks; ``"none"`` does not.
            fsync: ``fsync`` at each episode boundary (survives power loss, not
                only a killed process); ``False`` only flushes to the OS.
            queue_size: 0 writes synchronously; > 0 writes from a background
                thread through a queue of this many messages.
            resume: Continue an existing session in a new bag (episode ids go on
                from the last recorded one; bags left by a crash are recovered).
        """
        if compression not in ("none", "zstd"):
            raise RecorderError(f"compression must be 'none' or 'zstd', got {compression!r}")
        if max_episodes_per_bag is not None and max_episodes_per_bag < 1:
            raise RecorderError("max_episodes_per_bag must be >= 1")
        if queue_size < 0:
            raise RecorderError("queue_size must be >= 0")
        self.path = Path(path)
        self.goal_space = goal_space
        self.task = task
        self.config = config
        self.seeds = seeds
        self.plan = plan
        if plan is not None and (plan.task != task or not plan.goal_space.same_as(goal_space)):
            raise RecorderError(
                f"the evaluation plan is for task {plan.task!r} in goal space "
                f"{plan.goal_space.spec()}; this recorder records {task!r} in {goal_space.spec()}"
            )
        self.max_episodes_per_bag = max_episodes_per_bag
        self.max_bag_bytes = max_bag_bytes
        self.compression: Literal["none", "zstd"] = compression
        self.fsync = fsync
        self.queue_size = queue_size
        self.resume = resume

        self.bag_paths: list[Path] = []
        self.dropped_messages = 0
        self._store = ifc.typestore()
        self._types = self._store.types
        self._is_open = False
        self._session = ""
        self._next_bag_index = 0
        self._next_episode_id = 0
        self._episode: _Episode | None = None
        self._bag: _Bag | None = None
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._kept: dict[Path, int] = {}
        """Completed episodes (END) of this run on disk, per bag."""
        # The precompiled layouts (her_recorder/cdr.py), one set per recorder: an encoder keeps
        # the offsets of the message it encoded last, which record_step reads right after.
        self._step = cdr.Encoder(cdr.STEP)
        self._goal = cdr.Encoder(cdr.GOAL)
        self._event = cdr.Encoder(cdr.EVENT)
        self._joint_state = cdr.Encoder(cdr.JOINT_STATE)
        self._pose_stamped = cdr.Encoder(cdr.POSE_STAMPED)

    # -- lifecycle -------------------------------------------------------------
    def open(self) -> None:
        """Create (or, with ``resume``, continue) the session directory."""
        if self._is_open:
            raise RecorderError(f"recorder for {self.path} is already open; close() it first")
        existing = sorted(p for p in self.path.glob("bag_*") if BAG_NAME.match(p.name))
        if existing and not self.resume:
            raise RecorderError(
                f"{self.path} already holds {len(existing)} bag(s); pass resume=True to "
                "continue the session in a new bag, or choose a new directory"
            )
        if self.path.exists() and not self.path.is_dir():
            raise RecorderError(
                f"{self.path} exists and is not a directory; choose a directory for the session"
            )
        self._session = uuid.uuid4().hex
        if existing:
            self._resume_from(existing)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc.filename or self.path, exc, kept="nothing was recorded") from None
        if self.queue_size:
            self._queue = queue.Queue(maxsize=self.queue_size)
            self._thread = threading.Thread(
                target=self._drain, name=f"her-recorder:{self.path.name}", daemon=True
            )
            self._thread.start()
        self._is_open = True

    def _resume_from(self, existing: list[Path]) -> None:
        last_id = -1
        for bag in existing:
            info = bag_summary(bag)
            if info.needs_recovery:
                log.warning("resume: %s was not closed cleanly; recovering it", bag)
                recover_bag(bag)
                info = bag_summary(bag)
            if info.meta is not None:
                if not info.meta.goal_space.same_as(self.goal_space):
                    raise BagMismatchError(
                        f"cannot resume {self.path}: {bag} was recorded in goal space "
                        f"{info.meta.goal_space.spec()}, this recorder has {self.goal_space.spec()}"
                    )
                if info.meta.task != self.task:
                    raise BagMismatchError(
                        f"cannot resume {self.path}: {bag} is task {info.meta.task!r}, "
                        f"this recorder is {self.task!r}"
                    )
                self._session = info.meta.session or self._session
            if info.last_episode_id is not None:
                last_id = max(last_id, info.last_episode_id)
        self._next_bag_index = 1 + max(int(BAG_NAME.match(p.name).group(1)) for p in existing)  # type: ignore[union-attr]
        self._next_episode_id = last_id + 1

    def close(self) -> None:
        """Abort an episode still open, write everything and close the bag."""
        if not self._is_open:
            return
        try:
            if self._episode is not None and self._error is None:
                self.abort_episode("recorder_closed")
        finally:
            self._is_open = False
            if self._thread is not None and self._queue is not None:
                self._queue.put(_STOP)
                self._thread.join()
                self._thread = None
            if self._bag is not None:
                try:
                    self._close_bag()
                except OSError as exc:
                    if not isinstance(exc, StorageError):
                        self._storage_failure(exc)
            if self.dropped_messages:
                log.warning(
                    "recorder %s dropped %d message(s): the write queue (%d) was full",
                    self.path,
                    self.dropped_messages,
                    self.queue_size,
                )
        self._raise_if_failed()

    @property
    def episodes_kept(self) -> int:
        """Completed episodes of this run on disk in whole (their END reached it and was synced)."""
        return sum(self._kept.values())

    def __enter__(self) -> EpisodeRecorder:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> Literal[False]:
        if exc_type is not None and self._episode is not None and self._error is None:
            try:
                self.abort_episode(f"exception: {exc_type.__name__}")
            except Exception:  # the original exception matters more
                log.exception("could not abort the open episode")
        try:
            self.close()
        except Exception as exc:
            if exc_type is None:
                raise
            if exc is not exc_val:  # the error that ended the block is said once, by it
                log.warning("recorder %s: closing after %s failed too: %s", self.path, exc_type.__name__, exc)
        return False

    # -- the episode API ---------------------------------------------------------
    @property
    def episode_id(self) -> int | None:
        """Id of the episode being recorded, or None between episodes."""
        return None if self._episode is None else self._episode.episode_id

    def start_episode(
        self,
        desired_goal: ArrayLike,
        *,
        stamp_ns: int | None = None,
        reason: str = "",
        split: str = "",
        stream_index: int = NO_INDEX,
        sim_params: Mapping[str, Any] | None = None,
    ) -> int:
        """Begin an episode towards ``desired_goal``; returns its id (unique in the session).

        ``sim_params`` (simulation only): the episode's physics and sensing parameters, recorded
        on ``/her/sim_params`` so a randomised run is reproducible and the audit can slice by them.

        ``split`` (``eval``, ``train``, ``requested``) and ``stream_index`` (the goal's index in
        the plan's stream, -1 for none) go into the START event: where the goal came from.
        """
        self._check_open()
        if self._episode is not None:
            raise RecorderError(
                f"episode {self._episode.episode_id} is still open; end, abort or discard it first"
            )
        desired = _desired_goal(self.goal_space, desired_goal)
        t = time.time_ns() if stamp_ns is None else int(stamp_ns)
        episode = _Episode(
            self._next_episode_id, desired, str(split), int(stream_index), last_stamp_ns=t
        )
        self._next_episode_id += 1
        self._episode = episode
        self._emit_event(ifc.EventKind.START, episode, t, success=False, reason=reason)
        goal = self._goal.encode(
            *_sec_nanosec(t), self.goal_space.frame,
            self.goal_space.name, desired, float(self.goal_space.tolerance), episode.episode_id,
        )  # fmt: skip
        self._emit(ifc.TOPIC_DESIRED_GOAL, ifc.GOAL_TYPE, t, goal)
        if sim_params is not None:
            text = json.dumps({"episode_id": episode.episode_id, "params": dict(sim_params)}, sort_keys=True)
            self._emit(ifc.TOPIC_SIM_PARAMS, ifc.STRING_TYPE, t, self._types[ifc.STRING_TYPE](data=text))
        # Flush (no fsync) the START so that a crash mid-episode leaves a trace:
        # readers then report the episode as incomplete instead of not at all.
        self._control(("started",))
        return episode.episode_id

    def record_step(
        self,
        *,
        observation: ArrayLike,
        next_observation: ArrayLike,
        action_raw: ArrayLike,
        achieved_goal: ArrayLike,
        next_achieved_goal: ArrayLike,
        action_applied: ArrayLike | None = None,
        reward: float | None = None,
        terminated: bool = False,
        truncated: bool = False,
        is_success: bool | None = None,
        safety_flags: int = 0,
        safety_cost: float = 0.0,
        safety_reasons: Sequence[str] = (),
        stamp_ns: int | None = None,
        policy: str = "",
        true_next_achieved_goal: ArrayLike | None = None,
    ) -> int:
        """Record one step of the open episode; returns its index in the episode.

        ``true_next_achieved_goal`` (simulation only) is the achieved goal of the true state
        after the step, recorded on ``/her/true_achieved_goal`` beside the measured one.

        ``policy`` names the policy that produced ``action_raw`` (an artefact hash,
        ``scripted``, ...; her_goals.evaluation), so the audit can tell which policy acted.

        ``reward`` and ``is_success`` default to the goal space's own
        ``compute_reward``/``is_success`` of ``next_achieved_goal`` against the
        episode's desired goal; values passed in are recorded as given (the
        reader checks them against the goal space). ``action_applied`` defaults
        to ``action_raw`` (no limits in the loop).

        The Step is encoded here (a bad value is an error from this call) and written with
        the episode's end, or with every 256 steps, when the goal space computes the rewards
        of all of them in one call. A killed recorder loses the open episode's last steps, as
        it did when they sat in the chunk in memory: an episode without its END is never
        used as complete (readers report it, with the steps that reached the file).
        """
        self._check_open()
        episode = self._episode
        if episode is None:
            raise RecorderError("record_step() outside an episode: call start_episode() first")
        dim = self.goal_space.dim
        achieved = _vector(achieved_goal, "achieved_goal")
        next_achieved = _vector(next_achieved_goal, "next_achieved_goal")
        if achieved.shape != (dim,) or next_achieved.shape != (dim,):
            what, arr = (
                ("achieved_goal", achieved) if achieved.shape != (dim,)
                else ("next_achieved_goal", next_achieved)
            )  # fmt: skip
            raise StepShapeError(
                f"{what} has shape {arr.shape}; goal space {self.goal_space.name!r} "
                f"needs ({dim},)"
            )
        raw = _vector(action_raw, "action_raw")
        t = time.time_ns() if stamp_ns is None else int(stamp_ns)
        sec, nanosec = _sec_nanosec(t)
        # Encoded here, in one precompiled pass (her_recorder/cdr.py), to the bytes rosbags'
        # serialize_cdr gives; the desired goal was checked by the goal space at the start.
        # A reward or success left to the goal space is a placeholder here, filled in for the
        # episode's steps at once (_flush_steps: one vectorised compute_reward).
        try:
            data = self._step.encode(
                sec, nanosec, self.goal_space.frame,
                episode.episode_id, episode.num_steps,
                _vector(observation, "observation"),
                _vector(next_observation, "next_observation"),
                raw,
                raw if action_applied is None else _vector(action_applied, "action"),
                achieved, next_achieved, episode.desired_goal,
                0.0 if reward is None else float(reward), bool(terminated), bool(truncated),
                bool(is_success), int(safety_flags), float(safety_cost),
                [str(r) for r in safety_reasons], str(policy),
            )  # fmt: skip
        except (struct.error, OverflowError) as exc:
            raise RecorderError(
                f"step {episode.num_steps} of episode {episode.episode_id} does not fit its "
                f"message fields ({exc}): safety_flags is a uint32, reward and safety_cost float32"
            ) from None
        offsets = self._step.last_offsets
        episode.pending.append(
            _PendingStep(
                t, data, next_achieved.tobytes(),
                offsets[cdr.STEP_REWARD] if reward is None else 0,
                offsets[cdr.STEP_IS_SUCCESS] if is_success is None else 0,
            )
        )  # fmt: skip
        if true_next_achieved_goal is not None:
            truth = self._goal.encode(
                sec, nanosec, self.goal_space.frame,
                self.goal_space.name,
                _vector(true_next_achieved_goal, "true_next_achieved_goal"),
                float(self.goal_space.tolerance),
                episode.episode_id,
            )  # fmt: skip
            episode.pending.append(_PendingStep(t, truth, b"", 0, 0))
        episode.num_steps += 1
        episode.last_next_achieved = next_achieved
        episode.last_stamp_ns = t
        if episode.num_steps % _PENDING_STEPS == 0:
            self._flush_steps(episode)
        return episode.num_steps - 1

    def _flush_steps(self, episode: _Episode) -> None:
        """Emit the episode's pending Step (and true achieved goal) messages, their rewards
        and successes the goal space's, computed over all of them in one call."""
        pending, episode.pending = episode.pending, []
        if not pending:
            return
        todo = [p for p in pending if p.reward_at or p.success_at]
        if todo:
            space = self.goal_space
            next_ag = np.frombuffer(b"".join(p.next_achieved for p in todo), dtype="<f8")
            next_ag = next_ag.reshape(len(todo), space.dim)
            # A NaN/inf achieved goal has no reward: it is recorded as -1, the reader reports it.
            finite = np.isfinite(next_ag).all(axis=1)
            reward = np.full(len(todo), -1.0, dtype=np.float32)
            if finite.any():
                rows = next_ag[finite]
                reward[finite] = space.compute_reward(
                    rows, np.broadcast_to(episode.desired_goal, rows.shape)
                )  # ARCHITECTURE.md, rule 2: the goal space's reward; success is reward + 1
            for p, r in zip(todo, reward.tolist(), strict=True):
                buf = bytearray(p.data)
                if p.reward_at:
                    _F32.pack_into(buf, p.reward_at, r)
                if p.success_at:
                    buf[p.success_at] = r == 0.0
                p.data = bytes(buf)
        for p in pending:
            topic, msgtype = (
                (ifc.TOPIC_STEP, ifc.STEP_TYPE) if p.next_achieved
                else (ifc.TOPIC_TRUE_ACHIEVED_GOAL, ifc.GOAL_TYPE)
            )  # fmt: skip
            self._emit(topic, msgtype, p.stamp_ns, p.data)

    def end_episode(
        self,
        success: bool | None = None,
        reason: str | None = None,
        *,
        stamp_ns: int | None = None,
        wait: bool = True,
    ) -> RecordedEpisode:
        """End the open episode; with ``wait`` it is durable on disk when this returns.

        ``success`` is requested-goal success: whether the final achieved goal is
        within tolerance of the desired goal. It defaults to exactly that,
        computed by the goal space; a value passed in is recorded as given and
        checked by the reader. ``reason`` defaults to ``"success"`` or
        ``"time_limit"``.
        """
        episode = self._require_episode("end_episode")
        if success is None:
            success = False
            if episode.last_next_achieved is not None:
                try:
                    success = bool(
                        self.goal_space.is_success(episode.last_next_achieved, episode.desired_goal)
                    )
                except GoalError:
                    success = False
        if reason is None:
            reason = "success" if success else "time_limit"
        return self._finish(ifc.EventKind.END, episode, bool(success), reason, stamp_ns, wait)

    def abort_episode(
        self, reason: str, *, stamp_ns: int | None = None, wait: bool = True
    ) -> RecordedEpisode:
        """Stop the open episode early (safety, operator, error): it is not complete."""
        episode = self._require_episode("abort_episode")
        return self._finish(ifc.EventKind.ABORT, episode, False, reason, stamp_ns, wait)

    def discard_episode(
        self, reason: str = "operator", *, stamp_ns: int | None = None, wait: bool = True
    ) -> RecordedEpisode:
        """Throw the open episode away (e.g. to re-record it); readers skip it, visibly."""
        episode = self._require_episode("discard_episode")
        return self._finish(ifc.EventKind.DISCARD, episode, False, reason, stamp_ns, wait)

    def split_bag(self) -> Path | None:
        """Close the current bag now (it becomes a finished, readable bag); returns its path.

        The next message opens a new bag. Only between episodes.
        """
        self._check_open()
        if self._episode is not None:
            raise RecorderError(
                f"episode {self._episode.episode_id} is open; bags split only between episodes"
            )
        done = threading.Event() if self._queue is not None else None
        box: list[Path] = []
        self._control(("split", done, box))
        if done is not None:
            done.wait()
        self._raise_if_failed()
        return box[0] if box else None

    def record_raw(self, topic: str, msg: Any, stamp_ns: int) -> None:
        """Record a raw state message (a rosbags message object), e.g. ``/joint_states``."""
        self._check_open()
        msgtype = getattr(msg, "__msgtype__", None)
        if not isinstance(msgtype, str):
            raise RecorderError(
                f"record_raw({topic!r}) needs a rosbags message object (with __msgtype__), "
                f"got {type(msg).__name__}"
            )
        # The arm's and the object's state, every tick: the precompiled layouts.
        if msgtype == ifc.JOINT_STATE_TYPE:
            h = msg.header
            msg = self._joint_state.encode(
                h.stamp.sec, h.stamp.nanosec, h.frame_id,
                list(msg.name), msg.position, msg.velocity, msg.effort,
            )  # fmt: skip
        elif msgtype == ifc.POSE_STAMPED_TYPE:
            h, p, q = msg.header, msg.pose.position, msg.pose.orientation
            msg = self._pose_stamped.encode(
                h.stamp.sec, h.stamp.nanosec, h.frame_id, p.x, p.y, p.z, q.x, q.y, q.z, q.w
            )
        self._emit(topic, msgtype, int(stamp_ns), msg)

    def record_serialized(self, topic: str, msgtype: str, data: bytes, stamp_ns: int) -> None:
        """Record an already CDR-serialised message (e.g. from a ROS subscription)."""
        self._check_open()
        self._emit(topic, msgtype, int(stamp_ns), bytes(data))

    # -- internals -------------------------------------------------------------------
    def _check_open(self) -> None:
        self._raise_if_failed()
        if not self._is_open:
            raise RecorderError(f"recorder for {self.path} is not open; call open() first")

    def _raise_if_failed(self) -> None:
        if isinstance(self._error, StorageError):
            raise self._error
        if self._error is not None:
            raise RecorderError(
                f"the recorder for {self.path} stopped writing: {self._error}. Fix the cause, "
                "then open a new recorder with resume=True (it recovers the last bag)"
            ) from self._error

    def _require_episode(self, what: str) -> _Episode:
        self._check_open()
        if self._episode is None:
            raise RecorderError(f"{what}() without an open episode: call start_episode() first")
        return self._episode

    def _emit_event(
        self, kind: ifc.EventKind, episode: _Episode, t: int, *, success: bool, reason: str
    ) -> None:
        msg = self._event.encode(
            *_sec_nanosec(t), self.goal_space.frame,
            int(kind), episode.episode_id, self.task, self.goal_space.name,
            episode.desired_goal, episode.num_steps, bool(success), str(reason),
            episode.split, episode.stream_index,
        )  # fmt: skip
        self._emit(ifc.TOPIC_EPISODE, ifc.EVENT_TYPE, t, msg)

    def _finish(
        self,
        kind: ifc.EventKind,
        episode: _Episode,
        success: bool,
        reason: str,
        stamp_ns: int | None,
        wait: bool,
    ) -> RecordedEpisode:
        t = time.time_ns() if stamp_ns is None else int(stamp_ns)
        self._flush_steps(episode)
        self._emit_event(kind, episode, t, success=success, reason=reason)
        self._episode = None
        done = threading.Event() if (wait and self._queue is not None) else None
        bag_box: list[Path] = []
        self._control(("boundary", kind, episode.episode_id, done, bag_box))
        if done is not None:
            done.wait()
        self._raise_if_failed()
        bag = bag_box[0] if bag_box else (self.bag_paths[-1] if self.bag_paths else self.path)
        return RecordedEpisode(episode.episode_id, episode.num_steps, success, reason, bag)

    def _emit(self, topic: str, msgtype: str, t: int, payload: Any) -> None:
        if self._queue is None:
            bag = self._bag
            conn = None if bag is None else bag.connections.get(topic)
            if conn is not None and conn.msgtype == msgtype and type(payload) is bytes:
                # The common case, straight to the open bag's chunk (what _write does).
                assert bag is not None and bag.storage is not None
                try:
                    bag.storage.write_message(conn, t, payload)
                except OSError as exc:
                    raise self._storage_failure(exc) from None
                return
            self._guarded(("msg", topic, msgtype, t, payload))
            return
        try:
            self._queue.put_nowait(("msg", topic, msgtype, t, payload))
        except queue.Full:
            with self._lock:
                self.dropped_messages += 1

    def _control(self, item: tuple[Any, ...]) -> None:
        if self._queue is None:
            self._guarded(item)
        else:
            self._queue.put(item)  # control items are never dropped

    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                if item[0] in ("boundary", "split") and item[-2] is not None:
                    item[-2].set()
                continue
            try:
                self._guarded(item)
            except BaseException as exc:
                self._error = self._error or exc
                log.error("recorder %s stopped writing: %s", self.path, self._error)
                if item[0] in ("boundary", "split") and item[-2] is not None:
                    item[-2].set()

    def _guarded(self, item: tuple[Any, ...]) -> None:
        """:meth:`_process`, with a failed write (disk full, read-only, gone) turned into the
        recorder's one StorageError: from then on it writes nothing and raises it."""
        try:
            self._process(item)
        except StorageError as exc:
            self._error = self._error or exc
            raise
        except OSError as exc:
            raise self._storage_failure(exc) from None

    def _storage_failure(self, exc: OSError) -> StorageError:
        bag, self._bag = self._bag, None
        where: Any = exc.filename or (bag.mcap_path if bag is not None else self.path)
        if bag is not None:
            bag.abandon()
        kept_in = [str(p) for p, n in self._kept.items() if n]
        n = self.episodes_kept
        if n:
            kept = (
                f"the {n} completed episode{'s' if n != 1 else ''} of this run "
                f"{'are' if n != 1 else 'is'} in {', '.join(kept_in)}"
            )
        else:
            kept = "no episode of this run was completed (earlier bags of the session are untouched)"
        if bag is not None:
            kept += (
                f" ({bag.path.name} was not closed: free space, then `her bag recover {self.path}` "
                "closes it, keeping every completed episode)"
            )
        error = storage_error(where, exc, kept=kept)
        self._error = error
        log.error("recorder %s stopped writing: %s", self.path, error)
        return error

    def _process(self, item: tuple[Any, ...]) -> None:
        if item[0] == "msg":
            _, topic, msgtype, t, payload = item
            self._write(topic, msgtype, t, payload)
            return
        if item[0] == "started":
            if self._bag is not None:
                self._bag.sync(durable=False)
            return
        if item[0] == "split":
            _, done, box = item
            if self._bag is not None:
                box.append(self._bag.path)
                self._close_bag()
            if done is not None:
                done.set()
            return
        _, kind, episode_id, done, bag_box = item
        bag = self._bag
        if bag is not None:
            bag.sync()
            key = {ifc.EventKind.END: "ended", ifc.EventKind.ABORT: "aborted"}.get(
                kind, "discarded"
            )
            bag.episode_ids[key].append(episode_id)
            if kind == ifc.EventKind.END:
                self._kept[bag.path] = self._kept.get(bag.path, 0) + 1
            bag_box.append(bag.path)
            if (
                self.max_episodes_per_bag is not None
                and bag.num_episodes >= self.max_episodes_per_bag
            ) or (self.max_bag_bytes is not None and bag.size_bytes >= self.max_bag_bytes):
                self._close_bag()
        if done is not None:
            done.set()

    def _write(self, topic: str, msgtype: str, t: int, payload: Any) -> None:
        data = (
            payload if isinstance(payload, bytes) else self._store.serialize_cdr(payload, msgtype)
        )
        if self._bag is None:
            self._open_bag()
        assert self._bag is not None
        self._bag.write(topic, msgtype, t, data)

    def _open_bag(self) -> None:
        index = self._next_bag_index
        self._next_bag_index += 1
        meta = BagMeta(
            goal_space=self.goal_space,
            task=self.task,
            config=self.config,
            config_hash=config_hash(self.config if self.config is not None else {}),
            seeds=self.seeds,
            plan=self.plan,
            session=self._session,
            bag_index=index,
            schema={
                t: self._store.hash_rihs01(t)
                for t in (ifc.STEP_TYPE, ifc.EVENT_TYPE, ifc.GOAL_TYPE)
            },
        )
        bag = _Bag(
            self.path / bag_name(index),
            meta=meta,
            compression=self.compression,
            fsync=self.fsync,
            store=self._store,
        )
        bag.open()
        self._bag = bag
        self.bag_paths.append(bag.path)

    def _close_bag(self) -> None:
        bag = self._bag
        if bag is not None:
            bag.close(dropped_messages=self.dropped_messages)  # raises with the bag still named
            self._bag = None
