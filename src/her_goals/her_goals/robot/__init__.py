"""The robot description every path shares: arm config, MJCF model, kinematics, IK, observation.

The real robot's control path (``policy_node``), the goals node and the MuJoCo simulator
all build their observation and their joint commands from these modules, so deploying
a policy needs neither the simulator nor Gymnasium.
"""

from her_goals.robot.arm_config import ArmConfig, load_arm_config, packaged_model_path
from her_goals.robot.ik import (
    DEFAULT_IK,
    POINTING_DOWN,
    DifferentialIK,
    IKSettings,
    cartesian_step,
)
from her_goals.robot.kinematics import Kinematics
from her_goals.robot.observation import ObservationBuilder, ObservationLayout, ObsField

__all__ = [
    "DEFAULT_IK",
    "POINTING_DOWN",
    "ArmConfig",
    "DifferentialIK",
    "IKSettings",
    "Kinematics",
    "ObsField",
    "ObservationBuilder",
    "ObservationLayout",
    "cartesian_step",
    "load_arm_config",
    "packaged_model_path",
]
