"""What the goals node does, without ROS: desired goals, achieved goals, episode events.

:class:`GoalsCore` takes the node's messages (``/joint_states``, ``/object_pose``,
``/her/step``) and the time, and says what to publish:

* the desired goal of each episode, sampled from the task's goal region (training
  or held-out split) or requested through the node's start service; held-out goals are
  the task's held-out stream (her_goals.evaluation) in order, and every START event says
  where its goal came from (``split``, ``stream_index``), so ``her audit`` can re-derive
  an evaluation recorded on the robot;
* the achieved goal measured from the latest state by the task rig's extractor
  (:class:`her_goals.robot.rig.TaskRig`: forward kinematics of the arm joints for
  ``ee_position``, the object pose for ``object_position``, the drawer's joint in
  ``/joint_states`` for ``joint_position``), with
  the measurement's stamp and the goal frame, while the state is fresh;
* episode events from :class:`her_goals.episode.EpisodeBook`, auto-starting the
  next episode ``start_delay_s`` after the last one ended.

Bad input is reported to :attr:`GoalsCore.health` (logged once, published on
``/diagnostics``) and never raised: a message without the arm's joints, an
object pose whose transform to the goal frame is missing or stale (tf2, see
:mod:`her_goals.rosglue.frames`), a stamp older than the last one (dropped).

An episode runs only while the nodes of ``wait_for_nodes`` listen to the episode topic:
when one stops (a policy node deactivated through its lifecycle, a crashed recorder), the
running episode is aborted, naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from her_goals.checks import NonNegativeFloat, NonNegativeInt, PositiveFloat, Range, check_fields
from her_goals.episode import EpisodeBook, Event, EventKind
from her_goals.errors import HerError, StateError
from her_goals.evaluation import EVAL, NO_INDEX, REQUESTED, TRAIN, EvaluationPlan, heldout_goal
from her_goals.extractors import AchievedGoalExtractor, RobotState
from her_goals.robot.arm_config import ArmConfig, load_arm_config
from her_goals.robot.rig import TaskRig
from her_goals.rosglue import topics
from her_goals.rosglue.frames import Lookup, receive_object_pose
from her_goals.rosglue.health import ERROR, OK, STALE, WARN, Health
from her_goals.rosglue.msgconv import (
    EventData,
    MessageTypes,
    StepData,
    episode_event_msg,
    goal_msg,
    joint_state_fields,
)
from her_goals.rosglue.params import doc
from her_goals.sampling import GoalRegion, GoalSampler
from her_goals.spaces import GoalSpace
from her_goals.tasks import TaskName, get_task

Vector = NDArray[np.float64]

@dataclass(frozen=True)
class GoalsConfig:
    """Parameters of goals_node (units in the names)."""

    task: TaskName = doc("reach", "registered task (her_goals.tasks) whose goal space, goal region and episode length are used")
    tolerance_m: NonNegativeFloat = doc(0.0, "success threshold on the goal distance (goal-space units); 0 = the task's")
    goal_region_low_m: tuple[float, ...] = doc((), "lower corner of the goal region (m); empty = the task's")
    goal_region_high_m: tuple[float, ...] = doc((), "upper corner of the goal region (m); empty = the task's")
    split: Literal["train", "heldout"] = doc("train", "goal stream of auto-started episodes")
    seed: int = doc(0, "seed of the goal sampler and of the held-out stream (the recorder's goal_seed)")
    max_steps: NonNegativeInt = doc(0, "policy steps per episode before END time_limit; 0 = the task's episode length")
    episode_timeout_s: PositiveFloat = doc(30.0, "ABORT an episode that has not ended after this long (s)")
    end_on_success: bool = doc(False, "END at the first successful step instead of the time limit")
    auto_start: bool = doc(True, "start the next episode by itself after start_delay_s")
    num_episodes: NonNegativeInt = doc(0, "episodes to auto-start; 0 = no limit")
    start_delay_s: NonNegativeFloat = doc(1.0, "pause between an episode's end and the next auto start (s)")
    achieved_rate_hz: Annotated[float, Range(gt=0, le=1000)] = doc(25.0, "rate of /her/achieved_goal (Hz)")
    state_timeout_s: PositiveFloat = doc(0.5, "state older than this is stale: no achieved goal, no auto start (s)")
    wait_for_nodes: tuple[str, ...] = doc(
        ("policy_node",), "auto start only once these nodes subscribe to /her/episode (policy, recorder)")
    arm_config: str = doc("", "arm config YAML (her_goals ArmConfig); empty = the packaged arm")
    joint_states_topic: str = doc(topics.JOINT_STATES, "the arm driver's joint states (relative: in the node's namespace)")
    object_pose_topic: str = doc(topics.OBJECT_POSE, "the object pose from perception, in any frame tf2 can transform to the goal frame")
    transform_timeout_s: PositiveFloat = doc(0.5, "an object pose whose transform to the goal frame is missing or stamped further than this from it is dropped (s)")

    def __post_init__(self) -> None:
        check_fields(self, where="goals_node")  # the task and the ranges declared on the fields
        topics.check_topic(self.joint_states_topic, "goals_node: joint_states_topic")
        topics.check_topic(self.object_pose_topic, "goals_node: object_pose_topic")

    @property
    def episode_steps(self) -> int:
        """Steps per episode: ``max_steps``, or the task's when 0."""
        return self.max_steps or get_task(self.task).episode_steps

    def goal_region(self) -> GoalRegion | None:
        """The goal region the parameters give, or None for the task's."""
        if self.goal_region_low_m or self.goal_region_high_m:
            floor = get_task(self.task).goal_region.floor_fraction
            return GoalRegion(self.goal_region_low_m, self.goal_region_high_m, floor)
        return None

    def rig(self, *, kinematics: Any = None) -> TaskRig:
        """The task on the configured arm, with the tolerance and goal region the parameters give."""
        arm = load_arm_config(self.arm_config) if self.arm_config else ArmConfig()
        return TaskRig.build(self.task, arm, tolerance=self.tolerance_m, goal_region=self.goal_region(),
                             kinematics=kinematics)

    def goal_space(self) -> GoalSpace:
        """The task's goal space, with ``tolerance_m`` when it is set."""
        return self.rig().goal_space


class StartReply(NamedTuple):
    """The ``~/start_episode`` reply (``her_interfaces/StartEpisode``)."""

    success: bool
    message: str
    episode_id: int = 0
    desired_goal: tuple[float, ...] = ()


class GoalsCore:
    """Desired and achieved goals and episode events of one task; see the module docstring."""

    def __init__(self, config: GoalsConfig, *, kinematics: Any = None) -> None:
        self.config = config
        self.rig = config.rig(kinematics=kinematics)
        self.space = self.rig.goal_space
        self.region = self.rig.goal_region
        self.sampler = GoalSampler(self.space, self.region, seed=config.seed)
        self.book = EpisodeBook(
            self.space, config.episode_steps, config.episode_timeout_s, config.end_on_success
        )
        self.health = Health("her_goals: goals_node", config.task)
        self.arm: ArmConfig = self.rig.arm
        self.extractor: AchievedGoalExtractor = self.rig.achieved_goal_extractor()
        self._joints: tuple[tuple[str, ...], Vector, int] | None = None
        self._pose: tuple[Vector, int] | None = None
        self._ended_ns: int | None = None
        self._starting = False
        self.auto_paused = False
        """Set after an e-stop abort: no auto start until the start service is called."""
        self.started = 0
        self.heldout_started = 0
        """Held-out episodes started: the stream index of the next held-out goal."""
        self._chosen: tuple[Vector, str, int] | None = None
        """The goal choose_goal returned, its split and stream index, until start()."""

    # -- inputs ------------------------------------------------------------------------
    def on_joint_state(self, msg: Any) -> None:
        try:
            names, position, _, _, stamp = joint_state_fields(msg)
        except StateError as exc:
            self.health.report("joint_states", ERROR, f"bad /joint_states: {exc}")
            return
        if self._joints is not None and stamp < self._joints[2]:
            self.health.count("out_of_order_joint_states")
            self.health.report("joint_order", WARN, "/joint_states stamps went backwards; dropped")
            return
        needed = self.rig.achieved_goal_joints
        if needed:
            missing = [n for n in needed if n not in names]
            if missing:
                what, fix = (
                    ("arm joint(s)", "fix arm_joints in the arm config or remap the driver")
                    if self.space.name == "ee_position"
                    else ("joint(s)", f"the {self.config.task} task's achieved goal is joint {missing[0]!r}: "
                          "publish it in /joint_states (merge the drawer's sensor with the arm's states)")
                )  # fmt: skip
                self.health.report(
                    "joint_states", ERROR, f"/joint_states lacks {what} {missing} (it has {list(names)}); {fix}"
                )
                return
        self.health.clear("joint_states")
        self._joints = (names, position, stamp)

    def on_object_pose(self, msg: Any, lookup: Lookup | None = None) -> None:
        """An object pose, transformed to the goal frame through ``lookup`` (tf2) when needed."""
        received = receive_object_pose(msg, self._pose, self.space.frame, lookup, self.config.transform_timeout_s,
                                       self.health)
        if received is not None:
            self._pose = received

    def on_step(self, step: StepData, now_ns: int) -> Event | None:
        """A ``/her/step`` of the policy: count it; the END/ABORT it causes, if any."""
        event = self.book.on_step(
            step.episode_id, step.next_achieved_goal, now_ns=now_ns, terminated=step.terminated,
            truncated=step.truncated, safety_flags=step.safety_flags,
        )
        return self._ended(event)

    # -- episodes -----------------------------------------------------------------------
    def choose_goal(self, requested: Sequence[float] = (), split: str = "") -> Vector:
        """The next desired goal: ``requested`` (checked) or one drawn from ``split``."""
        if self.book.running or self._starting:
            raise HerError(f"episode {self.book.episode_id} is still running; abort it first")
        if len(requested):
            goal = self.space.check(np.asarray(requested, dtype=np.float64), "requested goal")
            if goal.shape != (self.space.dim,):
                raise HerError(f"requested goal needs {self.space.dim} values, got {goal.size}")
            if not bool(self.region.contains(goal)):
                raise HerError(f"requested goal {goal.tolist()} is outside the task region "
                               f"{list(self.region.low)} .. {list(self.region.high)}")
            self._chosen = (goal, REQUESTED, NO_INDEX)
            return goal
        split = split or self.config.split
        if split == "heldout":
            index = self.heldout_started
            goal = heldout_goal(self.sampler, self.config.seed, index)
            self._chosen = (goal, EVAL, index)
            return goal
        if split != "train":
            raise HerError(f"split must be 'train' or 'heldout', got {split!r}")
        goal = self.sampler.sample()
        self._chosen = (goal, TRAIN, NO_INDEX)
        return goal

    def plan(self, policy: str = "") -> EvaluationPlan:
        """The evaluation plan of the auto-started episodes (what the recorder stores)."""
        cfg = self.config
        heldout = cfg.split == "heldout"
        return EvaluationPlan.for_task(
            cfg.task,
            cfg.split,
            planned_episodes=cfg.num_episodes if heldout else 0,
            policy=policy,
            stream_seed=cfg.seed,
            sampler=self.sampler,
        )

    def starting(self) -> None:
        """A start is under way (the node waits for the simulator reset)."""
        self._starting = True

    def start(self, goal: Vector, now_ns: int, reason: str = "") -> Event:
        """Start the episode of ``goal``; its START names the stream choose_goal drew it from
        (a goal that choose_goal did not draw is ``requested``)."""
        chosen, self._chosen = self._chosen, None
        split, index = REQUESTED, NO_INDEX
        if chosen is not None and np.array_equal(np.asarray(goal, dtype=np.float64), chosen[0]):
            split, index = chosen[1], chosen[2]
        event = self.book.start(goal, now_ns, reason, split=split, stream_index=index)
        self._starting = False
        self.auto_paused = False
        self.started += 1
        if split == EVAL:
            self.heldout_started += 1
        return event

    def start_failed(self, why: str, now_ns: int) -> None:
        self._chosen = None
        self._starting = False
        self._ended_ns = now_ns
        self.health.report("start", ERROR, f"could not start an episode: {why}")

    def abort(self, reason: str, now_ns: int) -> Event | None:
        return self._ended(self.book.abort(reason, now_ns))

    def _ended(self, event: Event | None) -> Event | None:
        if event is not None and event.kind != EventKind.START:
            self._ended_ns = event.stamp_ns
            if event.reason == "estop":
                self.auto_paused = True
        return event

    # -- per timer tick --------------------------------------------------------------------
    def tick(self, now_ns: int, listeners: Callable[[], set[str]] | None = None) -> tuple[Event | None, Vector | None]:
        """(timeout event or None, goal to auto-start now or None).

        ``listeners()`` names the nodes subscribed to ``/her/episode``; an auto start waits
        for ``wait_for_nodes`` among them, so a slow policy or recorder misses no START.
        """
        event = self._ended(self.book.on_time(now_ns))
        cfg = self.config
        if self.book.running and listeners is not None and cfg.wait_for_nodes:
            gone = set(cfg.wait_for_nodes) - listeners()
            if gone:
                event = self.abort(f"{','.join(sorted(gone))} stopped listening", now_ns) or event
        if cfg.num_episodes and self.started >= cfg.num_episodes and not self.book.running and not self._starting:
            self.health.report("done", OK, f"all num_episodes={cfg.num_episodes} episodes run: no more auto "
                               "starts (~/start_episode still starts one)")
        due = (
            cfg.auto_start
            and not self.auto_paused
            and not self.book.running
            and not self._starting
            and (cfg.num_episodes == 0 or self.started < cfg.num_episodes)
            and self.fresh(now_ns)
            and (self._ended_ns is None or (now_ns - self._ended_ns) * 1e-9 >= cfg.start_delay_s)
        )
        if not due:
            return event, None
        missing = set(cfg.wait_for_nodes) - (listeners() if listeners is not None else set(cfg.wait_for_nodes))
        if missing:
            self.health.report("waiting", WARN, f"waiting for {sorted(missing)} to subscribe to /her/episode")
            return event, None
        self.health.clear("waiting")
        self.health.clear("start")
        return event, self.choose_goal()

    def fresh(self, now_ns: int) -> bool:
        """True when the state the achieved goal needs is younger than ``state_timeout_s``."""
        from_pose = self.rig.achieved_from_object_pose
        stamp = self._pose[1] if from_pose and self._pose else None
        if not from_pose and self._joints is not None:
            stamp = self._joints[2]
        return stamp is not None and abs(now_ns - stamp) * 1e-9 <= self.config.state_timeout_s

    def achieved(self, now_ns: int) -> tuple[Vector, int] | None:
        """(achieved goal, measurement stamp) from the latest state, or None (stale or unusable)."""
        if not self.fresh(now_ns):
            what = "/object_pose" if self.rig.achieved_from_object_pose else "/joint_states"
            self.health.report("stale", STALE, f"no fresh {what} (timeout {self.config.state_timeout_s:g} s)")
            return None
        self.health.clear("stale")
        names, position, stamp = self._joints if self._joints is not None else ((), np.zeros(0), 0)
        pose, pose_stamp = self._pose if self._pose is not None else (None, 0)
        try:
            state = RobotState(names, position, stamp_ns=stamp, object_pose=pose, object_stamp_ns=pose_stamp)
            value = self.extractor(state)
        except HerError as exc:
            self.health.report("achieved", ERROR, f"achieved goal unavailable: {exc}")
            return None
        self.health.clear("achieved")
        return value, pose_stamp if self.rig.achieved_from_object_pose else stamp

    def event_data(self, event: Event) -> EventData:
        """The EpisodeEvent message fields of ``event``."""
        return EventData(
            int(event.kind), event.episode_id, self.config.task, self.space.name,
            event.desired_goal, event.num_steps, event.success, event.reason, event.stamp_ns,
            self.space.frame, event.split, event.stream_index,
        )

    @staticmethod
    def describe(data: EventData) -> str:
        """One log line for an episode event."""
        kind = ("START", "END", "ABORT", "DISCARD")[data.event]
        goal = [round(float(v), 3) for v in data.desired_goal]
        return (f"episode {data.episode_id} {kind} {data.reason} steps={data.num_steps} "
                f"success={data.success} goal={goal}")

    # -- what the node publishes and answers ----------------------------------------------
    def event_messages(self, types: MessageTypes, event: Event | None) -> tuple[list[tuple[str, Any]], list[str]]:
        """What ``event`` becomes: ``(publisher key, message)`` pairs - a START's desired goal
        (``desired``, latched) before the EpisodeEvent (``event``) - and the line to log."""
        if event is None:
            return [], []
        data = self.event_data(event)
        out: list[tuple[str, Any]] = []
        if data.event == EventKind.START:
            out.append(("desired", goal_msg(types, self.space, data.desired_goal, data.stamp_ns, data.episode_id)))
        return [*out, ("event", episode_event_msg(types, data))], [self.describe(data)]

    def achieved_msg(self, types: MessageTypes, now_ns: int) -> Any | None:
        """The ``achieved_goal`` message of this tick (episode_id 0 between episodes), or None (stale)."""
        achieved = self.achieved(now_ns)
        if achieved is None:
            return None
        return goal_msg(types, self.space, *achieved, self.book.episode_id or 0)

    def start_request(self, requested: Sequence[float], split: str) -> tuple[Vector | None, StartReply]:
        """The ``~/start_episode`` service: the goal to begin (None when refused) and the reply."""
        try:
            goal = self.choose_goal(list(requested), split)
        except HerError as exc:
            return None, StartReply(False, str(exc))
        return goal, StartReply(True, "starting", self.next_episode_id, tuple(float(v) for v in goal))

    def abort_request(self, now_ns: int) -> tuple[Event | None, bool, str]:
        """The ``~/abort_episode`` service: the ABORT (None without a running episode) and the reply."""
        event = self.abort("operator", now_ns)
        return event, event is not None, "aborted" if event else "no episode is running"

    def after_reset(self, result: Any, goal: Vector, now_ns: int, reason: str) -> Event | None:
        """The simulator reset's reply (a ``ResetSim`` response, None without one): the START of
        ``goal``, or None when the reset failed (reported; the next auto start retries)."""
        if result is None or not result.success:
            self.start_failed(f"simulator reset failed: {'no response' if result is None else result.message}", now_ns)
            return None
        return self.start(goal, now_ns, reason)

    @property
    def next_episode_id(self) -> int:
        """Id the next started episode will get."""
        return self.book.next_episode_id

    def status_values(self) -> dict[str, Any]:
        return {
            "task": self.config.task,
            "goal_space": self.space.name,
            "episode_id": self.book.episode_id if self.book.running else "none",
            "steps": self.book.num_steps,
            "episodes_started": self.started,
            "heldout_started": self.heldout_started,
            "ignored_steps": self.book.ignored_steps,
            "auto_paused": self.auto_paused,
        }
