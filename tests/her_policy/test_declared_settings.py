"""The control stack's and the arm's settings declare their ranges on the fields (her_goals.checks),
checked the same way in code, in YAML and on the command line, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from her_goals.checks import declared_ranges
from her_goals.errors import ConfigError
from her_goals.robot.arm_config import ArmConfig, load_arm_config
from her_policy.deploy.limits import ActionLimitsConfig
from her_policy.deploy.safety import SafetyConfig
from her_policy.deploy.settings import ControlLoopConfig, load_safety_config


@pytest.mark.parametrize(
    ("cls", "field", "text"),
    [
        (ControlLoopConfig, "rate_hz", "> 0"), (ControlLoopConfig, "thread_priority", "in [0, 99]"),
        (ControlLoopConfig, "max_ticks_per_episode", ">= 0"),
        (ActionLimitsConfig, "max_ee_step_m", "> 0"), (ActionLimitsConfig, "max_joint_step_rad_per_joint", "> 0"),
        (SafetyConfig, "stale_state_timeout_s", "> 0"), (SafetyConfig, "singularity_leaving_min_scale", "> 0 and <= 1"),
        (SafetyConfig, "cost_weights", "in [0, 1]"), (SafetyConfig, "joint_limit_margin_rad", ">= 0"),
        (ArmConfig, "control_rate_hz", "> 0"), (ArmConfig, "joint_velocity_limits_rad_s", "> 0"),
    ],
)
def test_each_range_is_declared_on_its_field(cls: type, field: str, text: str):
    assert declared_ranges(cls)[field] == text


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ControlLoopConfig(rate_hz=0.0), r"loop\.rate_hz = 0\.0: must be > 0"),
        (lambda: ControlLoopConfig(thread_priority=120), r"loop\.thread_priority = 120: must be in \[0, 99\]"),
        (lambda: ActionLimitsConfig(action_low=(-1.0, -1.0), action_high=(1.0, 1.0)),
         r"limits\.action_low = \(-1\.0, -1\.0\): needs at least 3 values, got 2: dx, dy, dz"),
        (lambda: ActionLimitsConfig(max_joint_step_rad_per_joint=(0.1, -0.1)), r"must be > 0"),
        (lambda: SafetyConfig(cost_weights={"ESTOP": "x"}), r"must be a number in \[0, 1\], not str"),
        (lambda: SafetyConfig(workspace_low_m=(0.1, 0.2)), r"safety\.workspace_low_m = .*: needs 3 values, got 2"),
        (lambda: ArmConfig(arm_joints=()), r"arm_config\.arm_joints = \(\): .*list the arm's hinge joints"),
        (lambda: ArmConfig(control_rate_hz=float("nan")), r"arm_config\.control_rate_hz = nan: must be a finite number"),
    ],
)
def test_a_value_out_of_its_range_is_one_line_naming_the_field(build: Any, message: str):
    with pytest.raises(ConfigError, match=message):
        build()


def test_yaml_names_the_file_the_key_and_the_default(tmp_path: Path):
    path = tmp_path / "safety.yaml"
    path.write_text("safety:\n  cost_weights: {ESTOP: 2}\n")
    with pytest.raises(ConfigError, match=r"safety\.yaml: safety\.cost_weights\['ESTOP'\] = 2: must be in \[0, 1\]"):
        load_safety_config(path)
    path.write_text("loop:\n  rate_hz: 0\n")
    with pytest.raises(ConfigError, match=r"safety\.yaml: loop\.rate_hz = 0: must be > 0; the default is 25\.0"):
        load_safety_config(path)
    arm = tmp_path / "arm.yaml"
    arm.write_text("timestep_s: -0.002\n")
    with pytest.raises(ConfigError, match=r"arm\.yaml: timestep_s = -0\.002: must be > 0"):
        load_arm_config(arm)
