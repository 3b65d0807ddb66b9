"""Action limits: clip, direction-preserving tool and joint step caps, gripper range."""

from __future__ import annotations

import numpy as np
import pytest

from her_goals.errors import ConfigError
from her_goals.safety_flags import SafetyFlag
from her_policy.deploy.limits import ActionLimits, ActionLimitsConfig, direction_preserving_scale


def limits(**kw: object) -> ActionLimits:
    return ActionLimits(ActionLimitsConfig(**kw), n_joints=3)  # type: ignore[arg-type]


def test_small_action_passes_untouched_in_metres():
    out = limits().limit_action([0.2, -0.4, 0.1, 0.0])
    assert out.flags == 0
    np.testing.assert_allclose(out.ee_step_m, [0.01, -0.02, 0.005])
    np.testing.assert_allclose(out.action, [0.2, -0.4, 0.1, 0.0])
    assert out.gripper_m == pytest.approx(0.04)


def test_out_of_range_action_is_clipped_and_flagged():
    out = limits(max_ee_step_m=1.0).limit_action([3.0, -7.0, 0.5, 9.0])
    assert out.flags == SafetyFlag.CLIPPED
    np.testing.assert_allclose(out.action, [1.0, -1.0, 0.5, 1.0])
    assert out.gripper_m == pytest.approx(0.08)


def test_tool_step_norm_is_capped_keeping_direction():
    # A full diagonal action is 8.7 cm in the tasks; the cap is 5 cm.
    out = limits(max_ee_step_m=0.05).limit_action([1.0, 1.0, 1.0, -1.0])
    assert out.flags == SafetyFlag.STEP_LIMITED
    assert np.linalg.norm(out.ee_step_m) == pytest.approx(0.05)
    np.testing.assert_allclose(
        out.ee_step_m / np.linalg.norm(out.ee_step_m), np.ones(3) / np.sqrt(3)
    )
    # The recorded (applied) action is scaled the same way.
    np.testing.assert_allclose(out.action[:3] * 0.05, out.ee_step_m)
    assert out.gripper_m == pytest.approx(0.0)


@pytest.mark.parametrize(
    "bad", [[np.nan, 0, 0, 0], [0, np.inf, 0, 0], [0, 0, -np.inf, 0], [0, 0, 0, np.nan]]
)
def test_non_finite_action_is_not_repaired(bad):
    out = limits().limit_action(bad)
    assert out.flags == SafetyFlag.NON_FINITE
    assert out.gripper_m is None
    assert np.isnan(out.ee_step_m).all()


def test_misshapen_action_is_non_finite():
    assert limits().limit_action([0.1, 0.2]).flags == SafetyFlag.NON_FINITE


def test_huge_action_is_clipped_not_overflowed():
    out = limits().limit_action([1e9, -1e300, 1e9, 1e9])
    assert out.flags == SafetyFlag.CLIPPED | SafetyFlag.STEP_LIMITED
    assert np.isfinite(out.ee_step_m).all()
    assert np.linalg.norm(out.ee_step_m) == pytest.approx(0.05)


def test_joint_step_scales_whole_delta_by_smallest_ratio():
    lim = limits(max_joint_step_rad=0.1)
    q = np.array([0.0, 1.0, -1.0])
    target = q + np.array([0.4, -0.1, 0.05])
    out, flags = lim.limit_joint_step(target, q)
    assert flags == SafetyFlag.STEP_LIMITED
    np.testing.assert_allclose(out - q, [0.1, -0.025, 0.0125])  # all scaled by 0.25: same direction


def test_joint_step_under_cap_is_returned_as_is():
    lim = limits(max_joint_step_rad=0.1)
    q = np.zeros(3)
    out, flags = lim.limit_joint_step(q + 0.05, q)
    assert flags == 0
    np.testing.assert_array_equal(out, q + 0.05)


def test_per_joint_caps():
    lim = limits(max_joint_step_rad_per_joint=(0.1, 0.2, 0.05))
    q = np.zeros(3)
    out, _ = lim.limit_joint_step(np.array([0.1, 0.2, 0.1]), q)
    np.testing.assert_allclose(out, [0.05, 0.1, 0.05])


def test_direction_preserving_scale():
    assert direction_preserving_scale(np.array([0.0, 0.0]), np.array([10.0, 10.0])) == 1.0
    assert direction_preserving_scale(
        np.array([0.2, -0.4]), np.array([10.0, 10.0])
    ) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "kw",
    [
        {"action_low": (-1.0, -1.0), "action_high": (1.0, 1.0)},
        {"action_low": (2.0, 2.0, 2.0, 2.0)},
        {"max_ee_step_m": 0.0},
        {"max_joint_step_rad": float("nan")},
        {"gripper_index": 1},
        {"gripper_range_m": (0.08, 0.0)},
        {"max_joint_step_rad_per_joint": (0.1, -0.1, 0.1)},
    ],
)
def test_bad_config_is_rejected(kw):
    with pytest.raises(ConfigError):
        ActionLimits(ActionLimitsConfig(**kw), n_joints=3)


def test_per_joint_caps_must_match_the_arm():
    with pytest.raises(ConfigError, match="3 joints"):
        ActionLimits(ActionLimitsConfig(max_joint_step_rad_per_joint=(0.1, 0.1)), n_joints=3)


def test_no_gripper():
    out = limits(gripper_index=-1, action_low=(-1.0,) * 3, action_high=(1.0,) * 3).limit_action(
        [0.1, 0, 0]
    )
    assert out.gripper_m is None
    assert out.flags == 0
