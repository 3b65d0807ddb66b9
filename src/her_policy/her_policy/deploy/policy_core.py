"""What the policy node does each tick, without ROS: latest messages in, command and Steps out.

:class:`PolicyCore` wires the Safety issue's runtime exactly as ``her demo`` does
(:func:`her_policy.deploy.pipeline.pipeline_for` on the task's rig: actor -> action limits -> IK ->
joint step -> safety monitor) and drives the same episode stepper
(:class:`her_policy.deploy.stepper.EpisodeStepper`) from the node's inputs:

* ``/joint_states`` and ``/object_pose`` (latest message of each; a message that
  lacks the arm's joint names, an object pose whose transform to the goal frame is
  missing or stale, or a stamp older than the last one is dropped and reported; the
  state then turns stale and the monitor holds);
* ``/her/episode`` (START: gate the goal, reset the pipeline; END/ABORT: stop);
* ``/her/estop`` (latched by the monitor until :meth:`PolicyCore.reset_estop`).

Per tick it returns the joint targets to send (None: send nothing), the gripper
opening, the ``/her/step`` records that became complete (a step is published one
tick later, when its next observation exists, as :class:`ControlLoop` records it),
and feeds ``/diagnostics``. Episodes last ``loop.max_ticks_per_episode`` ticks; the
last step is marked truncated (a time limit), an e-stop ends the episode with the
ESTOP-flagged step, which the goals node turns into ABORT ``estop``.

A policy artefact that does not fit (another goal space, another observation
layout - another arm or task - or another action size) is not loaded:
:attr:`PolicyCore.artefact_error` says why (the managed node refuses to configure,
:mod:`her_policy.deploy.managed`).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from her_goals.checks import Fraction, NonNegativeFloat, PositiveFloat, check_fields
from her_goals.episode import EventKind
from her_goals.errors import ConfigError, HerError, StateError
from her_goals.evaluation import policy_id
from her_goals.extractors import RobotState
from her_goals.robot.arm_config import ArmConfig, load_arm_config
from her_goals.robot.rig import TaskRig
from her_goals.rosglue import topics
from her_goals.rosglue.frames import Lookup, receive_object_pose
from her_goals.rosglue.health import ERROR, OK, STALE, WARN, Health, worst
from her_goals.rosglue.msgconv import EventData, StepData, joint_state_fields
from her_goals.rosglue.params import doc
from her_goals.safety_flags import SafetyFlag
from her_goals.tasks import TaskName, TaskSpec
from her_policy.artefact.store import load_artefact
from her_policy.artefact.versions import versions_dir
from her_policy.deploy.fit import check_artefact
from her_policy.deploy.hot_swap import FollowingPolicy, SwapEvent
from her_policy.deploy.pipeline import TickPipeline, pipeline_for
from her_policy.deploy.runtime import RuntimeActor
from her_policy.deploy.safety import EpisodeCheck, SafetyDecision
from her_policy.deploy.scripted import scripted_controller
from her_policy.deploy.settings import load_safety_config
from her_policy.deploy.stepper import CompletedStep, EpisodeStepper, outcome

Vector = NDArray[np.float64]
_ESTOP = int(SafetyFlag.ESTOP)


@dataclass(frozen=True)
class PolicyConfig:
    """Parameters of policy_node (units in the names)."""

    task: TaskName = doc("reach", "registered task (her_goals.tasks): observation layout, goal space, goal region")
    artefact: str = doc("", "policy artefact directory (her train --out DIR)/policy; empty = fallback")
    follow: str = doc("", "a continuous learner's run directory (her learn --out RUN) to follow: its newest "
                      "version that fits acts, swapped in only when an episode starts; the fallback acts "
                      "until the first; empty = the fixed artefact")
    fallback: Literal["hold", "scripted", "random"] = doc(
        "hold", "without an artefact: hold the arm, the task's scripted controller, or random actions")
    random_eps: Fraction = doc(0.0, "exploration: chance per tick of a uniform random action")
    noise_std: NonNegativeFloat = doc(0.0, "exploration: std of Gaussian noise on the action (action units)")
    seed: int = doc(0, "seed of the exploration noise")
    tolerance_m: NonNegativeFloat = doc(0.0, "success threshold of the goal space (its units); 0 = the task's")
    safety_config: str = doc("", "safety stack YAML (loop, limits, safety); empty = built-in defaults")
    arm_config: str = doc("", "arm config YAML; empty = the packaged arm")
    command_interface: Literal["forward", "trajectory"] = doc(
        "forward", "forward_command_controller (Float64MultiArray) or joint_trajectory_controller")
    command_topic: str = doc("", "command topic; empty = the controller's default for the interface (relative)")
    gripper_topic: str = doc(topics.GRIPPER_COMMANDS, "gripper opening (m) as Float64MultiArray; empty = none")
    object_timeout_s: PositiveFloat = doc(0.5, "an object pose older than this is treated as missing (s)")
    diagnostics_rate_hz: PositiveFloat = doc(2.0, "rate of /diagnostics (Hz)")
    joint_states_topic: str = doc(topics.JOINT_STATES, "the arm driver's joint states (relative: in the node's namespace); read at startup")
    object_pose_topic: str = doc(topics.OBJECT_POSE, "the object pose, in any frame tf2 can transform to the goal frame; read at startup")
    estop_topic: str = doc(topics.ESTOP, "software e-stop (std_msgs/Bool, any QoS); read at startup")
    transform_timeout_s: PositiveFloat = doc(0.5, "an object pose whose transform to the goal frame is missing or stamped further than this from it is dropped (s)")

    def __post_init__(self) -> None:
        check_fields(self, where="policy_node")  # the task and the ranges declared on the fields
        if self.artefact and self.follow:
            raise ConfigError("policy_node: give artefact (a fixed policy) or follow (a learner's versions), not both")
        for name in ("joint_states_topic", "object_pose_topic", "estop_topic", "command_topic", "gripper_topic"):
            if getattr(self, name) or name not in ("command_topic", "gripper_topic"):
                topics.check_topic(getattr(self, name), f"policy_node: {name}")

    @property
    def topic(self) -> str:
        if self.command_topic:
            return self.command_topic
        if self.command_interface == "forward":
            return topics.FORWARD_COMMANDS
        return topics.TRAJECTORY_COMMANDS


class TickOut(NamedTuple):
    """What one tick asks the node to publish."""

    command: Vector | None
    gripper_m: float | None
    steps: list[StepData]


@dataclass
class _Episode:
    episode_id: int
    goal: Vector
    gate: EpisodeCheck
    done: bool = False


class PolicyCore:
    """Per-tick behaviour of policy_node; see the module docstring."""

    def __init__(self, config: PolicyConfig, *, actor: Any = None) -> None:
        self.config = config
        self.health = Health("her_policy: policy_node", config.task)
        self.stack = load_safety_config(config.safety_config or None)
        self.arm: ArmConfig = load_arm_config(config.arm_config) if config.arm_config else ArmConfig()
        self.rig = TaskRig.build(config.task, self.arm, tolerance=config.tolerance_m,
                                 control_period_s=self.stack.loop.period_s)
        """The task on this arm: goal space, observation, achieved goal, drawer geometry."""
        task = self.rig.task
        self.task = task
        self.space = self.rig.goal_space
        self.joint_names = tuple(self.arm.arm_joints)
        self.required = self.rig.observed_joints
        self.period_s = self.stack.loop.period_s
        self.needs_object = task.has_object
        self.rng = np.random.default_rng(config.seed)
        self.actor_kind, self.artefact_hash = "hold", ""
        self.artefact_error = ""
        """Why the configured artefact was not used ("" when it was, or none was asked for)."""
        self.following: FollowingPolicy | None = None
        """With ``follow``: the learner's versions, swapped in when an episode starts."""
        self._actor = actor if actor is not None else self._load_actor(task)
        if actor is not None:
            self.actor_kind = "injected"
        self.policy = self._policy_name()
        """Named in every Step: the artefact hash (or the fallback), ``+explore`` with exploration."""
        # The drawer task's geometry is read from the arm model here: a model without it is refused.
        self.pipeline: TickPipeline = pipeline_for(self.rig, self.stack, self._act)
        self.observe = self.pipeline.observe
        self.monitor = self.pipeline.monitor
        self.stepper = EpisodeStepper(self.pipeline, abort_on_estop=self.stack.loop.abort_on_estop)
        """The episode stepper this core drives (ControlLoop drives the same one)."""
        self._joints: tuple[tuple[str, ...], Vector, Vector, Vector, int] | None = None
        self._pose: tuple[Vector, int] | None = None
        self.estop_signal = False
        self.episode: _Episode | None = None
        self.last: SafetyDecision | None = None
        self._ticks = 0
        self._tick_ns: collections.deque[int] = collections.deque(maxlen=256)

    # -- the actor ---------------------------------------------------------------------------
    def _load_actor(self, task: TaskSpec) -> Any:
        cfg = self.config
        if cfg.follow:
            fallback = self._load_fallback(task)
            fields = [(f.name, f.start, f.stop) for f in self.rig.observation_layout.fields]
            self.following = FollowingPolicy(
                versions_dir(Path(cfg.follow)), self.space, cfg.task, fields, self.stack.limits.action_dim,
                fallback=fallback, on_swap=self._swapped)
            self.following.between_episodes()  # a version already published acts from the start
            self._follow_kind = self.actor_kind
            self.actor_kind = "following"
            return self.following
        if cfg.artefact:
            try:
                art = load_artefact(cfg.artefact, expect_goal_space=self.space)
                fields = [(f.name, f.start, f.stop) for f in self.rig.observation_layout.fields]
                check_artefact(art.metadata, art.layout.spec(), fields, self.space.dim,
                               self.stack.limits.action_dim, cfg.task)
                actor = RuntimeActor.from_artefact(cfg.artefact, expect_goal_space=self.space)
            except (HerError, OSError, KeyError, ValueError) as exc:
                self.artefact_error = f"artefact {cfg.artefact} not used: {exc}"
                self.health.report("artefact", ERROR, f"artefact {cfg.artefact} not used, holding: {exc}")
                return None
            self.actor_kind, self.artefact_hash = "artefact", actor.artefact_hash
            return actor
        return self._load_fallback(task)

    def _load_fallback(self, task: TaskSpec) -> Any:
        cfg = self.config
        if cfg.fallback == "scripted":
            ctrl = scripted_controller(cfg.task, self.rig.observation_layout)
            self.actor_kind = "scripted"
            return lambda o, g: ctrl({"observation": o, "desired_goal": g, "achieved_goal": g})
        if cfg.fallback == "random":
            self.actor_kind = "random"
            return lambda o, g: self.rng.uniform(-1.0, 1.0, self.stack.limits.action_dim)
        self.health.report("artefact", WARN, "no artefact and fallback 'hold': the arm is held")
        return None

    def _swapped(self, event: SwapEvent) -> None:
        if event.swapped:
            self.health.clear("version")
            self.artefact_hash = self.following.artefact_hash if self.following is not None else ""
        else:  # refused: the running version (or the fallback) keeps acting
            self.health.report("version", WARN, event.reason)

    def _between_episodes(self) -> None:
        """Following a learner: swap in a newer version that fits, then name the actor in Steps."""
        if self.following is None:
            return
        self.following.between_episodes()
        self.policy = self._policy_name()

    def _policy_name(self) -> str:
        if self.following is not None:
            base = self.following.artefact_hash or self._follow_kind
        else:
            base = self.artefact_hash or self.actor_kind
        return policy_id(base, noise_std=self.config.noise_std, random_eps=self.config.random_eps)

    def _act(self, observation: Vector, goal: Vector) -> Vector:
        if self._actor is None:
            raise HerError("no usable policy")
        dim = self.stack.limits.action_dim
        if self.config.random_eps and self.rng.random() < self.config.random_eps:
            return self.rng.uniform(-1.0, 1.0, dim)
        action = np.asarray(self._actor(observation, goal), dtype=np.float64)
        if self.config.noise_std:
            action = np.clip(action + self.rng.normal(0.0, self.config.noise_std, action.shape), -1.0, 1.0)
        return action

    # -- inputs ------------------------------------------------------------------------------
    def on_joint_state(self, msg: Any) -> None:
        try:
            names, pos, vel, eff, stamp = joint_state_fields(msg)
        except StateError as exc:
            self.health.report("joint_states", ERROR, f"bad /joint_states, dropped: {exc}")
            return
        missing = [n for n in self.required if n not in names]
        if missing:
            self.health.count("wrong_joint_names")
            self.health.report("joint_states", ERROR, f"/joint_states lacks joint(s) {missing} (has {list(names)}); "
                               "dropped - fix the arm config's joint names or remap the driver")
            return
        if self._joints is not None and stamp < self._joints[4]:
            self.health.count("out_of_order_joint_states")
            self.health.report("joint_order", WARN, "/joint_states stamp went backwards; dropped")
            return
        self.health.clear("joint_states")
        self._joints = (names, pos, vel, eff, stamp)

    def on_object_pose(self, msg: Any, lookup: Lookup | None = None) -> None:
        """An object pose, transformed to the goal frame through ``lookup`` (tf2) when needed."""
        received = receive_object_pose(msg, self._pose, self.space.frame, lookup, self.config.transform_timeout_s,
                                       self.health)
        if received is not None:
            self._pose = received

    def on_estop(self, active: bool) -> None:
        self.estop_signal = bool(active)
        if active:
            self.monitor.trigger_estop()

    def engage_estop(self) -> tuple[bool, str]:
        """The ``~/estop`` service: latch the stop (released by :meth:`reset_estop`)."""
        self.monitor.trigger_estop()
        return True, "engaged by the ~/estop service: holding the arm until ~/reset_estop"

    def reset_estop(self) -> tuple[bool, str]:
        if not self.monitor.reset_estop(signal_active=self.estop_signal):
            return False, "the e-stop signal on /her/estop is still true; release it first"
        return True, "e-stop released"

    def on_event(self, event: EventData) -> None:
        ep = self.episode
        if event.event == EventKind.START:
            if event.goal_space != self.space.name:
                self.health.report("episode", ERROR, f"episode {event.episode_id} is in goal space "
                                   f"{event.goal_space!r}, this policy acts in {self.space.name!r}; holding")
                self.episode = None
                return
            self.health.clear("episode")
            self._between_episodes()  # never mid-episode
            goal = np.asarray(event.desired_goal, dtype=np.float64)
            gate = self.stepper.start(goal, self.stack.loop.max_ticks_per_episode or self.task.episode_steps)
            self.episode = _Episode(event.episode_id, goal, gate)
        elif ep is not None and event.episode_id == ep.episode_id:
            self.episode = None

    # -- the tick ----------------------------------------------------------------------------
    def state(self, now_ns: int) -> RobotState | None:
        if self._joints is None:
            self.health.report("stale", STALE, "waiting for /joint_states")
            return None
        pose, pose_stamp = self._pose if self._pose is not None else (None, 0)
        if pose is not None and abs(now_ns - pose_stamp) * 1e-9 > self.config.object_timeout_s:
            pose, pose_stamp = None, 0
        if pose is None and self.needs_object:
            self.health.report("object_missing", ERROR, "no fresh /object_pose: the observation needs it; holding")
        elif pose is not None:
            self.health.clear("object_missing")
        names, pos, vel, eff, stamp = self._joints
        return RobotState(names, pos, vel, eff, stamp, pose, pose_stamp)

    def tick(self, now_ns: int) -> TickOut:
        t0 = time.perf_counter_ns()
        state = self.state(now_ns)
        if state is None:
            return TickOut(None, None, [])
        self.health.clear("stale")
        out = self._tick(state, now_ns)
        self._ticks += 1
        self._tick_ns.append(time.perf_counter_ns() - t0)
        return out

    def _tick(self, state: RobotState, now: int) -> TickOut:
        ep = self.episode
        estop = self.estop_signal
        if ep is None or ep.done:
            if self.monitor.estop_latched or estop:  # hold at the measured position
                self.last = self.monitor.hold(state, now, flags=_ESTOP if estop else 0)
                return TickOut(self.last.command, None, [])
            return TickOut(None, None, [])
        stepper = self.stepper
        if stepper.refused:
            d, refused = stepper.refuse(state, now, ep.gate)
            self.health.report("refused", ERROR, f"episode {ep.episode_id} refused: {stepper.refused}")
            ep.done, self.last = True, d
            return TickOut(d.command, None, [self._step(ep, refused)])
        self.health.clear("refused")
        if stepper.finishing:  # the last step's next observation is this state
            ep.done = True
            last = stepper.finish(state)
            command = self.monitor.hold(state, now).command if self.monitor.estop_latched else None
            return TickOut(command, None, [self._step(ep, last)] if last is not None else [])
        result, done = stepper.tick(state, now, estop=estop)
        self.last = d = result.decision
        return TickOut(d.command, d.gripper_m, [self._step(ep, done)] if done is not None else [])

    def _step(self, ep: _Episode, step: CompletedStep) -> StepData:
        result, after = step.result, step.after
        d = result.decision
        n_obs, n_goal = self.rig.observation_layout.size, self.space.dim

        def vec(x: Vector | None, n: int) -> Vector:
            return x if x is not None else np.full(n, np.nan)

        reward, success = outcome(self.space, after.achieved_goal, ep.goal)
        return StepData(
            episode_id=ep.episode_id, step=step.index, observation=vec(result.observation, n_obs),
            next_observation=vec(after.observation, n_obs), action_raw=result.raw_action,
            action_applied=result.applied_action, achieved_goal=vec(result.achieved_goal, n_goal),
            next_achieved_goal=vec(after.achieved_goal, n_goal), desired_goal=ep.goal, reward=reward,
            terminated=False, truncated=step.truncated, is_success=success, safety_flags=d.flags,
            safety_cost=d.safety_cost, safety_reasons=d.reasons, stamp_ns=max(0, step.stamp_ns),
            frame_id=self.space.frame, policy=self.policy)

    # -- diagnostics -------------------------------------------------------------------------
    def diagnostic_level(self) -> int:
        return worst([self.health.level, int(self.last.status) if self.last is not None else OK])

    def status_values(self) -> dict[str, Any]:
        d, ep = self.last, self.episode
        ticks = np.array(self._tick_ns or [0], dtype=np.float64) * 1e-3
        return {
            "actor": self.actor_kind, "artefact_hash": self.artefact_hash or "none", "policy": self.policy,
            "episode_id": ep.episode_id if ep is not None else "none",
            "estop_latched": self.monitor.estop_latched, "estop_signal": self.estop_signal,
            "last_flags": ",".join(d.reasons) if d is not None else "", "last_cost": d.safety_cost if d else 0.0,
            "last_status": d.status.name if d is not None else "none",
            "last_detail": "; ".join(d.details) if d is not None else "",
            "tick_p50_us": float(np.percentile(ticks, 50)), "tick_max_us": float(ticks.max()),
            "rate_hz": self.stack.loop.rate_hz, "ticks": self._ticks,
        }
