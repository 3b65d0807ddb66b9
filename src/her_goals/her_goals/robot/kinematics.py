"""Forward kinematics and Jacobians of the arm from joint positions alone.

:class:`Kinematics` owns its own ``MjData`` and never reads or writes a
simulation's state, so the safety monitor and the ROS goals node can use it on
a real robot with nothing but ``/joint_states``. Results are in the configured
base frame (``base_link``).
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import StateError
from her_goals.robot.arm_config import ArmConfig
from her_goals.robot.arm_model import find_ee_frame, find_id, load_model, resolve_joints


def _as_index(adr: NDArray[np.int64]) -> slice | NDArray[np.int64]:
    """A slice when the addresses are consecutive, else the index array."""
    if len(adr) and np.array_equal(adr, np.arange(adr[0], adr[0] + len(adr))):
        return slice(int(adr[0]), int(adr[0]) + len(adr))
    return adr


def _frozen(arr: NDArray[np.float64]) -> NDArray[np.float64]:
    arr = arr.copy()
    arr.flags.writeable = False
    return arr


class Kinematics:
    """Tool-centre-point position, orientation and Jacobian of the arm at given joint angles."""

    def __init__(self, config: ArmConfig | None = None, model: mujoco.MjModel | None = None) -> None:
        self.config = config if config is not None else ArmConfig()
        # A model may be shared read-only with a simulator; the data is always our own.
        self.model = model if model is not None else load_model(self.config)
        self._data = mujoco.MjData(self.model)
        self.joint_names: tuple[str, ...] = tuple(self.config.arm_joints)
        ids = resolve_joints(self.model, self.joint_names, "arm_joints")
        # Contiguous addresses (the usual case) index as slices: cheaper than fancy indexing.
        self._qadr = _as_index(ids.qpos_adr)
        self._dofadr = _as_index(ids.dof_adr)
        # Read-only so the properties below can hand them out without copying.
        self._low, self._high = _frozen(ids.low), _frozen(ids.high)
        self._vmax = _frozen(np.asarray(self.config.joint_velocity_limits_rad_s, dtype=np.float64))
        self._home = _frozen(np.asarray(self.config.home_qpos_rad, dtype=np.float64))
        self._frame = find_ee_frame(self.model, self.config)
        self._is_site = self._frame.kind == mujoco.mjtObj.mjOBJ_SITE
        base = find_id(self.model, mujoco.mjtObj.mjOBJ_BODY, self.config.base_frame, "base_frame")
        mujoco.mj_kinematics(self.model, self._data)
        # The base is assumed fixed; its pose at the model's default configuration is
        # the transform from world to base_link. Skipped when it is the identity.
        self.base_position = self._data.xpos[base].copy()
        self.base_rotation = self._data.xmat[base].reshape(3, 3).copy()
        self._base_is_world = bool(
            np.allclose(self.base_position, 0.0) and np.allclose(self.base_rotation, np.eye(3))
        )
        # One (6, nv) buffer: its two halves are the contiguous (3, nv) arrays mj_jac* fills, so
        # the arm's columns come out in one copy.
        self._jac6 = np.zeros((6, self.model.nv))
        self._jacp, self._jacr = self._jac6[:3], self._jac6[3:]
        # The MjData arrays, looked up once (each attribute access builds a new view).
        self._shape = (len(self.joint_names),)
        self._qpos = self._data.qpos
        i = self._frame.id
        if self._is_site:
            self._xpos, self._xmat = self._data.site_xpos[i], self._data.site_xmat[i].reshape(3, 3)
        else:
            self._xpos, self._xmat = self._data.xpos[i], self._data.xmat[i].reshape(3, 3)
        self._jac_fn = mujoco.mj_jacSite if self._is_site else mujoco.mj_jacBody

    # -- limits -------------------------------------------------------------
    @property
    def n_joints(self) -> int:
        """Number of arm joints (7 for the packaged arm)."""
        return len(self.joint_names)

    @property
    def joint_limits(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(low, high) joint position limits in rad (read-only); +-inf for unlimited joints."""
        return self._low, self._high

    @property
    def velocity_limits(self) -> NDArray[np.float64]:
        """Joint speed limits in rad/s (read-only), from the arm config."""
        return self._vmax

    @property
    def home_qpos(self) -> NDArray[np.float64]:
        """Home (rest) joint positions in rad (read-only)."""
        return self._home

    # -- kinematics ---------------------------------------------------------
    def _set(self, q: ArrayLike) -> None:
        qa = np.asarray(q, dtype=np.float64)
        if qa.shape != self._shape:
            raise StateError(
                f"joint positions have shape {qa.shape}; the arm has {self.n_joints} joints "
                f"{list(self.joint_names)}"
            )
        # On Python floats: cheaper than a numpy reduction on 7 entries.
        if not all(map(math.isfinite, qa.tolist())):
            raise StateError(f"joint positions contain NaN or inf: {qa.tolist()}")
        self._qpos[self._qadr] = qa
        mujoco.mj_kinematics(self.model, self._data)

    def _raw_pose(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return self._xpos, self._xmat

    def fk(self, q: ArrayLike) -> NDArray[np.float64]:
        """Tool-centre-point position (3,) in m, base frame, at joint positions ``q``."""
        self._set(q)
        pos, _ = self._raw_pose()
        if self._base_is_world:
            return pos.copy()
        return self.base_rotation.T @ (pos - self.base_position)

    def pose(self, q: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Tool position (3,) and rotation matrix (3, 3) in the base frame at ``q``."""
        self._set(q)
        pos, rot = self._raw_pose()
        if self._base_is_world:
            return pos.copy(), rot.copy()
        return self.base_rotation.T @ (pos - self.base_position), self.base_rotation.T @ rot

    def jacobian(self, q: ArrayLike) -> NDArray[np.float64]:
        """Tool Jacobian (6, n_joints): rows linear (m/rad) then angular, base frame."""
        return self.pose_and_jacobian(q)[2]

    def pose_and_jacobian(
        self, q: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Position, rotation and (6, n) Jacobian from one kinematics pass (what IK needs).

        The control tick's pass (twice a tick: at the measured joints and at the command):
        ~4.2 us on this machine, of which ~2 us is MuJoCo's (mj_kinematics, mj_comPos,
        mj_jacSite); measured with the shape and finite checks of :meth:`fk`.
        """
        qa = np.asarray(q, dtype=np.float64)
        if qa.shape != self._shape or not all(map(math.isfinite, qa.tolist())):
            self._set(qa)  # raises the StateError that says which
        self._qpos[self._qadr] = qa
        mujoco.mj_kinematics(self.model, self._data)
        # mj_jac* uses cdof, which mj_comPos computes from the kinematics above.
        mujoco.mj_comPos(self.model, self._data)
        self._jac_fn(self.model, self._data, self._jacp, self._jacr, self._frame.id)
        jac = np.array(self._jac6[:, self._dofadr])  # a fresh (6, n) array, one copy
        pos, rot = self._xpos, self._xmat
        if self._base_is_world:
            return pos.copy(), rot.copy(), jac
        rb = self.base_rotation.T
        jac = np.vstack((rb @ jac[:3], rb @ jac[3:]))
        return rb @ (pos - self.base_position), rb @ rot, jac
