"""ROS message <-> core object conversions, shared by every HER-ROS node.

Plain functions over duck-typed message objects: they read fields by name and
build messages through a :class:`MessageTypes` factory, so the same code runs
with the classes rclpy generates (on a robot) and with the ``rosbags`` classes of
the ROS 2 Jazzy typestore (tests, bags, CI without ROS). The two differ in three
places, all handled here:

* ``float64[]`` fields: rclpy wants ``array.array('d')`` (or a list of floats),
  rosbags wants a numpy array;
* ``byte`` fields (``DiagnosticStatus.level``): rclpy wants ``bytes``, rosbags an
  int; the message class's own constants (``OK``, ``WARN``...) are used instead;
* rosbags constructors need every field, rclpy's default the missing ones; every
  field is always passed.

Nothing here imports rclpy. :meth:`MessageTypes.from_ros` imports the generated
message modules lazily (``sensor_msgs.msg`` etc.) when a node asks for a type.
"""

from __future__ import annotations

import array
import dataclasses
import importlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import StateError
from her_goals.extractors import RobotState
from her_goals.spaces import GoalSpace

Vector = NDArray[np.float64]

JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
GOAL = "her_interfaces/msg/Goal"
STEP = "her_interfaces/msg/Step"
EPISODE_EVENT = "her_interfaces/msg/EpisodeEvent"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
FLOAT64_MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
BOOL = "std_msgs/msg/Bool"
CLOCK = "rosgraph_msgs/msg/Clock"

_LEVEL_NAMES = ("OK", "WARN", "ERROR", "STALE")
_NS = 1_000_000_000


class MessageTypes:
    """Message classes by ROS type name (``"sensor_msgs/msg/JointState"``) and the float-array type.

    ``MessageTypes.from_rosbags(store)`` for rosbags typestores,
    ``MessageTypes.from_ros()`` inside a ROS 2 process.
    """

    def __init__(
        self,
        lookup: Callable[[str], Any],
        float_array: Callable[[Vector], Any],
    ) -> None:
        self._lookup = lookup
        self._cache: dict[str, Any] = {}
        self.float_array = float_array
        """Turns a float64 numpy vector into what a ``float64[]`` field accepts."""

    def __getitem__(self, name: str) -> Any:
        cls = self._cache.get(name)
        if cls is None:
            cls = self._cache[name] = self._lookup(name)
        return cls

    @classmethod
    def from_rosbags(cls, store: Any) -> MessageTypes:
        """Classes of a rosbags typestore (``store.types``); ``float64[]`` as numpy arrays."""
        return cls(store.types.__getitem__, lambda v: np.ascontiguousarray(v, dtype=np.float64))

    @classmethod
    def from_ros(cls) -> MessageTypes:
        """Generated ROS 2 classes, imported on first use; ``float64[]`` as ``array.array('d')``."""
        return cls(_import_ros_type, _to_double_array)


def _import_ros_type(name: str) -> Any:
    pkg, kind, typename = name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), typename)


def _to_double_array(values: Vector) -> array.array[float]:
    out = array.array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


def _floats(values: Any) -> Vector:
    """A float64 vector from a message's ``float64[]`` field (array.array, list or ndarray)."""
    return np.array(values, dtype=np.float64).reshape(-1)


# -- time ------------------------------------------------------------------------------------


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a ``builtin_interfaces/Time`` (or Duration)."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def time_msg(types: MessageTypes, stamp_ns: int, kind: str = "Time") -> Any:
    """A ``builtin_interfaces/Time`` (or ``Duration``) from integer nanoseconds (>= 0 for Time)."""
    sec, nanosec = divmod(int(stamp_ns), _NS)
    return types[f"builtin_interfaces/msg/{kind}"](sec=sec, nanosec=nanosec)


def header_msg(types: MessageTypes, stamp_ns: int, frame_id: str) -> Any:
    """A ``std_msgs/Header``."""
    return types["std_msgs/msg/Header"](stamp=time_msg(types, stamp_ns), frame_id=frame_id)


# -- robot state -----------------------------------------------------------------------------


def joint_state_fields(msg: Any) -> tuple[tuple[str, ...], Vector, Vector, Vector, int]:
    """(names, position, velocity, effort, stamp_ns) of a ``sensor_msgs/JointState``.

    Raises :class:`StateError` when the arrays do not match the names (velocity and
    effort may be empty), as a malformed driver message would.
    """
    names = tuple(str(n) for n in msg.name)
    position, velocity, effort = _floats(msg.position), _floats(msg.velocity), _floats(msg.effort)
    n = len(names)
    for what, arr in (("position", position), ("velocity", velocity), ("effort", effort)):
        if arr.size not in ((n,) if what == "position" else (0, n)):
            raise StateError(
                f"/joint_states message has {n} names but {arr.size} {what} values"
            )
    return names, position, velocity, effort, stamp_to_ns(msg.header.stamp)


def pose_fields(msg: Any) -> tuple[Vector, int, str]:
    """(pose ``[x y z qw qx qy qz]``, stamp_ns, frame_id) of a ``geometry_msgs/PoseStamped``."""
    p, q = msg.pose.position, msg.pose.orientation
    pose = np.array([p.x, p.y, p.z, q.w, q.x, q.y, q.z], dtype=np.float64)
    return pose, stamp_to_ns(msg.header.stamp), str(msg.header.frame_id)


def robot_state(
    joint_state: Any,
    object_pose: Any | None = None,
    *,
    expect_frame: str | None = None,
) -> RobotState:
    """A :class:`RobotState` from a JointState message and an optional PoseStamped.

    With ``expect_frame`` an object pose in another frame is an error (the goals
    are expressed in that frame; nothing here looks up TF).
    """
    names, position, velocity, effort, stamp_ns = joint_state_fields(joint_state)
    pose: Vector | None = None
    pose_stamp = 0
    if object_pose is not None:
        pose, pose_stamp, frame = pose_fields(object_pose)
        if expect_frame is not None and frame != expect_frame:
            raise StateError(
                f"/object_pose is in frame {frame!r}, goals are in {expect_frame!r}; "
                "publish the pose in the goal frame"
            )
    return RobotState(names, position, velocity, effort, stamp_ns, pose, pose_stamp)


def joint_state_msg(
    types: MessageTypes,
    names: Sequence[str],
    position: ArrayLike,
    velocity: ArrayLike,
    effort: ArrayLike,
    stamp_ns: int,
    frame_id: str = "",
) -> Any:
    """A ``sensor_msgs/JointState`` (what a driver or the MuJoCo bridge publishes)."""
    fa = types.float_array
    return types[JOINT_STATE](
        header=header_msg(types, stamp_ns, frame_id),
        name=list(names),
        position=fa(np.asarray(position, dtype=np.float64)),
        velocity=fa(np.asarray(velocity, dtype=np.float64)),
        effort=fa(np.asarray(effort, dtype=np.float64)),
    )


def pose_stamped_msg(types: MessageTypes, pose: ArrayLike, stamp_ns: int, frame_id: str) -> Any:
    """A ``geometry_msgs/PoseStamped`` from ``[x y z qw qx qy qz]``."""
    x, y, z, qw, qx, qy, qz = (float(v) for v in np.asarray(pose, dtype=np.float64))
    return types[POSE_STAMPED](
        header=header_msg(types, stamp_ns, frame_id),
        pose=types["geometry_msgs/msg/Pose"](
            position=types["geometry_msgs/msg/Point"](x=x, y=y, z=z),
            orientation=types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
        ),
    )


# -- goals and episodes ----------------------------------------------------------------------


class GoalData(NamedTuple):
    """The fields of a ``her_interfaces/Goal``."""

    goal_space: str
    value: Vector
    tolerance: float
    episode_id: int
    stamp_ns: int
    frame_id: str


def goal_msg(
    types: MessageTypes, space: GoalSpace, value: ArrayLike, stamp_ns: int, episode_id: int
) -> Any:
    """A ``her_interfaces/Goal`` in ``space`` (its frame and tolerance)."""
    return types[GOAL](
        header=header_msg(types, stamp_ns, space.frame),
        goal_space=space.name,
        value=types.float_array(np.asarray(value, dtype=np.float64)),
        tolerance=float(space.tolerance),
        episode_id=int(episode_id),
    )


def goal_data(msg: Any) -> GoalData:
    """The fields of a ``her_interfaces/Goal``."""
    return GoalData(
        str(msg.goal_space),
        _floats(msg.value),
        float(msg.tolerance),
        int(msg.episode_id),
        stamp_to_ns(msg.header.stamp),
        str(msg.header.frame_id),
    )


class EventData(NamedTuple):
    """The fields of a ``her_interfaces/EpisodeEvent`` (``event``: EpisodeEvent.START...)."""

    event: int
    episode_id: int
    task: str
    goal_space: str
    desired_goal: Vector
    num_steps: int
    success: bool
    reason: str
    stamp_ns: int
    frame_id: str = ""
    split: str = ""
    """Goal stream of the requested goal: ``eval``, ``train``, ``requested`` (her_goals.evaluation)."""
    stream_index: int = -1
    """Index of the goal in the planned stream; -1 when it did not come from one."""


def episode_event_msg(types: MessageTypes, data: EventData) -> Any:
    """A ``her_interfaces/EpisodeEvent``."""
    return types[EPISODE_EVENT](
        header=header_msg(types, data.stamp_ns, data.frame_id),
        event=int(data.event),
        episode_id=int(data.episode_id),
        task=data.task,
        goal_space=data.goal_space,
        desired_goal=types.float_array(np.asarray(data.desired_goal, dtype=np.float64)),
        num_steps=int(data.num_steps),
        success=bool(data.success),
        reason=data.reason,
        split=str(data.split),
        stream_index=int(data.stream_index),
    )


def episode_event_data(msg: Any) -> EventData:
    """The fields of a ``her_interfaces/EpisodeEvent``."""
    return EventData(
        int(msg.event),
        int(msg.episode_id),
        str(msg.task),
        str(msg.goal_space),
        _floats(msg.desired_goal),
        int(msg.num_steps),
        bool(msg.success),
        str(msg.reason),
        stamp_to_ns(msg.header.stamp),
        str(msg.header.frame_id),
        str(getattr(msg, "split", "")),  # absent in messages of an older definition
        int(getattr(msg, "stream_index", -1)),
    )


@dataclasses.dataclass(frozen=True)
class StepData:
    """The fields of a ``her_interfaces/Step`` (vectors as float64 arrays)."""

    episode_id: int
    step: int
    observation: Vector
    next_observation: Vector
    action_raw: Vector
    action_applied: Vector
    achieved_goal: Vector
    next_achieved_goal: Vector
    desired_goal: Vector
    reward: float
    terminated: bool
    truncated: bool
    is_success: bool
    safety_flags: int
    safety_cost: float
    safety_reasons: tuple[str, ...]
    stamp_ns: int
    frame_id: str = ""
    policy: str = ""
    """The policy that produced the action: an artefact hash, ``scripted``... (her_goals.evaluation)."""

    def recorder_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``her_recorder.EpisodeRecorder.record_step`` (values as given)."""
        return {
            "observation": self.observation,
            "next_observation": self.next_observation,
            "action_raw": self.action_raw,
            "action_applied": self.action_applied,
            "achieved_goal": self.achieved_goal,
            "next_achieved_goal": self.next_achieved_goal,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "is_success": self.is_success,
            "safety_flags": self.safety_flags,
            "safety_cost": self.safety_cost,
            "safety_reasons": self.safety_reasons,
            "stamp_ns": self.stamp_ns,
            "policy": self.policy,
        }


_STEP_VECTORS = (
    "observation",
    "next_observation",
    "action_raw",
    "action_applied",
    "achieved_goal",
    "next_achieved_goal",
    "desired_goal",
)


def step_msg(types: MessageTypes, data: StepData) -> Any:
    """A ``her_interfaces/Step``."""
    fa = types.float_array
    vectors = {k: fa(np.asarray(getattr(data, k), dtype=np.float64)) for k in _STEP_VECTORS}
    return types[STEP](
        header=header_msg(types, data.stamp_ns, data.frame_id),
        episode_id=int(data.episode_id),
        step=int(data.step),
        **vectors,
        reward=float(data.reward),
        terminated=bool(data.terminated),
        truncated=bool(data.truncated),
        is_success=bool(data.is_success),
        safety_flags=int(data.safety_flags),
        safety_cost=float(data.safety_cost),
        safety_reasons=[str(r) for r in data.safety_reasons],
        policy=str(data.policy),
    )


def step_data(msg: Any) -> StepData:
    """The fields of a ``her_interfaces/Step``."""
    return StepData(
        episode_id=int(msg.episode_id),
        step=int(msg.step),
        **{k: _floats(getattr(msg, k)) for k in _STEP_VECTORS},
        reward=float(msg.reward),
        terminated=bool(msg.terminated),
        truncated=bool(msg.truncated),
        is_success=bool(msg.is_success),
        safety_flags=int(msg.safety_flags),
        safety_cost=float(msg.safety_cost),
        safety_reasons=tuple(str(r) for r in msg.safety_reasons),
        stamp_ns=stamp_to_ns(msg.header.stamp),
        frame_id=str(msg.header.frame_id),
        policy=str(getattr(msg, "policy", "")),  # absent in messages of an older definition
    )


# -- commands --------------------------------------------------------------------------------


def float64_multi_array_msg(types: MessageTypes, values: ArrayLike) -> Any:
    """A ``std_msgs/Float64MultiArray`` (what ``forward_command_controller`` takes), no layout."""
    layout = types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return types[FLOAT64_MULTI_ARRAY](
        layout=layout, data=types.float_array(np.asarray(values, dtype=np.float64))
    )


def float64_multi_array_values(msg: Any) -> Vector:
    """The data of a ``std_msgs/Float64MultiArray``."""
    return _floats(msg.data)


def joint_trajectory_msg(
    types: MessageTypes,
    joint_names: Sequence[str],
    positions: ArrayLike,
    time_from_start_s: float,
    stamp_ns: int = 0,
) -> Any:
    """A one-point ``trajectory_msgs/JointTrajectory`` (stamp 0: start on receipt)."""
    fa = types.float_array
    empty = np.zeros(0)
    point = types["trajectory_msgs/msg/JointTrajectoryPoint"](
        positions=fa(np.asarray(positions, dtype=np.float64)),
        velocities=fa(empty),
        accelerations=fa(empty),
        effort=fa(empty),
        time_from_start=time_msg(types, round(time_from_start_s * 1e9), "Duration"),
    )
    return types[JOINT_TRAJECTORY](
        header=header_msg(types, stamp_ns, ""), joint_names=list(joint_names), points=[point]
    )


def joint_trajectory_target(msg: Any, joint_names: Sequence[str]) -> Vector:
    """Positions of ``joint_names`` at the trajectory's last point (its goal).

    Raises :class:`StateError` for an empty trajectory, a missing joint or a point
    whose positions do not match the joint names.
    """
    names = [str(n) for n in msg.joint_names]
    if not msg.points:
        raise StateError("JointTrajectory has no points")
    positions = _floats(msg.points[-1].positions)
    if positions.size != len(names):
        raise StateError(
            f"JointTrajectory point has {positions.size} positions for {len(names)} joint names"
        )
    where = {n: i for i, n in enumerate(names)}
    missing = [n for n in joint_names if n not in where]
    if missing:
        raise StateError(f"JointTrajectory lacks joint(s) {missing}; it names {names}")
    return positions[[where[n] for n in joint_names]]


def bool_msg(types: MessageTypes, value: bool) -> Any:
    """A ``std_msgs/Bool``."""
    return types[BOOL](data=bool(value))


def clock_msg(types: MessageTypes, stamp_ns: int) -> Any:
    """A ``rosgraph_msgs/Clock``."""
    return types[CLOCK](clock=time_msg(types, stamp_ns))


# -- diagnostics -----------------------------------------------------------------------------


class Diagnostic(NamedTuple):
    """One ``diagnostic_msgs/DiagnosticStatus``; ``level`` 0 OK, 1 WARN, 2 ERROR, 3 STALE."""

    level: int
    name: str
    message: str
    hardware_id: str = ""
    values: Mapping[str, Any] = {}


def diagnostic_array_msg(types: MessageTypes, stamp_ns: int, statuses: Iterable[Diagnostic]) -> Any:
    """A ``diagnostic_msgs/DiagnosticArray``; values are formatted with ``str``."""
    status_cls = types["diagnostic_msgs/msg/DiagnosticStatus"]
    key_value = types["diagnostic_msgs/msg/KeyValue"]
    out = []
    for s in statuses:
        out.append(
            status_cls(
                level=getattr(status_cls, _LEVEL_NAMES[int(s.level)]),
                name=s.name,
                message=s.message,
                hardware_id=s.hardware_id,
                values=[key_value(key=str(k), value=_format(v)) for k, v in s.values.items()],
            )
        )
    return types[DIAGNOSTIC_ARRAY](header=header_msg(types, stamp_ns, ""), status=out)


def diagnostics(msg: Any) -> list[Diagnostic]:
    """The statuses of a ``diagnostic_msgs/DiagnosticArray`` (levels as ints)."""
    out = []
    for s in msg.status:
        level = s.level
        level = level[0] if isinstance(level, bytes | bytearray) else int(level)
        values = {str(kv.key): str(kv.value) for kv in s.values}
        out.append(Diagnostic(int(level), str(s.name), str(s.message), str(s.hardware_id), values))
    return out


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, np.ndarray):
        return str(np.round(value, 6).tolist())
    return str(value)
