"""What the MuJoCo bridge node does, without ROS: the simulated arm behind a driver's interface.

:class:`BridgeCore` owns an :class:`her_mujoco.sim.ArmSim` and behaves like an arm
driver with ros2_control controllers:

* commands arrive as a ``forward_command_controller`` array (one position per arm
  joint, rad) or a ``JointTrajectory`` (its last point, by joint name), and the
  gripper opening (m) as a one-element array; like ros2_control, a command is
  held until the next one (no timeout), and a malformed one is rejected and
  reported, never half-applied;
* every :meth:`BridgeCore.step` advances ``1 / rate_hz`` of simulated time and
  yields the joint state and object pose to publish;
* :meth:`BridgeCore.reset` puts the arm in the task's start posture and places the
  object the way the task does (parked out of reach for reach; for the object tasks
  at least 5 cm from the goal and 10 cm from the tool), and shows the goal with the marker.

Like a robot, the bridge publishes its transforms: with ``object_frame`` set to a camera
frame, ``/object_pose`` is published in that frame (as a perception node would) and the
camera's pose in the arm's base frame (``camera_xyz_m``, ``camera_rpy_rad``) goes out on
``/tf_static``, so the goals and policy nodes go through tf2.

Sim-to-real knobs: ``command_latency_s`` delays commands, ``state_latency_s``
delays measurements, ``joint_noise_std_rad``/``object_noise_std_m`` add Gaussian
noise to what is published (the simulation itself stays noise-free). Time is the
bridge's own integer-nanosecond clock (it never goes back on reset), published as
``/clock`` when asked.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.checks import Range, check_fields
from her_goals.errors import ConfigError, HerError, StateError
from her_goals.robot.arm_config import ArmConfig, load_arm_config
from her_goals.robot.kinematics import Kinematics
from her_goals.robot.rig import TaskRig
from her_goals.rosglue import msgconv as mc
from her_goals.rosglue import topics
from her_goals.rosglue.frames import Transform, from_xyz_rpy, invert, transform_pose
from her_goals.rosglue.health import ERROR, WARN, Health
from her_goals.rosglue.params import doc
from her_goals.tasks import TaskName
from her_mujoco.sim import ArmSim
from her_mujoco.tasks import PARKED_OBJECT_M, sample_object_start, solve_start_posture

Vector = NDArray[np.float64]


_SimKnob = Annotated[float, Range(ge=0, le=10)]
"""A sim-to-real knob (latency in s, noise in rad or m): 0 (off) to 10."""


@dataclass(frozen=True)
class BridgeConfig:
    """Parameters of bridge_node (units in the names)."""

    task: TaskName = doc("reach", "registered task (her_goals.tasks) whose object placement reset uses")
    arm_config: str = doc("", "arm config YAML; empty = the packaged arm")
    rate_hz: Annotated[float, Range(ge=1, le=1000)] = doc(100.0, "simulation step and /joint_states rate (Hz)")
    real_time_factor: Annotated[float, Range(ge=0.01, le=100)] = doc(1.0, "simulated seconds per wall-clock second")
    command_latency_s: _SimKnob = doc(0.0, "delay before a received command reaches the simulated arm (s)")
    state_latency_s: _SimKnob = doc(0.0, "delay before a measured state is published (s)")
    joint_noise_std_rad: _SimKnob = doc(0.0, "Gaussian noise on published joint positions (rad, m for fingers)")
    object_noise_std_m: _SimKnob = doc(0.0, "Gaussian noise on the published object position (m)")
    seed: int = doc(0, "seed of object placement and noise")
    publish_clock: bool = doc(False, "publish /clock from the simulation (other nodes: use_sim_time)")
    joint_states_topic: str = doc(topics.JOINT_STATES, "where the joint states go (relative: in the node's namespace)")
    object_pose_topic: str = doc(topics.OBJECT_POSE, "where the object pose goes (relative: in the node's namespace)")
    object_frame: str = doc("", "frame of the published object pose; empty = the arm's base frame, another name = a camera at camera_xyz_m/camera_rpy_rad (on /tf_static)")
    camera_xyz_m: tuple[float, ...] = doc((1.2, 0.0, 0.8), "camera position in the base frame (m), with object_frame")
    camera_rpy_rad: tuple[float, ...] = doc((0.0, 0.6, 3.14159), "camera roll, pitch, yaw in the base frame (rad), with object_frame")

    def __post_init__(self) -> None:
        check_fields(self, where="bridge_node")  # the task and the ranges declared on the fields
        topics.check_topic(self.joint_states_topic, "bridge_node: joint_states_topic")
        topics.check_topic(self.object_pose_topic, "bridge_node: object_pose_topic")
        if len(self.camera_xyz_m) != 3 or len(self.camera_rpy_rad) != 3:
            raise ConfigError("bridge_node: camera_xyz_m and camera_rpy_rad need 3 values each")

    @property
    def wall_period_s(self) -> float:
        return 1.0 / (self.rate_hz * self.real_time_factor)


class Measurement(NamedTuple):
    """What to publish: joint state and (optionally) the object pose, stamped with sim time."""

    stamp_ns: int
    names: tuple[str, ...]
    position: Vector
    velocity: Vector
    effort: Vector
    object_pose: Vector | None


class BridgeCore:
    """The simulated arm behind ros2_control-like topics; see the module docstring."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        arm = load_arm_config(config.arm_config) if config.arm_config else ArmConfig()
        # One sim step per bridge tick: the arm config's control rate becomes the bridge rate.
        self.arm = dataclasses.replace(arm, control_rate_hz=config.rate_hz)
        self.sim = ArmSim(self.arm)
        self.health = Health("her_mujoco: bridge_node", config.task)
        self.rng = np.random.default_rng(config.seed)
        self.step_ns = round(self.sim.control_period_s * 1e9)
        self.clock_ns = 0
        self._commands: collections.deque[tuple[int, Vector | None, float | None]] = collections.deque()
        self._states: collections.deque[Measurement] = collections.deque()
        self.joint_names = tuple(self.arm.arm_joints)
        self.object_frame = config.object_frame or self.arm.base_frame
        self.camera: Transform | None = None
        """``base <- camera`` when the object pose is published in a camera frame."""
        if self.object_frame != self.arm.base_frame:
            self.camera = from_xyz_rpy(self.arm.base_frame, self.object_frame, config.camera_xyz_m, config.camera_rpy_rad)
        self._to_camera = invert(self.camera) if self.camera is not None else None
        # The task's start posture (push: tool at the block's height), as the task env resets.
        kinematics = Kinematics(self.arm, self.sim.model)
        self.rig = TaskRig.build(config.task, self.arm, kinematics=kinematics)
        """The task on the simulated arm: its start, object placement and held gripper."""
        task = self.rig.task
        self._start_q: Vector = (
            np.asarray(self.arm.home_qpos_rad, dtype=np.float64)
            if task.tool_start is None
            else solve_start_posture(kinematics, task.tool_start, 1.0 / arm.control_rate_hz,
                                     what=f"bridge task {config.task!r}")
        )
        self._tool_start: Vector = kinematics.fk(self._start_q)
        # Push holds the gripper shut whatever is commanded (FetchPush's block_gripper).
        self._hold_shut = self.rig.hold_gripper_shut
        self._target: Vector = self._start_q.copy()
        self._opening: float = float(self.arm.home_gripper_opening_m)
        self.reset()

    # -- commands ----------------------------------------------------------------------------
    def command(self, positions: ArrayLike) -> bool:
        """A forward_command_controller command: one position (rad) per arm joint, in order."""
        q = np.asarray(positions, dtype=np.float64).reshape(-1)
        if q.shape != (len(self.joint_names),) or not np.isfinite(q).all():
            self.health.count("rejected_commands")
            self.health.report("command", ERROR, f"command rejected: need {len(self.joint_names)} finite "
                               f"positions for {list(self.joint_names)}, got {q.tolist()}")
            return False
        self.health.clear("command")
        self._commands.append((self.clock_ns + round(self.config.command_latency_s * 1e9), q, None))
        return True

    def trajectory(self, joint_names: Sequence[str], positions: ArrayLike) -> bool:
        """A JointTrajectory's target: positions by joint name (any order, extra joints ignored)."""
        where = {n: i for i, n in enumerate(joint_names)}
        pos = np.asarray(positions, dtype=np.float64).reshape(-1)
        missing = [n for n in self.joint_names if n not in where]
        if missing or pos.size != len(where):
            self.health.count("rejected_commands")
            self.health.report("command", ERROR, f"trajectory rejected: joints {list(joint_names)} with "
                               f"{pos.size} positions; the arm needs {list(self.joint_names)}")
            return False
        return self.command(pos[[where[n] for n in self.joint_names]])

    def trajectory_msg(self, msg: Any) -> bool:
        """A ``trajectory_msgs/JointTrajectory`` message: its last point (one without points is rejected)."""
        if not msg.points:
            self.health.report("command", ERROR, "trajectory rejected: it has no points")
            return False
        return self.trajectory(list(msg.joint_names), list(msg.points[-1].positions))

    def gripper(self, values: ArrayLike) -> bool:
        """Gripper opening command: one value (m), 0 closed .. gripper_max_opening_m open."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.shape != (1,) or not np.isfinite(v).all():
            self.health.report("gripper", ERROR, f"gripper command rejected: need one finite opening (m), got {v.tolist()}")
            return False
        self.health.clear("gripper")
        self._commands.append((self.clock_ns + round(self.config.command_latency_s * 1e9), None, float(v[0])))
        return True

    # -- simulation --------------------------------------------------------------------------
    def step(self) -> list[Measurement]:
        """Apply due commands, advance one period, return the measurements due for publishing."""
        while self._commands and self._commands[0][0] <= self.clock_ns:
            _, q, opening = self._commands.popleft()
            self._target = q if q is not None else self._target
            self._opening = opening if opening is not None and not self._hold_shut else self._opening
            self.sim.set_joint_targets(self._target, self._opening)
        self.sim.step()
        self.clock_ns += self.step_ns
        if self.sim.diverged:
            self.health.report("physics", WARN, "the simulation diverged and was reset")
            self.reset()
        self._states.append(self._measure())
        due = self.clock_ns - round(self.config.state_latency_s * 1e9)
        out = []
        while self._states and self._states[0].stamp_ns <= due:
            out.append(self._states.popleft())
        return out

    def _measure(self) -> Measurement:
        s = self.sim.state()
        position = s.position.copy()
        if self.config.joint_noise_std_rad:
            position += self.rng.normal(0.0, self.config.joint_noise_std_rad, position.shape)
        pose = s.object_pose
        if pose is not None and self.config.object_noise_std_m:
            pose = pose.copy()
            pose[:3] += self.rng.normal(0.0, self.config.object_noise_std_m, 3)
        return Measurement(self.clock_ns, s.joint_names, position, s.velocity.copy(), s.effort.copy(), pose)

    def reset(self, object_position: ArrayLike = (), desired_goal: ArrayLike = (), seed: int = -1) -> Vector | None:
        """Arm at the task's start, object placed (given, or by the task's rule), goal marker at ``desired_goal``."""
        if seed >= 0:
            self.rng = np.random.default_rng(seed)
        goal = np.asarray(desired_goal, dtype=np.float64).reshape(-1)
        obj = np.asarray(object_position, dtype=np.float64).reshape(-1)
        if goal.size not in (0, 3) or obj.size not in (0, 3):
            raise StateError(f"reset: object_position and desired_goal need 3 values (m) or none, "
                             f"got {obj.size} and {goal.size}")
        if obj.size == 0:
            obj = self._placement(goal if goal.size else None)
        self._opening = 0.0 if self._hold_shut else float(self.arm.home_gripper_opening_m)
        self.sim.reset(object_position=obj if self.arm.object_body is not None else None,
                       qpos=self._start_q, gripper_opening_m=self._opening)
        self._target = self._start_q.copy()
        if goal.size:
            self.sim.set_goal_marker(goal)
        self._commands.clear()
        self._states.clear()
        return self.sim.object_pose()

    def reset_request(self, object_position: Sequence[float], desired_goal: Sequence[float],
                      seed: int) -> tuple[bool, str, list[float]]:
        """The ``~/reset`` service: (success, message, object position placed; [] without an object)."""
        try:
            pose = self.reset(list(object_position), list(desired_goal), seed)
        except HerError as exc:
            return False, str(exc), []
        return True, "reset", [] if pose is None else [float(v) for v in pose[:3]]

    def messages(self, types: mc.MessageTypes, measurements: Sequence[Measurement],
                 wall_now_ns: int) -> list[tuple[str, Any]]:
        """What one :meth:`step` publishes: ``(publisher key, message)`` pairs.

        ``clock`` (the simulated time, with ``publish_clock``), then per measurement its
        ``joint_states`` and ``object_pose`` (in :attr:`object_frame`). A measurement is
        stamped as a driver stamps it: its time on the clock the other nodes use - the
        simulated clock with ``/clock``, else ``wall_now_ns`` less ``state_latency_s``.
        """
        out: list[tuple[str, Any]] = []
        if self.config.publish_clock:
            out.append(("clock", mc.clock_msg(types, self.clock_ns)))
        wall_stamp = wall_now_ns - round(self.config.state_latency_s * 1e9)
        for m in measurements:
            stamp = m.stamp_ns if self.config.publish_clock else wall_stamp
            out.append(("joint_states", mc.joint_state_msg(types, m.names, m.position, m.velocity, m.effort, stamp)))
            if m.object_pose is not None:
                pose, frame = self.published_pose(m.object_pose)
                out.append(("object_pose", mc.pose_stamped_msg(types, pose, stamp, frame)))
        return out

    def static_transforms(self) -> list[Transform]:
        """What goes out on ``/tf_static``: the camera's pose in the base frame, if any."""
        return [self.camera] if self.camera is not None else []

    def published_pose(self, pose: Vector) -> tuple[Vector, str]:
        """The object pose as perception publishes it: in ``object_frame``."""
        if self._to_camera is None:
            return pose, self.object_frame
        return transform_pose(self._to_camera, pose), self.object_frame

    def _placement(self, goal: Vector | None) -> Vector:
        task = self.rig.task
        if not task.has_object:
            return PARKED_OBJECT_M.copy()
        try:
            return sample_object_start(task, self.rng, goal, self._tool_start)
        except ConfigError as exc:
            raise StateError(f"reset: {exc}") from None

    def status_values(self) -> dict[str, Any]:
        return {"sim_time_s": self.clock_ns * 1e-9, "task": self.config.task,
                "pending_commands": len(self._commands)}
