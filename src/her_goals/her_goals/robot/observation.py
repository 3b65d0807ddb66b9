"""The policy observation, built from measured robot states only.

:class:`ObservationBuilder` turns the current and the previous
:class:`her_goals.RobotState` (``/joint_states`` + ``/object_pose`` on the
robot, :meth:`ArmSim.state` in simulation) into one vector, so the policy sees
the same numbers on both. Velocities are finite differences over the control
period, not the driver's velocity field, because a real ``/object_pose`` has no
velocity and joint velocity estimates differ between drivers.

Layouts (Fetch-like content; velocities in units per second, not per step):

=====================  =====  =====================================================
field                  size   meaning
=====================  =====  =====================================================
tcp_pos                3      tool-centre-point position (m, base_link)
tcp_vel                3      its finite-difference velocity (m/s)
gripper_opening        1      total finger opening (m)
gripper_opening_rate   1      its rate of change (m/s)
object_pos             3      object centre (m, base_link)            [object tasks]
object_rel_pos         3      object_pos - tcp_pos (m)                [object tasks]
object_rot             3      roll, pitch, yaw, R = Rz Ry Rx (rad)    [object tasks]
object_vel             3      object linear velocity (m/s)            [object tasks]
object_angvel          3      object angular velocity, base frame (rad/s) [object tasks]
drawer_pos             1      drawer opening = its slide joint (m, 0 closed) [drawer task]
drawer_vel             1      rate of change of the opening (m/s)     [drawer task]
handle_pos             3      drawer handle centre (m, base_link)     [drawer task]
handle_rel_pos         3      handle_pos - tcp_pos (m)                [drawer task]
=====================  =====  =====================================================

Reach uses the first 8 entries; Push and PickAndPlace all 23; the drawer task the 8 arm
entries and the 8 drawer ones (16). The drawer's fields come from its joint in the same
state (``/joint_states`` on a robot) and its fixed geometry
(:class:`her_goals.robot.drawer.DrawerGeometry`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import mujoco
import numpy as np
from numpy.typing import NDArray

from her_goals.config import suggest
from her_goals.errors import StateError
from her_goals.extractors import RobotState
from her_goals.robot.drawer import DrawerGeometry
from her_goals.robot.kinematics import Kinematics

ARM_FIELDS: tuple[tuple[str, int, str, str], ...] = (
    ("tcp_pos", 3, "m", "tool-centre-point position in base_link"),
    ("tcp_vel", 3, "m/s", "tool-centre-point velocity (finite difference)"),
    ("gripper_opening", 1, "m", "total finger opening"),
    ("gripper_opening_rate", 1, "m/s", "rate of change of the finger opening"),
)
OBJECT_FIELDS: tuple[tuple[str, int, str, str], ...] = (
    ("object_pos", 3, "m", "object centre in base_link"),
    ("object_rel_pos", 3, "m", "object_pos - tcp_pos"),
    ("object_rot", 3, "rad", "object roll, pitch, yaw (R = Rz Ry Rx)"),
    ("object_vel", 3, "m/s", "object linear velocity (finite difference)"),
    ("object_angvel", 3, "rad/s", "object angular velocity in base_link (finite difference)"),
)
DRAWER_FIELDS: tuple[tuple[str, int, str, str], ...] = (
    ("drawer_pos", 1, "m", "drawer opening: its slide joint's position (0 = closed)"),
    ("drawer_vel", 1, "m/s", "rate of change of the drawer opening (finite difference)"),
    ("handle_pos", 3, "m", "drawer handle centre in base_link"),
    ("handle_rel_pos", 3, "m", "handle_pos - tcp_pos"),
)


@dataclass(frozen=True)
class ObsField:
    """One named slice of the observation vector."""

    name: str
    start: int
    stop: int
    units: str
    description: str

    @property
    def slice(self) -> slice:
        """The slice of this field in the observation vector."""
        return slice(self.start, self.stop)


@dataclass(frozen=True)
class ObservationLayout:
    """Names, slices and units of an observation vector, storable as plain data."""

    fields: tuple[ObsField, ...]

    @classmethod
    def build(cls, with_object: bool, *, with_drawer: bool = False) -> ObservationLayout:
        """The layout of the arm-only (Reach), the object (Push/PickAndPlace) or the drawer observation."""
        specs = ARM_FIELDS + (OBJECT_FIELDS if with_object else ()) + (DRAWER_FIELDS if with_drawer else ())
        fields, start = [], 0
        for name, size, units, description in specs:
            fields.append(ObsField(name, start, start + size, units, description))
            start += size
        return cls(tuple(fields))

    @property
    def size(self) -> int:
        """Length of the observation vector."""
        return self.fields[-1].stop if self.fields else 0

    @property
    def names(self) -> tuple[str, ...]:
        """Field names in order."""
        return tuple(f.name for f in self.fields)

    def slice(self, name: str) -> slice:
        """Slice of field ``name``; a KeyError with a suggestion if there is none."""
        for f in self.fields:
            if f.name == name:
                return f.slice
        raise KeyError(
            f"observation has no field {name!r}.{suggest(name, self.names)} "
            f"Fields: {', '.join(self.names)}"
        )

    def spec(self) -> list[dict[str, Any]]:
        """Plain-data description for artefacts and bags."""
        return [asdict(f) for f in self.fields]

    @classmethod
    def from_spec(cls, spec: Sequence[Mapping[str, Any]]) -> ObservationLayout:
        """Rebuild a layout from :meth:`spec` output."""
        return cls(tuple(ObsField(**dict(f)) for f in spec))


_IDENTITY_EPS = float(np.finfo(np.float64).eps)  # transforms3d's quat2mat: below it, no rotation
_GIMBAL_EPS = float(np.finfo(np.float64).eps) * 4.0  # its mat2euler: below it, yaw is 0


def quat_to_rpy(quat: NDArray[np.float64]) -> NDArray[np.float64]:
    """Roll, pitch, yaw (rad) of a unit quaternion [w x y z], with R = Rz(yaw) Ry(pitch) Rx(roll).

    The arithmetic of transforms3d's ``quat2euler(q, "sxyz")`` (tf_transformations' own
    backend, which ROS users know), operation for operation on Python floats: its
    ``quat2mat`` then ``mat2euler`` for the static xyz axes, without building the 3x3
    array and the axis tables in between. Bit for bit the library's result
    (tests/her_mujoco/test_observation.py compares them on 10^4 random and degenerate
    quaternions); 1.4 us against the library's 8.3 us per call on this machine
    (``bench/bench_safety.py`` prints both), which is 5% of a 500 Hz tick's budget.
    """
    return np.array(rpy_of(*quat.tolist()))


def rpy_of(w: float, x: float, y: float, z: float) -> tuple[float, float, float]:
    """:func:`quat_to_rpy` on the four floats of a quaternion [w x y z]."""
    nq = w * w + x * x + y * y + z * z
    if nq < _IDENTITY_EPS:
        m00, m10, m20, m21, m22, m11, m12 = 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0
    else:
        s = 2.0 / nq
        xs, ys, zs = x * s, y * s, z * s
        wx, wy, wz = w * xs, w * ys, w * zs
        xx, xy, xz = x * xs, x * ys, x * zs
        yy, yz, zz = y * ys, y * zs, z * zs
        m00 = 1.0 - (yy + zz)
        m10 = xy + wz
        m20 = xz - wy
        m21 = yz + wx
        m22 = 1.0 - (xx + yy)
        m11 = 1.0 - (xx + zz)
        m12 = yz - wx
    cy = math.sqrt(m00 * m00 + m10 * m10)
    if cy > _GIMBAL_EPS:
        return math.atan2(m21, m22), math.atan2(-m20, cy), math.atan2(m10, m00)
    return math.atan2(-m12, m11), math.atan2(-m20, cy), 0.0


def opening_of(fingers: list[float], joints: tuple[str, ...]) -> float:
    """The sum of the gripper joint positions in numpy's order, or a StateError when NaN/inf.

    ``ndarray.sum`` of up to 7 entries adds them in turn to 0.0 (from 8 on it unrolls
    into 8 partial sums): the same bits (tests/her_mujoco/test_observation.py
    compares them); longer lists go to numpy.
    """
    if len(fingers) <= 7:
        opening = 0.0
        for x in fingers:
            opening += x
    else:
        opening = float(np.sum(fingers))
    if not math.isfinite(opening):
        raise StateError(f"gripper joint positions are NaN/inf for {list(joints)}")
    return opening


class ObservationBuilder:
    """Builds the policy observation vector from the current and previous RobotState."""

    def __init__(
        self,
        kinematics: Kinematics,
        gripper_joints: Sequence[str],
        control_period_s: float,
        *,
        with_object: bool,
        drawer: DrawerGeometry | None = None,
    ) -> None:
        if not control_period_s > 0:
            raise StateError(f"control period must be positive, got {control_period_s} s")
        self.kinematics = kinematics
        self.arm_joints = kinematics.joint_names
        self.gripper_joints = tuple(gripper_joints)
        self.control_period_s = float(control_period_s)
        self.with_object = with_object
        self.drawer = drawer
        """The drawer whose fields the observation has (drawer task), or None."""
        self.layout = ObservationLayout.build(with_object, with_drawer=drawer is not None)
        at = ObservationLayout.build(True).slice  # object-task slices extend the arm ones
        self._tcp, self._tcp_vel = at("tcp_pos"), at("tcp_vel")
        self._open, self._open_rate = at("gripper_opening").start, at("gripper_opening_rate").start
        self._obj, self._obj_rel, self._obj_rot = at("object_pos"), at("object_rel_pos"), at("object_rot")
        self._obj_vel, self._obj_angvel = at("object_vel"), at("object_angvel")
        # FK, opening and object pose of the last state built, reused when that state comes
        # back as `previous`.
        self._last_state: RobotState | None = None
        self._last_tcp = np.zeros(3)
        self._last_opening = 0.0
        self._last_pose: NDArray[np.float64] | None = None
        self._conj, self._delta, self._angvel = np.empty(4), np.empty(4), np.empty(3)
        # Index arrays per joint-name order seen: a driver's order never changes, so the
        # name lookup runs once rather than every step.
        self._index: dict[tuple[str, ...], tuple[NDArray[np.intp], NDArray[np.intp]]] = {}
        self._last_names: tuple[str, ...] | None = None
        self._last_index = (np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp))
        if drawer is not None:
            at = self.layout.slice
            self._drawer_pos, self._drawer_vel = at("drawer_pos"), at("drawer_vel")
            self._handle, self._handle_rel = at("handle_pos"), at("handle_rel_pos")

    def _indices(self, state: RobotState) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        if state.joint_names is self._last_names:  # a driver's states share one names tuple
            return self._last_index
        idx = self._index.get(state.joint_names)
        if idx is None:
            state.joints(self.arm_joints + self.gripper_joints)  # a clear error if any is missing
            where = {n: i for i, n in enumerate(state.joint_names)}
            idx = (
                np.array([where[n] for n in self.arm_joints], dtype=np.intp),
                np.array([where[n] for n in self.gripper_joints], dtype=np.intp),
            )
            self._index[state.joint_names] = idx
        self._last_names, self._last_index = state.joint_names, idx
        return idx

    def arm_positions(self, state: RobotState) -> NDArray[np.float64]:
        """Arm joint positions (rad) of ``state`` in arm_joints order."""
        return state.position[self._indices(state)[0]]

    def gripper_opening(self, state: RobotState) -> float:
        """Total finger opening (m) of ``state``: the sum of the gripper joint positions."""
        return opening_of(state.position[self._indices(state)[1]].tolist(), self.gripper_joints)

    def tcp_position(self, state: RobotState) -> NDArray[np.float64]:
        """Tool position (m, base_link) of ``state`` by forward kinematics."""
        if state is self._last_state:
            return self._last_tcp
        return self.kinematics.fk(self.arm_positions(state))

    def __call__(self, state: RobotState, previous: RobotState | None = None) -> NDArray[np.float64]:
        """Observation vector for ``state``; velocities are zero when ``previous`` is None.

        Built on Python floats and made an array once: the fields are 1- to 3-vectors, where a
        numpy call costs more than its arithmetic (same operations, same order, so the same
        bits as elementwise numpy; tests/her_policy/test_tick_regression.py).
        """
        arm_idx, grip_idx = self._indices(state)
        position = state.position
        tcp = self.kinematics.fk(position[arm_idx])
        opening = opening_of(position[grip_idx].tolist(), self.gripper_joints)
        tx, ty, tz = tcp.tolist()
        values = [tx, ty, tz, 0.0, 0.0, 0.0, opening, 0.0]
        inv_dt = 1.0 / self.control_period_s
        # The previous state is nearly always the last one built: its FK, opening and
        # object pose are reused rather than recomputed.
        last = previous is not None and previous is self._last_state
        if previous is not None:
            prev_tcp = self._last_tcp if last else self.tcp_position(previous)
            prev_opening = self._last_opening if last else self.gripper_opening(previous)
            px, py, pz = prev_tcp.tolist()
            values[3] = (tx - px) * inv_dt
            values[4] = (ty - py) * inv_dt
            values[5] = (tz - pz) * inv_dt
            values[7] = (opening - prev_opening) * inv_dt
        pose = None
        if self.with_object:
            pose = self._object_pose(state)
            ox, oy, oz, qw, qx, qy, qz = pose.tolist()
            values += (ox, oy, oz, ox - tx, oy - ty, oz - tz)
            values += rpy_of(qw, qx, qy, qz)
            if previous is not None:
                prev = self._last_pose if last and self._last_pose is not None else self._object_pose(previous)
                bx, by, bz = prev[:3].tolist()
                values += ((ox - bx) * inv_dt, (oy - by) * inv_dt, (oz - bz) * inv_dt)
                # World-frame rotation from prev to now: q_now * conj(q_prev).
                mujoco.mju_negQuat(self._conj, prev[3:])
                mujoco.mju_mulQuat(self._delta, pose[3:], self._conj)
                mujoco.mju_quat2Vel(self._angvel, self._delta, self.control_period_s)
                values += self._angvel.tolist()
            else:
                values += (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        obs = np.array(values)
        if self.drawer is not None:
            drawer = self.drawer_opening(state)
            handle = self.drawer.handle_position(drawer)
            obs = np.concatenate((obs, np.zeros(self.layout.size - obs.size)))
            obs[self._drawer_pos] = drawer
            obs[self._handle] = handle
            obs[self._handle_rel] = handle - tcp
            if previous is not None:
                obs[self._drawer_vel] = (drawer - self.drawer_opening(previous)) * inv_dt
        self._last_state, self._last_tcp = state, tcp
        self._last_opening, self._last_pose = opening, pose
        return obs

    def drawer_opening(self, state: RobotState) -> float:
        """The drawer's opening (m) in ``state``: its slide joint's position."""
        if self.drawer is None:
            raise StateError("this observation has no drawer (build it with drawer=DrawerGeometry)")
        try:
            return float(state.joints((self.drawer.joint,))[0])
        except StateError as exc:
            raise StateError(
                f"the drawer observation needs the drawer joint {self.drawer.joint!r} in the joint "
                f"state: {exc}"
            ) from exc

    @staticmethod
    def _object_pose(state: RobotState) -> NDArray[np.float64]:
        pose = state.object_pose
        if pose is None:
            raise StateError(
                "this observation needs the object pose, but the state has none; publish "
                "/object_pose (perception or the MuJoCo bridge)"
            )
        if not all(map(math.isfinite, pose.tolist())):
            raise StateError(f"object pose contains NaN or inf: {pose.tolist()}")
        return pose
