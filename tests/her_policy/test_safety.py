"""Safety monitor behaviour, one rule at a time, on the analytic toy arm (and the MuJoCo arm)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from her_goals import GoalRegion, RobotState
from her_goals.errors import ConfigError
from her_goals.safety_flags import ALL_FLAGS, SafetyFlag, SafetyStatus, worse
from her_policy.deploy.safety import DEFAULT_COST_WEIGHTS, SafetyConfig, SafetyMonitor
from her_policy.deploy.toy_arm import ToyArm

ARM = ToyArm()
NAMES = ARM.joint_names
HOME = ARM.home_qpos
DT = 0.04
STEP = 0.08  # rad per tick; the toy's speed limits * DT are 0.08, 0.08, 0.1
MS = 1_000_000


def monitor(goal_region: GoalRegion | None = None, **overrides: Any) -> SafetyMonitor:
    cfg: dict[str, Any] = {
        "singularity_jacobian_rows": "position"
    }  # the toy's full J is never singular
    cfg.update(overrides)
    return SafetyMonitor.from_kinematics(
        SafetyConfig(**cfg),
        ARM,
        max_joint_step_rad=STEP,
        control_period_s=DT,
        goal_region=goal_region,
    )


def state(q: Any, stamp_ns: int = 0, velocity: Any = None) -> RobotState:
    v = np.zeros(3) if velocity is None else velocity
    return RobotState(NAMES, np.asarray(q, dtype=float), velocity=v, stamp_ns=stamp_ns)


def test_small_command_passes_untouched():
    m = monitor()
    cmd = HOME + np.array([0.01, -0.02, 0.03])
    d = m.check(state(HOME), 5 * MS, cmd)
    np.testing.assert_array_equal(d.command, cmd)
    assert (d.flags, d.reasons, d.intervened, d.hold) == (0, (), False, False)
    assert d.status is SafetyStatus.OK
    assert d.safety_cost == 0.0
    assert d.scale == 1.0
    assert 1.0 < d.condition_number < 17.0


def test_large_step_is_scaled_keeping_direction():
    m = monitor()
    delta = np.array([0.4, -0.2, 0.1])
    d = m.check(state(HOME), 0, HOME + delta)
    assert d.flags & SafetyFlag.STEP_LIMITED
    assert d.status is SafetyStatus.WARN
    moved = d.command - HOME
    np.testing.assert_allclose(moved / np.linalg.norm(moved), delta / np.linalg.norm(delta))
    assert np.abs(moved).max() == pytest.approx(STEP)
    assert d.scale == pytest.approx(STEP / 0.4)


def test_stale_state_holds_the_measured_position_on_that_tick():
    m = monitor()
    q = HOME + 0.05
    fresh = m.check(state(q, stamp_ns=0), 100 * MS, q + 0.01)  # exactly the timeout: still fresh
    assert not fresh.hold
    d = m.check(state(q, stamp_ns=0), 100 * MS + 1, q + 0.01)
    assert d.hold
    np.testing.assert_array_equal(d.command, q)
    assert d.flags == SafetyFlag.STALE_STATE
    assert d.status is SafetyStatus.STALE
    assert d.safety_cost == 1.0
    assert d.gripper_m is None


def test_state_stamped_in_the_future_is_stale():
    d = monitor().check(state(HOME, stamp_ns=10**9), 0, HOME)
    assert d.hold and d.flags & SafetyFlag.STALE_STATE


def test_nan_state_holds_last_finite_measurement():
    m = monitor()
    q = HOME + 0.02
    m.check(state(q), 0, q)
    d = m.check(state([np.nan, 0.1, -1.0], stamp_ns=40 * MS), 40 * MS, HOME)
    assert d.hold
    np.testing.assert_array_equal(d.command, q)
    assert d.flags & SafetyFlag.NON_FINITE
    assert d.status is SafetyStatus.ERROR


def test_no_finite_measurement_ever_means_send_nothing():
    d = monitor().check(state([np.inf, 0.0, 0.0]), 0, HOME)
    assert d.command is None and d.hold
    assert d.status is SafetyStatus.ERROR
    assert d.flags == SafetyFlag.NON_FINITE


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_command_holds(bad):
    cmd = HOME.copy()
    cmd[1] = bad
    d = monitor().check(state(HOME), 0, cmd)
    assert d.hold
    np.testing.assert_array_equal(d.command, HOME)
    assert d.flags == SafetyFlag.NON_FINITE
    assert d.status is SafetyStatus.ERROR


def test_upstream_non_finite_holds_even_with_a_command():
    d = monitor().check(state(HOME), 0, HOME + 0.01, upstream_flags=SafetyFlag.NON_FINITE)
    assert d.hold and d.flags == SafetyFlag.NON_FINITE


def test_no_command_holds_without_a_fault():
    d = monitor().check(state(HOME), 0, None)
    assert d.hold and d.flags == 0 and d.status is SafetyStatus.OK


def test_estop_latches_until_explicit_reset():
    m = monitor()
    d = m.check(state(HOME), 0, HOME + 0.01, estop=True)
    assert d.hold and d.flags & SafetyFlag.ESTOP
    for t in range(1, 5):  # the stop signal has cleared by itself
        d = m.check(state(HOME, stamp_ns=t * 40 * MS), t * 40 * MS, HOME + 0.01, estop=False)
        assert d.hold and d.flags == SafetyFlag.ESTOP and d.status is SafetyStatus.ERROR
        np.testing.assert_array_equal(d.command, HOME)
    assert m.estop_latched
    assert not m.reset_estop(signal_active=True)  # refused while the signal is still active
    assert m.estop_latched
    assert m.reset_estop()
    d = m.check(state(HOME, stamp_ns=10**9), 10**9, HOME + 0.01)
    assert not d.hold and d.flags == 0


def test_trigger_estop():
    m = monitor()
    m.trigger_estop()
    assert m.check(state(HOME), 0, HOME).flags == SafetyFlag.ESTOP


# A box the whole toy arm fits in, so the joint-limit tests see only joint limits.
WIDE_BOX = {"workspace_low_m": (-1.0, -1.0, 0.0), "workspace_high_m": (1.0, 1.0, 1.0)}


def test_command_past_the_margin_is_clamped_per_joint():
    m = monitor(**WIDE_BOX)  # yaw range [-2.5, 2.5]: band [-2.4, 2.4]
    q = np.array([2.35, 0.5, -1.3])
    d = m.check(state(q), 0, np.array([2.42, 0.51, -1.3]), gripper_m=0.02)
    assert d.flags == SafetyFlag.JOINT_LIMIT
    assert d.status is SafetyStatus.WARN
    np.testing.assert_allclose(d.command, [2.4, 0.51, -1.3])
    assert d.gripper_m == 0.02
    assert d.safety_cost == DEFAULT_COST_WEIGHTS["JOINT_LIMIT"]


def test_joint_inside_the_margin_may_move_back_but_not_further_out():
    m = monitor(**WIDE_BOX)
    q = np.array([2.45, 0.5, -1.3])  # in the margin zone, inside the hard limit 2.5
    out = m.check(state(q), 0, np.array([2.48, 0.5, -1.3]))
    assert out.flags == SafetyFlag.JOINT_LIMIT and not out.hold
    assert out.command[0] == pytest.approx(2.45)
    back = m.check(state(q), 0, np.array([2.41, 0.5, -1.3]))
    assert back.flags == 0
    assert back.command[0] == pytest.approx(2.41)


def test_measured_beyond_hard_limit_is_clamped_reference_and_error():
    m = monitor(**WIDE_BOX)
    q = np.array([2.53, 0.5, -1.3])  # MuJoCo soft limits let a joint pass 2.5 slightly
    d = m.check(state(q), 0, None)
    assert d.hold
    np.testing.assert_allclose(d.command, [2.5, 0.5, -1.3])
    assert d.flags == SafetyFlag.JOINT_LIMIT
    assert d.status is SafetyStatus.ERROR
    moving = m.check(state(q), 0, np.array([2.45, 0.5, -1.3]))
    assert not moving.hold
    assert moving.command[0] == pytest.approx(2.45)


def test_commanded_speed_beyond_limit_is_scaled():
    m = SafetyMonitor.from_kinematics(
        SafetyConfig(singularity_jacobian_rows="position", velocity_limit_scale=0.5),
        ARM,
        max_joint_step_rad=STEP,
        control_period_s=DT,
    )
    d = m.check(state(HOME), 0, HOME + np.array([0.06, 0.0, 0.0]))  # 1.5 rad/s > 0.5 * 2.0
    assert d.flags & SafetyFlag.VELOCITY_LIMIT
    assert d.command[0] - HOME[0] == pytest.approx(1.0 * DT)


def test_measured_overspeed_is_flagged():
    d = monitor().check(state(HOME, velocity=[0.0, 3.0, 0.0]), 0, HOME)
    assert d.flags == SafetyFlag.VELOCITY_LIMIT and not d.hold


def test_step_into_the_table_is_cut_at_the_floor():
    m = monitor()
    q = np.array([0.0, 0.12, -1.3])  # tcp 2.5 cm above the table
    assert ARM.fk(q)[2] == pytest.approx(0.025, abs=2e-3)
    d = m.check(state(q), 0, np.array([0.0, 0.04, -1.3]))  # would end 2 cm into the table
    assert d.flags & SafetyFlag.WORKSPACE
    assert d.status is SafetyStatus.WARN
    assert 0.0 < d.scale < 1.0
    z = ARM.fk(d.command)[2]
    assert 0.01 <= z < 0.02  # at the floor (table + 1 cm clearance), not above where it started
    assert d.safety_cost == 1.0


def test_outside_the_box_only_moves_back():
    m = monitor()
    q = np.array([0.0, 0.0, -1.3])  # tcp below the table top (a push, an overshoot)
    assert ARM.fk(q)[2] < 0.0
    deeper = m.check(state(q), 0, np.array([0.0, -0.05, -1.3]))
    assert deeper.hold and deeper.flags & SafetyFlag.WORKSPACE
    np.testing.assert_array_equal(deeper.command, q)
    up = m.check(state(q), 0, np.array([0.0, 0.05, -1.3]))
    assert not up.hold and up.flags & SafetyFlag.WORKSPACE
    assert ARM.fk(up.command)[2] > ARM.fk(q)[2]


def test_singularity_slows_then_halts_towards_and_lets_the_arm_back_out():
    m = monitor(workspace_high_m=(0.9, 0.35, 0.9))
    q = np.array([0.0, 0.3, -0.3])  # condition ~16 on the position rows
    towards = m.check(state(q), 0, np.array([0.0, 0.3, -0.26]))
    assert towards.flags & SafetyFlag.SINGULARITY
    assert 0.0 < towards.scale < 1.0
    assert towards.status is SafetyStatus.WARN
    near = np.array([0.0, 0.3, -0.08])  # condition ~60 > 30
    halt = m.check(state(near), 0, np.array([0.0, 0.3, -0.06]))
    assert halt.hold and halt.flags & SafetyFlag.SINGULARITY
    assert halt.status is SafetyStatus.ERROR
    np.testing.assert_array_equal(halt.command, near)
    away = m.check(state(near), 0, np.array([0.0, 0.3, -0.16]))
    assert not away.hold and away.flags & SafetyFlag.SINGULARITY
    assert away.scale >= 0.1
    assert away.command[2] < near[2]


def test_goal_outside_the_task_region_refuses_the_episode():
    m = monitor(goal_region=GoalRegion(low=(0.3, -0.2, 0.05), high=(0.7, 0.2, 0.4)))
    assert m.check_episode([0.5, 0.0, 0.2]).accepted
    refused = m.check_episode([0.5, 0.0, -0.2])
    assert not refused.accepted
    assert refused.flags == SafetyFlag.GOAL_OUT_OF_REGION
    assert refused.reasons == ("GOAL_OUT_OF_REGION",)
    assert refused.safety_cost == 1.0
    assert "outside the task region" in refused.detail
    assert not m.check_episode([np.nan, 0.0, 0.2]).accepted
    assert not m.check_episode([0.5, 0.0]).accepted


def test_goal_region_margin():
    m = monitor(
        goal_region=GoalRegion(low=(0.3, -0.2, 0.05), high=(0.7, 0.2, 0.4)),
        goal_region_margin_m=0.05,
    )
    assert m.check_episode([0.74, 0.0, 0.2]).accepted
    assert not m.check_episode([0.76, 0.0, 0.2]).accepted


def test_cost_is_the_worst_reason_and_weights_can_be_overridden():
    m = monitor(cost_weights={"STEP_LIMITED": 0.3})
    d = m.check(state(HOME), 0, HOME + 1.0)  # step- and velocity-limited
    assert d.safety_cost == pytest.approx(max(0.3, DEFAULT_COST_WEIGHTS["VELOCITY_LIMIT"]))
    with pytest.raises(ConfigError, match="Did you mean 'STEP_LIMITED'"):
        SafetyConfig(cost_weights={"STEP_LIMTED": 0.3})
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        SafetyConfig(cost_weights={"ESTOP": 2.0})


def test_joint_order_and_extra_joints_in_the_state():
    m = monitor()
    names = ("finger", "elbow", "yaw", "shoulder")
    st = RobotState(names, np.array([0.04, HOME[2], HOME[0], HOME[1]]), stamp_ns=0)
    d = m.check(st, 0, HOME + 0.01)
    np.testing.assert_allclose(d.command, HOME + 0.01)
    assert d.flags == 0


def test_missing_arm_joint_holds_the_last_finite_position():
    m = monitor()
    m.check(state(HOME), 0, HOME)
    d = m.check(RobotState(("yaw", "shoulder"), np.zeros(2)), 0, HOME + 0.01)
    assert d.hold and d.flags == SafetyFlag.NON_FINITE
    np.testing.assert_array_equal(d.command, HOME)


def test_kinematics_failure_holds():
    def broken(q: Any) -> Any:
        raise RuntimeError("solver died")

    low, high = ARM.joint_limits
    m = SafetyMonitor(
        SafetyConfig(),
        joint_names=NAMES,
        joint_low_rad=low,
        joint_high_rad=high,
        velocity_limit_rad_s=ARM.velocity_limits,
        max_joint_step_rad=STEP,
        control_period_s=DT,
        fk=broken,
        jacobian=broken,
    )
    d = m.check(state(HOME), 0, HOME + 0.01)
    assert d.hold and d.flags == SafetyFlag.NON_FINITE and "solver died" in d.details[-1]


@pytest.mark.parametrize(
    "kw",
    [
        {"stale_state_timeout_s": 0.0},
        {"joint_limit_margin_rad": -0.1},
        {"singularity_halt_condition": 10.0},
        {"workspace_low_m": (0.5, 0.0, 0.0), "workspace_high_m": (0.4, 1.0, 1.0)},
        {"table_top_z_m": 0.6},
        {"singularity_leaving_min_scale": 0.0},
    ],
)
def test_bad_safety_config_is_rejected(kw):
    with pytest.raises(ConfigError):
        SafetyConfig(**kw)


def test_margin_wider_than_a_joint_range_is_rejected():
    with pytest.raises(ConfigError, match="no room"):
        monitor(joint_limit_margin_rad=2.0)


def test_flag_bits_match_the_step_message():
    """SafetyFlag is the safety_flags bitmask of her_interfaces/Step.msg, bit for bit."""
    text = (Path(__file__).resolve().parents[2] / "src/her_interfaces/msg/Step.msg").read_text()
    constants = dict(re.findall(r"^uint32 ([A-Z_]+)=(\d+)", text, flags=re.M))
    assert {k: int(v) for k, v in constants.items()} == {f.name: int(f) for f in ALL_FLAGS}


def test_status_levels_are_diagnostic_msgs_levels_and_combine_by_severity():
    assert [
        int(s) for s in (SafetyStatus.OK, SafetyStatus.WARN, SafetyStatus.ERROR, SafetyStatus.STALE)
    ] == [
        0,
        1,
        2,
        3,
    ]
    assert worse(SafetyStatus.STALE, SafetyStatus.ERROR) is SafetyStatus.ERROR
    assert worse(SafetyStatus.WARN, SafetyStatus.STALE) is SafetyStatus.STALE
    assert worse(SafetyStatus.OK, SafetyStatus.OK) is SafetyStatus.OK


def test_stale_with_estop_reports_error():
    m = monitor()
    d = m.check(state(HOME, stamp_ns=0), 10**9, HOME, estop=True)
    assert d.flags == SafetyFlag.STALE_STATE | SafetyFlag.ESTOP
    assert d.status is SafetyStatus.ERROR
    assert d.reasons == ("STALE_STATE", "ESTOP")


def test_on_the_mujoco_arm():
    kin_mod = pytest.importorskip("her_goals.robot.kinematics")
    kin = kin_mod.Kinematics()
    m = SafetyMonitor.from_kinematics(
        SafetyConfig(), kin, max_joint_step_rad=0.1, control_period_s=DT
    )
    q = kin.home_qpos
    st = RobotState(kin.joint_names, q, stamp_ns=0)
    d = m.check(st, 0, q + 0.01)
    assert d.flags == 0 and 1.0 < d.condition_number < 17.0
    # Straight down from home (tcp z = 0.2 m) by 0.5 rad of shoulder lands in the table.
    down = q.copy()
    down[1] += 0.5
    d = m.check(st, 0, down)
    assert d.flags & SafetyFlag.STEP_LIMITED
    assert np.abs(d.command - q).max() <= m.joint_step_cap_rad.max() + 1e-12
