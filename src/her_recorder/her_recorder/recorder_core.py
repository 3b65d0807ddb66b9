"""What the recorder node does, without ROS: episode events and steps into episode bags.

:class:`RecorderCore` drives one :class:`her_recorder.writer.EpisodeRecorder`
from the ``/her/episode`` and ``/her/step`` topics and records the raw state
topics (``/joint_states``, ``/object_pose``, as the CDR bytes the subscription
received) inside episodes.

Topics carry no ordering guarantee between each other, so:

* an END/ABORT whose ``num_steps`` is larger than the steps recorded so far waits
  up to ``end_grace_s`` for the missing ones (then ends anyway and reports it);
* steps that arrive before their episode's START are held (up to 1000) and
  recorded once it arrives; steps of an episode that is not recorded are counted
  and dropped.

The bag's episode ids are the recorder's own (unique within the session, also
across restarts with ``resume``); the START event's ``reason`` names the goals
node's episode id, so both can be traced.

Provenance, the same as ``her demo``'s bags (her_goals.evaluation): each bag stores the
evaluation plan the parameters describe (``split``, ``goal_seed``, ``num_episodes`` as the
goals node has them; ``artefact``/``fallback``/``random_eps``/``noise_std`` as the policy
node has them, the artefact named by its hash); each START carries the goals node's
``split`` and ``stream_index``, each Step the policy node's ``policy``.

``pause`` aborts the episode being recorded (``recorder_paused``) and ignores new
ones until ``resume``; ``discard`` throws the open episode away (DISCARD).
Every episode that reaches the bag (END, ABORT or DISCARD) is announced once through
:attr:`RecorderCore.on_written` (the node's log). With ``num_episodes`` the recorder is
:attr:`RecorderCore.done` once that many episodes are written: it records no more, and the
node closes the bag and exits (the recording launch then ends).
:meth:`RecorderCore.close` aborts an open episode and closes the bag cleanly: the
node calls it on SIGINT/SIGTERM.

A full or unwritable disk (:class:`~her_goals.errors.StorageError`) stops the recording, not
the node: the error (the file, the free space, the completed episodes kept) is reported once
as ERROR under ``storage`` (the node's log and ``/diagnostics``), :attr:`RecorderCore.stopped`
holds it, and every later event, step and raw message is counted as not recorded. The bag is
left for ``her bag recover``, which keeps every completed episode.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from her_goals.checks import Fraction, NonNegativeFloat, NonNegativeInt, check_fields
from her_goals.config import to_plain
from her_goals.episode import EventKind
from her_goals.errors import ConfigError, HerError, StorageError
from her_goals.evaluation import EvaluationPlan, policy_id
from her_goals.provenance import read_policy_metadata
from her_goals.robot.rig import TaskRig
from her_goals.rosglue import topics
from her_goals.rosglue.health import ERROR, WARN, Health
from her_goals.rosglue.msgconv import EventData, StepData
from her_goals.rosglue.params import doc
from her_goals.sampling import GoalSampler
from her_goals.spaces import GoalSpace, get_goal_space
from her_goals.tasks import TASKS
from her_recorder.errors import RecorderConfigError
from her_recorder.writer import EpisodeRecorder

_MAX_EARLY_STEPS = 1000


RAW_TOPICS = ("/joint_states", "/object_pose", "/her/achieved_goal")
"""Topics the recorder may take raw (``raw_topics``); /her/step, /her/episode and
/her/desired_goal are written by EpisodeRecorder itself, from the events and steps."""


@dataclass(frozen=True)
class RecorderConfig:
    """Parameters of recorder_node (units in the names)."""

    bag_dir: str = doc("her_bags", "session directory of the episode bags (bag_0000, bag_0001, ...)")
    task: str = doc("reach", "task name stored in the bags")
    goal_space: str = doc("", "goal space of the episodes (her_goals registry name); empty = the task's")
    tolerance_m: NonNegativeFloat = doc(0.0, "success threshold of the goal space (its units); 0 = the task's")
    raw_topics: tuple[str, ...] = doc(("/joint_states", "/object_pose"), "state topics recorded inside episodes (their names in the bag)")
    joint_states_topic: str = doc(topics.JOINT_STATES, "where /joint_states of the bag is subscribed (relative: in the node's namespace)")
    object_pose_topic: str = doc(topics.OBJECT_POSE, "where /object_pose of the bag is subscribed (relative: in the node's namespace)")
    end_grace_s: NonNegativeFloat = doc(2.0, "how long an END waits for steps still in flight (s)")
    max_episodes_per_bag: NonNegativeInt = doc(0, "start a new bag after this many episodes; 0 = one bag per run")
    compression: Literal["none", "zstd"] = doc("none", "MCAP chunk compression")
    queue_size: NonNegativeInt = doc(10000, "write queue (messages); 0 writes in the callback")
    fsync: bool = doc(True, "fsync at every episode boundary")
    resume: bool = doc(True, "continue an existing session directory in a new bag")
    split: Literal["train", "heldout"] = doc(
        "train", "the goals node's goal stream (its split); heldout: the bags are an evaluation")
    goal_seed: int = doc(0, "the goals node's seed (its held-out stream), stored in the evaluation plan")
    num_episodes: NonNegativeInt = doc(0, "the goals node's num_episodes: episodes the evaluation plans; the recorder closes "
                               "the bag and exits once that many are written; 0 = open-ended")
    artefact: str = doc("", "the policy node's artefact: its hash names the acting policy; empty = fallback")
    fallback: Literal["hold", "scripted", "random"] = doc("hold", "the policy node's fallback without an artefact")
    random_eps: Fraction = doc(0.0, "the policy node's random_eps (exploration: not the policy's own actions)")
    noise_std: NonNegativeFloat = doc(0.0, "the policy node's noise_std (exploration: not the policy's own actions)")

    def __post_init__(self) -> None:
        try:
            check_fields(self, where="recorder_node")  # the ranges declared on the fields
        except ConfigError as exc:
            raise RecorderConfigError(str(exc)) from None
        if not self.bag_dir:
            raise RecorderConfigError("recorder_node: bag_dir is empty; set it to the session directory")
        topics.check_topic(self.joint_states_topic, "recorder_node: joint_states_topic")
        topics.check_topic(self.object_pose_topic, "recorder_node: object_pose_topic")
        unknown = [t for t in self.raw_topics if t not in RAW_TOPICS]
        if unknown:
            raise RecorderConfigError(f"raw_topics {unknown} cannot be recorded raw; use some of {sorted(RAW_TOPICS)}")

    def subscription(self, bag_topic: str) -> str:
        """The topic the node subscribes to for ``bag_topic`` (one of ``raw_topics``)."""
        named = {"/joint_states": self.joint_states_topic, "/object_pose": self.object_pose_topic}
        return named.get(bag_topic, bag_topic.lstrip("/"))

    def rig(self) -> TaskRig | None:
        """The registered task's rig, with ``tolerance_m`` (None for a task not registered)."""
        return TaskRig.build(self.task, tolerance=self.tolerance_m) if self.task in TASKS else None

    def plan(self, space: GoalSpace) -> EvaluationPlan | None:
        """The evaluation plan these parameters describe (None for a task not registered)."""
        rig = self.rig()
        if rig is None:
            return None
        if self.artefact:
            try:
                base = str(read_policy_metadata(self.artefact)["artefact_hash"])
            except HerError as exc:
                raise RecorderConfigError(f"recorder_node: artefact: {exc}") from None
        else:
            base = self.fallback
        return EvaluationPlan.for_task(
            self.task, self.split,
            planned_episodes=self.num_episodes if self.split == "heldout" else 0,
            policy=policy_id(base, noise_std=self.noise_std, random_eps=self.random_eps),
            stream_seed=self.goal_seed, goal_space=space, goal_region=rig.goal_region,
            sampler=GoalSampler(space, rig.goal_region, seed=self.goal_seed),
        )


class RecorderCore:
    """Episode events and steps into bags through EpisodeRecorder; see the module docstring."""

    def __init__(self, config: RecorderConfig, *, config_record: Any = None) -> None:
        """``config_record`` is stored in every bag (default: this config and the task's goal
        region, which ``her audit`` reads as the region requested goals come from)."""
        self.config = config
        rig = config.rig()
        task = rig.task if rig is not None else None
        name = config.goal_space or (task.goal_space if task else "")
        if not name:
            raise RecorderConfigError(f"recorder_node: task {config.task!r} has no known goal space; set goal_space")
        if rig is not None and name == rig.goal_space.name:
            self.space = rig.goal_space  # the task's goal space with its tolerance (or tolerance_m)
        else:  # another goal space named by the parameters
            tolerance = config.tolerance_m or (task.tolerance if task else None)
            self.space = get_goal_space(name, tolerance=tolerance)
        self.health = Health("her_recorder: recorder_node", str(Path(config.bag_dir).resolve()))
        if config_record is None:
            config_record = {"recorder_node": to_plain(config)}
            if task is not None and task.goal_space == self.space.name:
                config_record["goal_region"] = to_plain(task.goal_region)
        self.plan = config.plan(self.space) if task is not None and task.goal_space == self.space.name else None
        self.recorder = EpisodeRecorder(
            Path(config.bag_dir).expanduser(), goal_space=self.space, task=config.task,
            config=config_record, plan=self.plan, max_episodes_per_bag=config.max_episodes_per_bag or None,
            compression=config.compression, fsync=config.fsync, queue_size=config.queue_size,
            resume=config.resume,
        )
        self.ros_episode: int | None = None
        """The goals node's id of the episode being recorded."""
        self.paused = False
        self.recorded = 0
        self._steps = 0
        self._ending: tuple[EventData, int] | None = None
        self._early: collections.deque[StepData] = collections.deque(maxlen=_MAX_EARLY_STEPS)
        self._done_ids: collections.deque[int] = collections.deque(maxlen=64)
        self.last_bag: Path | None = None
        self.written = 0
        """Episodes that reached the bag (END, ABORT or DISCARD) in this run."""
        self.on_written: Callable[[str], None] | None = None
        """Called with one line per episode written (the node logs it)."""
        self.stopped: StorageError | None = None
        """Why the recording stopped (the disk is full, ...); None while it records."""

    @property
    def done(self) -> bool:
        """True once ``num_episodes`` (> 0) episodes are written: nothing more is recorded."""
        return 0 < self.config.num_episodes <= self.written

    def open(self) -> None:
        self.recorder.open()

    def close(self) -> None:
        """Abort an open episode (``recorder_closed``) and close the bag; safe to call twice,
        and after the disk filled (the bag is then left for her bag recover)."""
        try:
            if self.stopped is None:
                if self._ending is not None:
                    self._finish(self._ending[0])
                elif self.ros_episode is not None:
                    self._abort("recorder_closed")
            self.recorder.close()
        except StorageError as exc:
            self._stop(exc)
        self.ros_episode = None

    def _stop(self, exc: StorageError) -> None:
        """The disk failed: report it once, record nothing more (the node keeps running)."""
        if self.stopped is None:
            self.stopped = exc
            self.health.report("storage", ERROR, f"recording stopped: {exc}")
        self.ros_episode, self._ending, self._steps = None, None, 0
        self._early.clear()

    # -- inputs ------------------------------------------------------------------------
    def on_event(self, event: EventData, now_ns: int) -> None:
        if self.stopped is not None:
            if event.event == EventKind.START:
                self.health.count("episodes_not_recorded")
            return
        try:
            self._on_event(event, now_ns)
        except StorageError as exc:
            self._stop(exc)

    def _on_event(self, event: EventData, now_ns: int) -> None:
        if event.event == EventKind.START:
            if self.ros_episode is not None:
                self._abort("superseded by a new START")
            if self.paused or self.done:
                self.health.count("episodes_not_recorded")
                return
            if event.goal_space != self.space.name:
                self.health.report("goal_space", ERROR, f"episode {event.episode_id} is in goal space "
                                   f"{event.goal_space!r}, the recorder in {self.space.name!r}; not recorded")
                return
            try:
                self.recorder.start_episode(event.desired_goal, stamp_ns=event.stamp_ns,
                                            reason=f"goals_node episode {event.episode_id}",
                                            split=event.split, stream_index=event.stream_index)
            except StorageError:
                raise
            except HerError as exc:
                self.health.report("record", ERROR, f"episode {event.episode_id} not recorded: {exc}")
                return
            self.health.clear("goal_space")
            self.ros_episode, self._steps = event.episode_id, 0
            early, self._early = list(self._early), collections.deque(maxlen=_MAX_EARLY_STEPS)
            for step in early:
                if step.episode_id == event.episode_id:
                    self.on_step(step, now_ns)
                else:
                    self.health.count("dropped_steps")
        elif event.episode_id == self.ros_episode and self._ending is None:
            self._ending = (event, now_ns)
            self._tick(now_ns)

    def on_step(self, step: StepData, now_ns: int) -> None:
        if self.stopped is not None:
            self.health.count("dropped_steps")
            return
        try:
            self._on_step(step, now_ns)
        except StorageError as exc:
            self._stop(exc)

    def _on_step(self, step: StepData, now_ns: int) -> None:
        if step.episode_id != self.ros_episode:
            if step.episode_id not in self._done_ids and not self.paused:
                self._early.append(step)
            else:
                self.health.count("dropped_steps")
            return
        try:
            self.recorder.record_step(**step.recorder_kwargs())
            self._steps += 1
        except StorageError:
            raise
        except HerError as exc:
            self.health.count("dropped_steps")
            self.health.report("record", ERROR, f"step {step.step} of episode {step.episode_id} not recorded: {exc}")
            return
        if self._ending is not None:
            self._tick(now_ns)

    def on_raw(self, topic: str, msgtype: str, data: bytes, stamp_ns: int) -> None:
        """A raw state message (CDR bytes), recorded while an episode is being recorded."""
        if self.ros_episode is not None and stamp_ns >= 0 and self.stopped is None:
            try:
                self.recorder.record_serialized(topic, msgtype, data, stamp_ns)
            except StorageError as exc:
                self._stop(exc)

    def tick(self, now_ns: int) -> None:
        """End a pending END/ABORT once its steps are in, or after ``end_grace_s``."""
        if self._ending is None or self.stopped is not None:
            return
        try:
            self._tick(now_ns)
        except StorageError as exc:
            self._stop(exc)

    def _tick(self, now_ns: int) -> None:
        if self._ending is None:
            return
        event, since = self._ending
        missing = event.num_steps - self._steps
        if missing > 0 and (now_ns - since) * 1e-9 < self.config.end_grace_s:
            return
        if missing > 0:
            self.health.report("missing", WARN, f"episode {event.episode_id} ended with {missing} step(s) "
                               f"missing after {self.config.end_grace_s:g} s")
        self._finish(event)

    # -- operator ------------------------------------------------------------------------
    def pause(self) -> tuple[bool, str]:
        if self.paused:
            return False, "already paused"
        self.paused = True
        if self.stopped is None:
            try:
                self._abort("recorder_paused")
            except StorageError as exc:
                self._stop(exc)
        return True, "paused: new episodes are not recorded until resume"

    def resume(self) -> tuple[bool, str]:
        if not self.paused:
            return False, "not paused"
        self.paused = False
        return True, "recording from the next episode START"

    def discard(self) -> tuple[bool, str]:
        if self.stopped is not None:
            return False, f"not recording: {self.stopped}"
        if self.ros_episode is None:
            return False, "no episode is being recorded (finished episodes are on disk; delete the bag)"
        try:
            ros_id, done = self.ros_episode, self.recorder.discard_episode("operator")
        except StorageError as exc:
            self._stop(exc)
            return False, f"not recording: {exc}"
        self._written(done, "DISCARD")
        self._forget(ros_id)
        return True, f"discarded episode {done.episode_id} ({done.num_steps} steps)"

    # -- internals -----------------------------------------------------------------------
    def _finish(self, event: EventData) -> None:
        ros_id = self.ros_episode
        try:
            if event.event == EventKind.END:
                done = self.recorder.end_episode(success=event.success, reason=event.reason,
                                                 stamp_ns=event.stamp_ns)
                self.recorded += 1
            elif event.event == EventKind.DISCARD:
                done = self.recorder.discard_episode(event.reason, stamp_ns=event.stamp_ns)
            else:
                done = self.recorder.abort_episode(event.reason, stamp_ns=event.stamp_ns)
            self.last_bag = done.bag
            self._written(done, EventKind(event.event).name, f"goals_node episode {event.episode_id}")
        except StorageError:
            raise
        except HerError as exc:
            self.health.report("record", ERROR, f"episode {event.episode_id} end not recorded: {exc}")
        if ros_id is not None:
            self._forget(ros_id)

    def _abort(self, reason: str) -> None:
        if self.ros_episode is not None:
            ros_id = self.ros_episode
            self._written(self.recorder.abort_episode(reason), "ABORT", f"goals_node episode {ros_id}")
            self._forget(ros_id)

    def _written(self, done: Any, outcome: str, source: str = "") -> None:
        self.written += 1
        self.last_bag = done.bag
        if self.on_written is not None:
            self.on_written(
                f"episode {done.episode_id} written ({outcome} {done.reason}, {done.num_steps} steps"
                f"{', ' + source if source else ''}) to {done.bag}"
                + (f"; {self.written} of {self.config.num_episodes}" if self.config.num_episodes else ""))

    def _forget(self, ros_id: int) -> None:
        self._done_ids.append(ros_id)
        self.ros_episode, self._ending, self._steps = None, None, 0

    def status_values(self) -> dict[str, Any]:
        return {
            "bag_dir": str(self.recorder.path), "episodes_recorded": self.recorded,
            "recording_episode": self.ros_episode if self.ros_episode is not None else "none",
            "paused": self.paused, "dropped_messages": self.recorder.dropped_messages,
            "bags": len(self.recorder.bag_paths), "episodes_written": self.written,
            "recording": "stopped" if self.stopped is not None else "yes",
        }
