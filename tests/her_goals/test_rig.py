"""The task rig: one task on one arm, assembled once; one tolerance per task."""

from __future__ import annotations

import numpy as np
import pytest

from her_goals import get_goal_space
from her_goals.errors import ConfigError
from her_goals.robot.arm_config import ARM_JOINTS, GRIPPER_JOINTS, ArmConfig
from her_goals.robot.drawer import DRAWER_JOINT, packaged_drawer_model_path
from her_goals.robot.rig import TaskRig
from her_goals.sampling import GoalRegion
from her_goals.tasks import TASKS, TaskSpec, register_task, task_goal_space


@pytest.mark.parametrize("name", list(TASKS))
def test_a_task_has_one_tolerance_whichever_way_its_goal_space_is_looked_up(name: str):
    task = TASKS[name]
    rig = TaskRig.build(name)
    assert rig.goal_space.tolerance == task.tolerance
    assert task_goal_space(name).tolerance == task.tolerance
    assert get_goal_space(task.goal_space).tolerance == task.tolerance  # by name (a plain bag)
    assert rig.goal_space.same_as(get_goal_space(task.goal_space))


def test_the_drawer_keeps_the_tolerance_its_presets_were_measured_with():
    assert TaskRig.build("drawer").goal_space.tolerance == 0.02


def test_two_tasks_of_one_goal_space_must_agree_on_its_tolerance():
    other = TaskSpec(name="reach_strict", summary="x", goal_space="ee_position",
                     goal_region=TASKS["reach"].goal_region, tolerance=0.01)
    with pytest.raises(ConfigError, match="a goal space has one tolerance"):
        register_task(other)
    assert "reach_strict" not in TASKS and get_goal_space("ee_position").tolerance == 0.05


def test_overrides_of_tolerance_and_region():
    region = GoalRegion(low=(0.4, -0.1, 0.1), high=(0.6, 0.1, 0.3))
    rig = TaskRig.build("reach", tolerance=0.02, goal_region=region)
    assert rig.goal_space.tolerance == 0.02 and rig.goal_region == region
    assert TaskRig.build("reach", tolerance=0.0).goal_space.tolerance == 0.05  # 0 = the task's


def test_what_the_achieved_goal_is_measured_from():
    reach, push, drawer = (TaskRig.build(n) for n in ("reach", "push", "drawer"))
    assert reach.achieved_goal_joints == ARM_JOINTS and not reach.achieved_from_object_pose
    assert push.achieved_goal_joints == () and push.achieved_from_object_pose
    assert drawer.achieved_goal_joints == (DRAWER_JOINT,) and drawer.goal_joint == DRAWER_JOINT
    assert drawer.observed_joints == (*ARM_JOINTS, *GRIPPER_JOINTS, DRAWER_JOINT)
    assert push.hold_gripper_shut and not reach.hold_gripper_shut
    assert push.tcp_slice == slice(0, 3)


def test_the_cheap_parts_load_no_model():
    rig = TaskRig.build("drawer")  # the packaged arm has no drawer: fine until the geometry is needed
    assert rig.observation_layout.names[-4:] == ("drawer_pos", "drawer_vel", "handle_pos", "handle_rel_pos")
    assert type(rig.achieved_goal_extractor()).__name__ == "JointAngleExtractor"
    assert "kinematics" not in vars(rig)
    with pytest.raises(ConfigError, match="has no drawer joint 'drawer_slide'"):
        rig.observation_builder()


def test_the_drawer_rig_reads_its_geometry_from_the_arm_model():
    rig = TaskRig.build("drawer", ArmConfig(model_path=packaged_drawer_model_path(), object_body=None))
    observe = rig.observation_builder()
    assert observe.drawer == rig.drawer and observe.layout == rig.observation_layout
    assert rig.drawer is not None and rig.drawer.high_m == pytest.approx(0.2)


def test_builders_match_their_layout_and_period():
    rig = TaskRig.build("push", control_period_s=0.02)
    observe = rig.observation_builder()
    assert observe.layout == rig.observation_layout and observe.control_period_s == 0.02
    extractor = rig.achieved_goal_extractor()
    assert extractor.space is rig.goal_space
    assert np.isfinite(rig.kinematics.fk(rig.kinematics.home_qpos)).all()
