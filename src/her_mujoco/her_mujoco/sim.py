"""The simulated arm: a joint-position command interface like ros2_control's.

:class:`ArmSim` takes joint position targets plus a gripper opening, advances
exactly one control period per :meth:`ArmSim.step`, and reports what a real arm
driver reports: joint positions, velocities and efforts, the object pose, and a
timestamp in integer nanoseconds (:meth:`ArmSim.state` as a
:class:`her_goals.RobotState`).

Simulated time never goes back: a reset starts the next episode one control period after
the last state of the previous one, so the stamps of every episode recorded from one sim
(``her sim``, ``her demo``) follow one another and ``ros2 bag play`` replays them in order.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

import mujoco
import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.errors import ConfigError, StateError
from her_goals.extractors import RobotState
from her_goals.robot.arm_config import ArmConfig
from her_goals.robot.arm_model import (
    actuator_for_joint,
    find_ee_frame,
    find_id,
    load_model,
    resolve_joints,
)
from her_mujoco.randomization import SimParams

_IDENTITY_QUAT = np.array([1.0, 0.0, 0.0, 0.0])
_INSTABILITY_WARNINGS = np.array(
    [
        mujoco.mjtWarning.mjWARN_BADQACC,
        mujoco.mjtWarning.mjWARN_BADQPOS,
        mujoco.mjtWarning.mjWARN_BADQVEL,
    ],
    dtype=np.intp,
)


class ArmSim:
    """MuJoCo arm driven by joint position targets, one control period per step."""

    def __init__(self, config: ArmConfig | None = None, *, model: mujoco.MjModel | None = None):
        self.config = config if config is not None else ArmConfig()
        self.model = model if model is not None else load_model(self.config)
        self.data = mujoco.MjData(self.model)
        cfg, m = self.config, self.model
        self.n_substeps: int = cfg.n_substeps
        self.control_period_s: float = self.n_substeps * float(m.opt.timestep)
        # Integer time keeps stamps exact over long runs (no float accumulation).
        self._timestep_ns = round(float(m.opt.timestep) * 1e9)
        self._physics_steps = 0
        self._clock_base_ns = 0
        """Simulated time at the last reset: monotonic across episodes."""

        arm = resolve_joints(m, cfg.arm_joints, "arm_joints")
        grip = resolve_joints(m, cfg.gripper_joints, "gripper_joints")
        self.joint_names: tuple[str, ...] = tuple(cfg.arm_joints) + tuple(cfg.gripper_joints)
        """Names in the order of state()."""
        self._n_arm = len(cfg.arm_joints)
        self._arm_qadr = arm.qpos_adr
        self._qadr = np.concatenate((arm.qpos_adr, grip.qpos_adr))
        self._dofadr = np.concatenate((arm.dof_adr, grip.dof_adr))
        self._grip_qadr = grip.qpos_adr
        self.joint_low, self.joint_high = arm.low, arm.high
        self._arm_act = np.array(
            [actuator_for_joint(m, j, n) for j, n in zip(arm.joint_ids, cfg.arm_joints)]
        )
        self._grip_act: int | None = None
        if cfg.gripper_actuator is not None:
            self._grip_act = find_id(
                m, mujoco.mjtObj.mjOBJ_ACTUATOR, cfg.gripper_actuator, "gripper_actuator"
            )
        self._ee = find_ee_frame(m, cfg)
        self._base = find_id(m, mujoco.mjtObj.mjOBJ_BODY, cfg.base_frame, "base_frame")

        self._obj_qadr: int | None = None
        if cfg.object_body is not None:
            body = find_id(m, mujoco.mjtObj.mjOBJ_BODY, cfg.object_body, "object_body")
            jnt = int(m.body_jntadr[body])
            if jnt < 0 or m.jnt_type[jnt] != mujoco.mjtJoint.mjJNT_FREE:
                raise ConfigError(
                    f"object_body {cfg.object_body!r} has no free joint; add <freejoint/> to "
                    "that body in the model, or set object_body: null"
                )
            self._obj_qadr = int(m.jnt_qposadr[jnt])
        self._mocap: int | None = None
        if cfg.goal_marker is not None:
            body = find_id(m, mujoco.mjtObj.mjOBJ_BODY, cfg.goal_marker, "goal_marker")
            if m.body_mocapid[body] < 0:
                raise ConfigError(
                    f"goal_marker {cfg.goal_marker!r} is not a mocap body; add mocap=\"true\" "
                    "to it in the model, or set goal_marker: null"
                )
            self._mocap = int(m.body_mocapid[body])

        mujoco.mj_kinematics(m, self.data)
        self._base_pos = self.data.xpos[self._base].copy()
        self._base_rot = self.data.xmat[self._base].reshape(3, 3).copy()
        self._base_is_world = bool(
            np.allclose(self._base_pos, 0.0) and np.allclose(self._base_rot, np.eye(3))
        )
        if not self._base_is_world:
            raise ConfigError(
                f"base_frame {cfg.base_frame!r} is not at the world origin in this model "
                f"(position {self._base_pos.tolist()}); ArmSim reports poses in world = "
                "base_link, so place the base body at the origin with identity orientation"
            )
        self._warning_numbers = self.data.warning.number  # a live view of MuJoCo's counters
        self._warning_count = 0
        self.diverged = False
        """True once the physics went unstable (NaN or huge accelerations) since reset."""
        self.np_random = np.random.default_rng()
        self._init_perturbation()
        self.reset()

    # -- commands -----------------------------------------------------------
    def reset(
        self,
        seed: int | None = None,
        *,
        object_position: ArrayLike | None = None,
        qpos: ArrayLike | None = None,
        gripper_opening_m: float | None = None,
    ) -> RobotState:
        """Put the arm at ``qpos`` (default home) and the object at ``object_position``.

        With a ``seed`` and no ``object_position``, the object's xy is drawn uniformly
        within ``object_xy_range_m`` of ``object_start_m``; without a seed it is placed
        at ``object_start_m``. Time goes on: a reset after steps is a control period after the
        last state (a bag's stamps never go back); the first episode starts at 0 ns.
        """
        cfg, m, d = self.config, self.model, self.data
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        mujoco.mj_resetData(m, d)
        q = np.asarray(cfg.home_qpos_rad if qpos is None else qpos, dtype=np.float64)
        self._check_arm_vector(q, "qpos")
        opening = cfg.home_gripper_opening_m if gripper_opening_m is None else gripper_opening_m
        d.qpos[self._arm_qadr] = q
        if len(self._grip_qadr):
            d.qpos[self._grip_qadr] = opening / len(self._grip_qadr)
        if self._obj_qadr is not None:
            if object_position is not None:
                pos = np.asarray(object_position, dtype=np.float64)
                if pos.shape != (3,) or not np.isfinite(pos).all():
                    raise StateError(f"object_position must be 3 finite numbers (m), got {pos}")
            else:
                pos = np.array(cfg.object_start_m, dtype=np.float64)
                if seed is not None:
                    r = cfg.object_xy_range_m
                    pos[:2] += self.np_random.uniform(-r, r, size=2)
            a = self._obj_qadr
            d.qpos[a : a + 3] = pos
            d.qpos[a + 3 : a + 7] = _IDENTITY_QUAT
        self._reset_perturbation(q, opening)
        self.set_joint_targets(q, opening)
        mujoco.mj_forward(m, d)
        if self._physics_steps:  # an episode ran: the next one starts a control period later
            self._clock_base_ns += (self._physics_steps + self.n_substeps) * self._timestep_ns
        self._physics_steps = 0
        self._warning_count = self._count_warnings()
        self.diverged = False
        return self.state()

    def set_joint_targets(self, q_target: ArrayLike, gripper_opening_m: float | None = None) -> None:
        """Command arm joint positions (rad, clipped to limits) and the gripper opening (m)."""
        q = np.asarray(q_target, dtype=np.float64)
        self._check_arm_vector(q, "q_target")
        arm = np.minimum(np.maximum(q, self.joint_low), self.joint_high)
        grip: float | None = None
        if gripper_opening_m is not None and self._grip_act is not None:
            if not np.isfinite(gripper_opening_m):
                raise StateError(f"gripper opening must be finite, got {gripper_opening_m}")
            grip = min(max(float(gripper_opening_m), 0.0), self.config.gripper_max_opening_m)
        if self.params.latency_ticks:
            # Actuation latency: the command reaches the servos latency_ticks steps later.
            self._pending.append((arm, grip))
            arm, grip = self._pending.popleft()
        self._apply_command(arm, grip)

    def _apply_command(self, arm: NDArray[np.float64], grip: float | None) -> None:
        self.data.ctrl[self._arm_act] = arm
        if grip is not None and self._grip_act is not None:
            self.data.ctrl[self._grip_act] = grip

    def step(self) -> None:
        """Advance one control period (n_substeps MuJoCo steps); sets ``diverged`` on instability."""
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._physics_steps += self.n_substeps
        # MuJoCo resets the data itself when qacc/qpos/qvel blow up, so the state stays
        # finite but is no longer the episode's; its warning counters are how we know.
        count = self._count_warnings()
        if count != self._warning_count:
            self._warning_count = count
            self.diverged = True

    def set_goal_marker(self, position: ArrayLike) -> None:
        """Show the desired goal (m, base_link) with the goal-marker mocap body."""
        if self._mocap is not None:
            self.data.mocap_pos[self._mocap] = np.asarray(position, dtype=np.float64)[:3]
            # Mocap poses reach the marker's site only through kinematics; without this a
            # render right after reset would show last episode's goal.
            mujoco.mj_kinematics(self.model, self.data)

    # -- measurements -------------------------------------------------------
    @property
    def time_ns(self) -> int:
        """Simulated time in integer nanoseconds, monotonic across resets (see :meth:`reset`)."""
        return self._clock_base_ns + self._physics_steps * self._timestep_ns

    @property
    def arm_qpos(self) -> NDArray[np.float64]:
        """Arm joint positions (rad), in arm_joints order."""
        return self.data.qpos[self._arm_qadr]

    @property
    def gripper_opening_m(self) -> float:
        """Measured total finger opening (m)."""
        return float(self.data.qpos[self._grip_qadr].sum())




    def tcp_position(self) -> NDArray[np.float64]:
        """Tool-centre-point position (m, base_link) at the current joint positions."""
        mujoco.mj_kinematics(self.model, self.data)
        i = self._ee.id
        if self._ee.kind == mujoco.mjtObj.mjOBJ_SITE:
            return self.data.site_xpos[i].copy()
        return self.data.xpos[i].copy()

    def object_pose(self) -> NDArray[np.float64] | None:
        """Object pose [x y z qw qx qy qz] (m, base_link), or None without an object."""
        if self._obj_qadr is None:
            return None
        return self.data.qpos[self._obj_qadr : self._obj_qadr + 7].copy()

    def state(self) -> RobotState:
        """The measurement a ROS driver would publish: joint_states plus object_pose.

        With sensing perturbations set (:meth:`set_params`) this is the *measured* state:
        noisy joints, a noisy, delayed or dropped object pose. :meth:`true_state` is the
        physics' own.
        """
        true = self.true_state()
        if not self.params.senses_noisily:
            return true
        return self._measure(true)

    def true_state(self) -> RobotState:
        """The physics' state, without sensing perturbations (simulation only)."""
        t = self.time_ns
        return RobotState(
            joint_names=self.joint_names,
            position=self.data.qpos[self._qadr],
            velocity=self.data.qvel[self._dofadr],
            effort=self.data.qfrc_actuator[self._dofadr],
            stamp_ns=t,
            object_pose=self.object_pose(),
            object_stamp_ns=t,
        )

    # -- helpers ------------------------------------------------------------
    def _check_arm_vector(self, q: NDArray[np.float64], what: str) -> None:
        if q.shape != (self._n_arm,):
            raise StateError(
                f"{what} has shape {q.shape}; the arm has {self._n_arm} joints "
                f"{list(self.config.arm_joints)}"
            )
        if not math.isfinite(q.sum()):  # one reduction; NaN/inf anywhere poisons the sum
            raise StateError(f"{what} contains NaN or inf: {q.tolist()}")

    def _count_warnings(self) -> int:
        return int(self._warning_numbers[_INSTABILITY_WARNINGS].sum())

    # -- perturbations (her_mujoco.randomization) -----------------------------
    def _init_perturbation(self) -> None:
        m = self.model
        self.params = SimParams()
        """The physics and sensing perturbation in force (nominal by default)."""
        self._arm_dofs = self._dofadr[: self._n_arm]
        self._nominal = {
            "frictionloss": m.dof_frictionloss[self._arm_dofs].copy(),
            "damping": m.dof_damping[self._arm_dofs].copy(),
            "gainprm": m.actuator_gainprm[self._arm_act].copy(),
            "biasprm": m.actuator_biasprm[self._arm_act].copy(),
        }
        self._block_geoms = np.zeros(0, dtype=np.intp)
        self._block_body = -1
        if self.config.object_body is not None:
            body = find_id(m, mujoco.mjtObj.mjOBJ_BODY, self.config.object_body, "object_body")
            self._block_body = body
            self._block_geoms = np.flatnonzero(m.geom_bodyid == body)
            self._nominal["block_mass"] = m.body_mass[body : body + 1].copy()
            self._nominal["block_inertia"] = m.body_inertia[body].copy()
            self._nominal["block_friction"] = m.geom_friction[self._block_geoms].copy()
        table = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table_top")
        self._table_geom = int(table)
        if table >= 0:
            self._nominal["table_friction"] = m.geom_friction[table].copy()
        self._sense_rng = np.random.default_rng(0)
        self._pending: collections.deque[tuple[NDArray[np.float64], float | None]] = collections.deque()
        self._object_history: collections.deque[tuple[NDArray[np.float64] | None, int]] = collections.deque()
        self._last_object: tuple[NDArray[np.float64] | None, int] | None = None

    def random_state(self) -> dict[str, Any]:
        """The simulator's random streams and physics setting (to resume a run where it stopped)."""
        return {
            "np_random": dict(self.np_random.bit_generator.state),
            "sense": dict(self._sense_rng.bit_generator.state),
            "params": dataclasses.asdict(self.params),
        }

    def set_random_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`random_state` (the physics setting applied again)."""
        self.set_params(SimParams(**state["params"]))
        self.np_random.bit_generator.state = state["np_random"]
        self._sense_rng.bit_generator.state = state["sense"]

    def set_params(self, params: SimParams, *, seed: int | None = None) -> None:
        """Apply one setting of physics and sensing (``SimParams()`` restores nominal).

        Takes effect at once for the model parameters and at the next :meth:`reset` for the
        latency queue; ``seed`` seeds the sensing noise.
        """
        m, nominal = self.model, self._nominal
        m.dof_frictionloss[self._arm_dofs] = params.joint_friction_nm or nominal["frictionloss"]
        m.dof_damping[self._arm_dofs] = (
            nominal["damping"] if params.joint_damping_nms is None else params.joint_damping_nms
        )
        # Position servos: force = kp (ctrl - q) - kv qdot, gainprm[0] = kp, biasprm[1:3] = -kp, -kv.
        m.actuator_gainprm[self._arm_act] = nominal["gainprm"]
        m.actuator_biasprm[self._arm_act] = nominal["biasprm"]
        kp_scale = params.actuator_gain_scale * params.actuator_kp_scale
        m.actuator_gainprm[self._arm_act, 0] *= kp_scale
        m.actuator_biasprm[self._arm_act, 1] *= kp_scale
        m.actuator_biasprm[self._arm_act, 2] *= params.actuator_gain_scale  # kv: not by kp alone
        if self._block_body >= 0:
            b = self._block_body
            m.body_mass[b] = nominal["block_mass"][0] * params.block_mass_scale
            m.body_inertia[b] = nominal["block_inertia"] * params.block_mass_scale
            m.geom_friction[self._block_geoms] = nominal["block_friction"] * params.block_friction_scale
        if self._table_geom >= 0:
            m.geom_friction[self._table_geom] = nominal["table_friction"] * params.table_friction_scale
        self.params = params
        if seed is not None:
            self._sense_rng = np.random.default_rng(seed)

    def _reset_perturbation(self, q: NDArray[np.float64], opening: float) -> None:
        grip = opening if self._grip_act is not None else None
        self._pending = collections.deque([(q.copy(), grip)] * self.params.latency_ticks)
        self._object_history.clear()
        self._last_object = None

    def _measure(self, true: RobotState) -> RobotState:
        p, rng = self.params, self._sense_rng
        position, velocity = true.position.copy(), true.velocity.copy()
        if p.joint_position_noise_rad:
            position += rng.normal(0.0, p.joint_position_noise_rad, position.shape)
        if p.joint_velocity_noise:
            velocity += rng.normal(0.0, p.joint_velocity_noise, velocity.shape)
        pose, stamp = true.object_pose, true.object_stamp_ns
        if pose is not None:
            pose = pose.copy()
            if p.object_position_noise_m:
                pose[:3] += rng.normal(0.0, p.object_position_noise_m, 3)
            self._object_history.append((pose, stamp))
            while len(self._object_history) > p.object_delay_ticks + 1:
                self._object_history.popleft()
            pose, stamp = self._object_history[0]
            if self._last_object is not None and p.object_dropout_prob and rng.random() < p.object_dropout_prob:
                pose, stamp = self._last_object  # no new pose arrived this tick
            self._last_object = (pose, stamp)
        return RobotState(
            joint_names=true.joint_names,
            position=position,
            velocity=velocity,
            effort=true.effort,
            stamp_ns=true.stamp_ns,
            object_pose=pose,
            object_stamp_ns=stamp,
        )
