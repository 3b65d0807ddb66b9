"""The task rig: one task on one arm, assembled once, the same way on every path.

A :class:`TaskRig` is what a registered task (:mod:`her_goals.tasks`) becomes on a given arm
(:class:`~her_goals.robot.arm_config.ArmConfig`): the goal space with the task's tolerance, the
goal region, the achieved-goal extractor, the observation builder and its layout, the task's
geometry (the drawer's, read from the arm model), the slice of the tool position in the
observation and whether the gripper is held shut. The goals, policy, recorder and bridge node
cores, the simulated envs (``her_mujoco.tasks``, ``her_mujoco.drawer``), the ROS-free control
loop (``her_policy.app.sim``) and the learner all take these from a rig, so a task's goal space,
reward and observation cannot be assembled two ways::

    rig = TaskRig.build("push", ArmConfig())
    rig.goal_space.tolerance            # 0.05: the task's tolerance, the one truth
    observe = rig.observation_builder()  # the policy observation from measured states
    achieved = rig.achieved_goal_extractor()

Cheap parts (goal space, region, layout, the joints the achieved goal is measured from) need
no arm model; the kinematics and the drawer's geometry are loaded on first use, so the goals
and recorder nodes never load a MuJoCo model they do not need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from her_goals.extractors import (
    AchievedGoalExtractor,
    EndEffectorPositionExtractor,
    JointAngleExtractor,
    ObjectPositionExtractor,
)
from her_goals.robot.arm_config import ArmConfig
from her_goals.robot.drawer import DRAWER_JOINT, DrawerGeometry
from her_goals.robot.kinematics import Kinematics
from her_goals.robot.observation import ObservationBuilder, ObservationLayout
from her_goals.sampling import GoalRegion
from her_goals.spaces import GoalSpace
from her_goals.tasks import GOAL_FIELDS, TaskSpec, get_task, task_goal_space

GOAL_JOINTS: dict[str, str] = {"joint_position": DRAWER_JOINT}
"""Goal spaces measured as one joint of ``/joint_states``, and that joint (the drawer's slide)."""


@dataclass(frozen=True, eq=False)
class TaskRig:
    """One task on one arm: goal space, extractor, observation, geometry; see the module docstring."""

    task: TaskSpec
    """The registered task."""
    arm: ArmConfig
    """The arm it runs on."""
    goal_space: GoalSpace
    """The task's goal space with the task's tolerance (or the override given to :meth:`build`)."""
    goal_region: GoalRegion
    """Where requested goals come from (the task's, or the override given to :meth:`build`)."""
    control_period_s: float
    """One policy step (s): the finite-difference period of the observation's velocities."""
    given_kinematics: Any = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        task: str | TaskSpec,
        arm: ArmConfig | None = None,
        *,
        tolerance: float | None = None,
        goal_region: GoalRegion | None = None,
        control_period_s: float | None = None,
        kinematics: Any = None,
    ) -> TaskRig:
        """The rig of ``task`` on ``arm`` (default: the packaged arm).

        ``tolerance`` (goal-space units) and ``goal_region`` override the task's (a node
        parameter); None or 0 keeps the task's. ``control_period_s`` defaults to the arm's
        control period. ``kinematics`` shares a :class:`Kinematics` already built on the same
        arm (a simulator's, on its model); by default the rig builds one on first use.
        """
        spec = get_task(task) if isinstance(task, str) else task
        arm = arm if arm is not None else ArmConfig()
        return cls(
            task=spec,
            arm=arm,
            goal_space=task_goal_space(spec, tolerance=tolerance or None),
            goal_region=goal_region if goal_region is not None else spec.goal_region,
            control_period_s=float(control_period_s or arm.control_period_s),
            given_kinematics=kinematics,
        )

    # -- what needs no model -----------------------------------------------------------------
    @property
    def name(self) -> str:
        """The task's name."""
        return self.task.name

    @property
    def episode_steps(self) -> int:
        """Policy steps per episode (the task's time limit)."""
        return self.task.episode_steps

    @property
    def hold_gripper_shut(self) -> bool:
        """The task's ``block_gripper``: the gripper held shut whatever the policy asks."""
        return self.task.block_gripper

    @property
    def has_drawer(self) -> bool:
        """True when the observation has the drawer group (the drawer task)."""
        return "drawer" in self.task.observation

    @cached_property
    def observation_layout(self) -> ObservationLayout:
        """Names, slices and units of the task's observation vector."""
        return ObservationLayout.build(self.task.has_object, with_drawer=self.has_drawer)

    @property
    def tcp_slice(self) -> slice:
        """The tool position's slice of the observation (the pipeline's workspace pre-clip)."""
        return self.observation_layout.slice("tcp_pos")

    @property
    def goal_field(self) -> str:
        """The observation field that measures the achieved goal (``tcp_pos`` for reach...)."""
        return GOAL_FIELDS[self.goal_space.name]

    @property
    def goal_joint(self) -> str | None:
        """The joint whose position is the achieved goal (the drawer's slide), or None."""
        return GOAL_JOINTS.get(self.goal_space.name)

    @property
    def achieved_from_object_pose(self) -> bool:
        """True when the achieved goal is measured from ``/object_pose`` (not ``/joint_states``)."""
        return self.goal_space.name == "object_position"

    @property
    def achieved_goal_joints(self) -> tuple[str, ...]:
        """The joints of ``/joint_states`` the achieved goal is measured from (none for an object)."""
        if self.goal_space.name == "ee_position":
            return tuple(self.arm.arm_joints)
        joint = self.goal_joint
        return (joint,) if joint is not None else ()

    @property
    def observed_joints(self) -> tuple[str, ...]:
        """Every joint the observation and the achieved goal read from ``/joint_states``."""
        joints = (*self.arm.arm_joints, *self.arm.gripper_joints)
        extra = [j for j in (self.goal_joint, DRAWER_JOINT if self.has_drawer else None) if j is not None]
        return joints + tuple(dict.fromkeys(j for j in extra if j not in joints))

    # -- what needs the arm model --------------------------------------------------------------
    @cached_property
    def kinematics(self) -> Any:
        """The arm's kinematics (the one given to :meth:`build`, or built on first use)."""
        return self.given_kinematics if self.given_kinematics is not None else Kinematics(self.arm)

    @cached_property
    def drawer(self) -> DrawerGeometry | None:
        """The drawer's joint, handle geometry and travel, read from the arm model (drawer task)."""
        if not self.has_drawer:
            return None
        return DrawerGeometry.from_model(
            self.kinematics.model, model_name=f"arm model {self.arm.resolved_model_path}"
        )

    def observation_builder(self, kinematics: Any = None) -> ObservationBuilder:
        """A new observation builder of the task (each keeps its own per-driver caches).

        ``kinematics`` replaces the rig's (a ``CachedKinematics`` around it, which shares one
        kinematics pass per tick with the IK and the safety monitor).
        """
        return ObservationBuilder(
            kinematics if kinematics is not None else self.kinematics,
            self.arm.gripper_joints,
            self.control_period_s,
            with_object=self.task.has_object,
            drawer=self.drawer,
        )

    def achieved_goal_extractor(self, kinematics: Any = None) -> AchievedGoalExtractor:
        """The extractor of the task's achieved goal from a measured :class:`RobotState`."""
        if self.goal_space.name == "ee_position":
            kin = kinematics if kinematics is not None else self.kinematics
            return EndEffectorPositionExtractor(self.goal_space, self.arm.arm_joints, kin.fk)
        joint = self.goal_joint
        if joint is not None:
            return JointAngleExtractor(self.goal_space, joint)
        return ObjectPositionExtractor(self.goal_space)
