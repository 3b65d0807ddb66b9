"""Arm configuration: which MuJoCo model is the arm and how it is driven.

Loaded strictly (unknown keys are errors with a suggestion) from
``config/arm.yaml`` with :func:`load_arm_config`, or built in code from a
mapping with :func:`her_goals.config.from_mapping`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from her_goals.checks import NonNegativeFloat, PositiveFloat, Size, check_fields
from her_goals.config import load_dataclass
from her_goals.errors import ConfigError

ARM_JOINTS: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 8))
GRIPPER_JOINTS: tuple[str, ...] = ("finger_joint1", "finger_joint2")
# Home posture: tcp at (0.5, 0, 0.2) m in base_link, gripper pointing down, fingers
# opening along base_link y. Found by IK from the Panda "ready" posture.
HOME_QPOS_RAD: tuple[float, ...] = (0.0, 0.0457, 0.0, -2.3763, 0.0, 2.4220, 0.7854)
# Franka Panda datasheet joint speed limits.
VELOCITY_LIMITS_RAD_S: tuple[float, ...] = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)


def packaged_model_path() -> Path:
    """Path of the MJCF model shipped with HER-ROS (her_goals/robot/models/her_arm.xml)."""
    return Path(__file__).resolve().parent / "models" / "her_arm.xml"


@dataclass(frozen=True)
class ArmConfig:
    """Names, home posture, limits and rates of the simulated (or real) arm."""

    model_path: Path | None = None
    """MJCF or URDF file of the arm; None means the packaged models/her_arm.xml."""
    base_frame: str = "base_link"
    """Body whose frame goals, tcp positions and object poses are expressed in."""
    arm_joints: Annotated[tuple[str, ...], Size(at_least=1, hint="list the arm's hinge joints")] = ARM_JOINTS
    """Hinge joints of the arm, base to wrist; the order of joint targets and of q."""
    gripper_joints: tuple[str, ...] = GRIPPER_JOINTS
    """Finger slide joints; their positions (m) sum to the gripper opening. Empty: no gripper."""
    gripper_actuator: str | None = "gripper"
    """Actuator whose control is the total finger opening in metres; None: no gripper."""
    gripper_max_opening_m: PositiveFloat = 0.08
    """Opening commanded by gripper action +1 (fully open)."""
    ee_site: str = "tcp"
    """Site (or body, for URDF models) at the tool centre point between the fingertips."""
    object_body: str | None = "block"
    """Body of the manipulated object (it must have a free joint); None for no object."""
    goal_marker: str | None = "goal_marker"
    """Mocap body that shows the desired goal; None for no marker."""
    home_qpos_rad: tuple[float, ...] = HOME_QPOS_RAD
    """Arm joint positions at reset and the IK's null-space rest posture (rad)."""
    home_gripper_opening_m: NonNegativeFloat = 0.08
    """Gripper opening at reset (m)."""
    joint_velocity_limits_rad_s: tuple[PositiveFloat, ...] = VELOCITY_LIMITS_RAD_S
    """Per-joint speed limits used to bound each control step's joint motion (rad/s)."""
    control_rate_hz: PositiveFloat = 25.0
    """Rate of joint-target commands; one env step is one control period (Fetch: 25 Hz)."""
    timestep_s: PositiveFloat = 0.002
    """MuJoCo integration step; substeps per control period = round(1 / (rate * timestep))."""
    object_start_m: tuple[float, float, float] = (0.5, 0.0, 0.025)
    """Object centre at reset when no position is given (m, base_link)."""
    object_xy_range_m: NonNegativeFloat = 0.15
    """Half-width of the square the object is drawn from when ArmSim.reset gets a seed (m)."""

    def __post_init__(self) -> None:
        check_fields(self, where="arm_config")  # the ranges declared on the fields
        # What one field cannot say on its own:
        n = len(self.arm_joints)
        for key in ("home_qpos_rad", "joint_velocity_limits_rad_s"):
            value = getattr(self, key)
            if len(value) != n:
                raise ConfigError(
                    f"arm config: {key} has {len(value)} values but arm_joints lists {n} joints "
                    f"{list(self.arm_joints)}; give one value per joint"
                )
        if self.timestep_s * self.control_rate_hz > 1.0:
            raise ConfigError(
                f"arm config: timestep_s {self.timestep_s} is longer than one control period "
                f"(1 / control_rate_hz = {1.0 / self.control_rate_hz} s)"
            )
        if bool(self.gripper_joints) != (self.gripper_actuator is not None):
            raise ConfigError(
                "arm config: give both gripper_joints and gripper_actuator, or neither "
                f"(got gripper_joints={list(self.gripper_joints)}, "
                f"gripper_actuator={self.gripper_actuator!r})"
            )
        if self.home_gripper_opening_m > self.gripper_max_opening_m:
            raise ConfigError(
                f"arm config: home_gripper_opening_m {self.home_gripper_opening_m} is outside "
                f"[0, gripper_max_opening_m = {self.gripper_max_opening_m}]"
            )

    @property
    def resolved_model_path(self) -> Path:
        """The model file actually loaded (the packaged one when model_path is None)."""
        return packaged_model_path() if self.model_path is None else Path(self.model_path)

    @property
    def n_substeps(self) -> int:
        """MuJoCo steps per control period, derived as round(1 / (rate * timestep))."""
        return max(1, round(1.0 / (self.control_rate_hz * self.timestep_s)))

    @property
    def control_period_s(self) -> float:
        """Simulated time of one control period (n_substeps * timestep_s)."""
        return self.n_substeps * self.timestep_s


def load_arm_config(path: str | Path, *, section: str | None = None) -> ArmConfig:
    """Load an :class:`ArmConfig` from YAML, rejecting unknown keys with a suggestion."""
    return load_dataclass(ArmConfig, path, section=section)
