"""MuJoCo arm of HER-ROS: simulation, joint-position command interface, IK and goal tasks.

The arm description (``ArmConfig``, the packaged MJCF, ``Kinematics``, IK and the
observation builder) lives in ``her_goals.robot``, which the real robot's path uses too.

Importing this package registers the Gymnasium tasks HerReach-v0, HerPush-v0 and
HerPickAndPlace-v0 (50-step episodes), and HerDrawer-v0 (``her_mujoco.drawer``).
"""

from her_mujoco.drawer import DrawerEnv, DrawerSim
from her_mujoco.sim import ArmSim
from her_mujoco.tasks import (
    ENV_CLASSES,
    HerArmEnv,
    PickAndPlaceEnv,
    PushEnv,
    ReachEnv,
    make_task,
    register_tasks,
)

register_tasks()

__all__ = [
    "ENV_CLASSES",
    "ArmSim",
    "DrawerEnv",
    "DrawerSim",
    "HerArmEnv",
    "PickAndPlaceEnv",
    "PushEnv",
    "ReachEnv",
    "make_task",
    "register_tasks",
]
