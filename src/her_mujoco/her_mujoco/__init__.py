"""MuJoCo arm of HER-ROS: simulation, joint-position command interface, IK and goal tasks.

The arm description (``ArmConfig``, the packaged MJCF, ``Kinematics``) lives in
her_goals, which measures achieved goals on the real robot too; it is re-exported
here for convenience.

Importing this package registers the Gymnasium tasks HerReach-v0, HerPush-v0 and
HerPickAndPlace-v0 (50-step episodes).
"""

from her_goals.arm_config import ArmConfig, load_arm_config, packaged_model_path
from her_goals.kinematics import Kinematics
from her_mujoco.ik import POINTING_DOWN, IKSettings, cartesian_step
from her_mujoco.observation import ObservationBuilder, ObservationLayout, ObsField
from her_mujoco.scripted import scripted_controller
from her_mujoco.sim import ArmSim
from her_mujoco.tasks import (
    TASK_IDS,
    HerArmEnv,
    PickAndPlaceEnv,
    PushEnv,
    ReachEnv,
    make_task,
    register_tasks,
)

register_tasks()

__all__ = [
    "POINTING_DOWN",
    "TASK_IDS",
    "ArmConfig",
    "ArmSim",
    "HerArmEnv",
    "IKSettings",
    "Kinematics",
    "ObsField",
    "ObservationBuilder",
    "ObservationLayout",
    "PickAndPlaceEnv",
    "PushEnv",
    "ReachEnv",
    "cartesian_step",
    "load_arm_config",
    "make_task",
    "packaged_model_path",
    "register_tasks",
    "scripted_controller",
]
