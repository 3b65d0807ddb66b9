"""Domain randomisation: sampled within range and seeded, applied to the model, zero size = nominal."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from her_goals.errors import ConfigError
from her_mujoco import ArmSim, make_task
from her_mujoco.randomization import (
    BUNDLES,
    DEFAULT_RANDOMIZATION,
    PERTURBATION_SUITE,
    SINGLE_PERTURBATIONS,
    DomainRandomization,
    SimParams,
)


def test_samples_are_in_range_and_the_same_seed_gives_the_same_parameters() -> None:
    a = [DEFAULT_RANDOMIZATION.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    draws = [DEFAULT_RANDOMIZATION.sample(rng) for _ in range(200)]
    assert len({d.block_mass_scale for d in draws}) > 100  # really random
    for f in dataclasses.fields(DEFAULT_RANDOMIZATION):
        bounds = getattr(DEFAULT_RANDOMIZATION, f.name)
        if bounds is None or isinstance(bounds, bool):
            continue
        values = [getattr(d, f.name) for d in draws]
        assert min(values) >= bounds[0] and max(values) <= bounds[1], f.name
    assert {d.latency_ticks for d in draws} == {0, 1, 2}
    # One friction draw for block and table (MuJoCo's contact takes the larger): slippery
    # contacts are as likely as the range says; untied, each is drawn on its own.
    assert all(d.block_friction_scale == d.table_friction_scale for d in draws)
    tied_slippery = sum(d.block_friction_scale <= 0.75 for d in draws)
    assert tied_slippery > 40
    untied = dataclasses.replace(DEFAULT_RANDOMIZATION, tie_friction=False)
    loose = [untied.sample(rng) for _ in range(200)]
    assert sum(max(d.block_friction_scale, d.table_friction_scale) <= 0.75 for d in loose) < tied_slippery / 2


def test_the_default_ranges_reach_both_ends_of_every_suite_condition_often() -> None:
    """Training sees what the suite tests: every single condition's value (and so every
    bundle's) lies in the default range, both friction directions come up about equally
    often, and the suite's 80 ms latency is a third of the episodes."""
    for name, params in PERTURBATION_SUITE.items():
        for f in dataclasses.fields(params):
            value = getattr(params, f.name)
            if value == f.default:
                continue
            low, high = getattr(DEFAULT_RANDOMIZATION, f.name)
            assert low <= value <= high, f"{name}: {f.name}={value} outside the default {low}..{high}"
    rng = np.random.default_rng(1)
    draws = [DEFAULT_RANDOMIZATION.sample(rng) for _ in range(4000)]
    slippery = np.mean([d.block_friction_scale <= 0.71 for d in draws])
    sticky = np.mean([d.block_friction_scale >= 1.41 for d in draws])
    assert 0.22 < slippery < 0.28 and 0.22 < sticky < 0.28
    assert 0.30 < np.mean([d.latency_ticks == 2 for d in draws]) < 0.37
    assert np.mean([d.actuator_kp_scale <= 0.8 for d in draws]) > 0.15
    uniform = dataclasses.replace(DEFAULT_RANDOMIZATION, log_scales=False)
    lin = [uniform.sample(np.random.default_rng(1)) for _ in range(2000)]
    assert np.mean([d.block_friction_scale <= 0.71 for d in lin]) < 0.17  # what log draws fix


def test_parameters_are_applied_to_the_model_and_nominal_restores_it() -> None:
    sim = ArmSim()
    m = sim.model
    before = (m.dof_frictionloss.copy(), m.dof_damping.copy(), m.actuator_gainprm.copy(),
              m.body_mass.copy(), m.geom_friction.copy())  # fmt: skip
    params = SimParams(
        joint_friction_nm=0.4, joint_damping_nms=2.5, actuator_gain_scale=0.7,
        block_mass_scale=2.0, block_friction_scale=0.5, table_friction_scale=2.0,
    )  # fmt: skip
    sim.set_params(params)
    arm = sim._dofadr[:7]
    np.testing.assert_allclose(m.dof_frictionloss[arm], 0.4)
    np.testing.assert_allclose(m.dof_damping[arm], 2.5)
    np.testing.assert_allclose(m.actuator_gainprm[sim._arm_act, 0], 0.7 * before[2][sim._arm_act, 0])
    block = sim._block_body
    assert m.body_mass[block] == pytest.approx(2.0 * before[3][block])
    table = sim._table_geom
    assert m.geom_friction[table, 0] == pytest.approx(2.0 * before[4][table, 0])
    sim.set_params(SimParams())
    for now, then in zip((m.dof_frictionloss, m.dof_damping, m.actuator_gainprm, m.body_mass, m.geom_friction), before):
        np.testing.assert_array_equal(now, then)


def test_latency_delays_commands_and_sensing_noise_leaves_the_truth_alone() -> None:
    sim = ArmSim()
    sim.set_params(SimParams(latency_ticks=2, joint_position_noise_rad=0.01, object_position_noise_m=0.005), seed=3)
    sim.reset()
    home = sim.data.ctrl[sim._arm_act].copy()
    target = sim.arm_qpos.copy() + 0.1
    sim.set_joint_targets(target)
    np.testing.assert_array_equal(sim.data.ctrl[sim._arm_act], home)
    sim.step()
    sim.set_joint_targets(target)
    np.testing.assert_array_equal(sim.data.ctrl[sim._arm_act], home)
    sim.step()
    sim.set_joint_targets(target)
    np.testing.assert_allclose(sim.data.ctrl[sim._arm_act], target)
    measured, true = sim.state(), sim.true_state()
    assert not np.allclose(measured.position, true.position)
    assert np.abs(measured.position - true.position).max() < 0.06
    np.testing.assert_array_equal(true.position, sim.data.qpos[sim._qadr])


def test_a_perturbation_of_zero_size_reproduces_the_nominal_result_exactly() -> None:
    from her_goals.evaluation import EvaluationPlan
    from her_policy.app.robustness import run_condition
    from her_policy.app.sim import policy_actor

    env = make_task("push")
    goals = EvaluationPlan.for_task("push", "eval", planned_episodes=4, sampler=env.unwrapped.goal_sampler).goals()
    actor = policy_actor(env, "scripted")
    nominal = run_condition(env, actor, goals, SimParams(), seed=5, name="nominal")
    zero = run_condition(
        env, actor, goals, SimParams(joint_position_noise_rad=0.0, block_mass_scale=1.0, latency_ticks=0),
        seed=5, name="zero",
    )  # fmt: skip
    assert (zero.successes, zero.safety_cost_mean, zero.success_margin_mean) == (
        nominal.successes, nominal.safety_cost_mean, nominal.success_margin_mean
    )
    friction = run_condition(env, actor, goals, SimParams(block_friction_scale=0.5, table_friction_scale=0.5), seed=5, name="f")
    assert friction.success_margin_mean != nominal.success_margin_mean  # the perturbation acts


def test_the_suite_is_named_with_physical_values_and_bad_ranges_are_refused() -> None:
    names = set(PERTURBATION_SUITE)
    assert {"latency=40ms", "latency=80ms", "block_friction=0.5x,table_friction=0.5x",
            "block_friction=2x,table_friction=2x", "block_mass=0.5x", "block_mass=2x",
            "joint_damping=0.5Nms/rad", "joint_damping=3Nms/rad", "joint_frictionloss=0.5Nm",
            "joint_noise=0.005rad", "object_noise=5mm", "servo_kp_kv=0.7x", "servo_kp_kv=1.3x",
            "servo_kp_only=0.7x", "servo_kp_only=1.3x", "all_low_friction", "all_high_friction"} == names  # fmt: skip
    with pytest.raises(ConfigError, match="low <= high"):
        DomainRandomization(block_mass_scale=(2.0, 1.0))
    with pytest.raises(ConfigError, match="block_mass_scale"):
        DomainRandomization(block_mass_scale=(0.0, 1.0))
    with pytest.raises(ConfigError, match="unknown"):
        DomainRandomization.from_spec("defualt")


def _model_arrays(sim: ArmSim) -> dict[str, np.ndarray]:
    m, arm = sim.model, sim._dofadr[:7]
    return {
        "frictionloss": m.dof_frictionloss[arm].copy(),
        "damping": m.dof_damping[arm].copy(),
        "kp": m.actuator_gainprm[sim._arm_act, 0].copy(),
        "kv": -m.actuator_biasprm[sim._arm_act, 2].copy(),
        "block_mass": m.body_mass[sim._block_body : sim._block_body + 1].copy(),
        "friction": m.geom_friction[[*sim._block_geoms, sim._table_geom], 0].copy(),
    }


# What each single condition of the suite must change in the model (and nothing else).
_CHANGES = {
    "joint_frictionloss=0.5Nm": {"frictionloss"},
    "joint_damping=0.5Nms/rad": {"damping"},
    "joint_damping=3Nms/rad": {"damping"},
    "servo_kp_kv=0.7x": {"kp", "kv"},
    "servo_kp_kv=1.3x": {"kp", "kv"},
    "servo_kp_only=0.7x": {"kp"},
    "servo_kp_only=1.3x": {"kp"},
    "block_mass=0.5x": {"block_mass"},
    "block_mass=2x": {"block_mass"},
    "block_friction=0.5x,table_friction=0.5x": {"friction"},
    "block_friction=2x,table_friction=2x": {"friction"},
}


def test_each_single_condition_changes_the_physics_it_names_and_nothing_else() -> None:
    sim = ArmSim()
    nominal = _model_arrays(sim)
    assert not nominal["frictionloss"].any()  # the model has no dry friction: an absolute value, not a scale
    for name, changed in _CHANGES.items():
        sim.set_params(SINGLE_PERTURBATIONS[name])
        now = _model_arrays(sim)
        moved = {k for k in now if not np.array_equal(now[k], nominal[k])}
        assert moved == changed, name
    sim.set_params(SINGLE_PERTURBATIONS["joint_frictionloss=0.5Nm"])
    np.testing.assert_allclose(sim.model.dof_frictionloss[sim._dofadr[:7]], 0.5)
    sim.set_params(SINGLE_PERTURBATIONS["servo_kp_only=0.7x"])
    np.testing.assert_allclose(_model_arrays(sim)["kp"], 0.7 * nominal["kp"])
    sim.set_params(SINGLE_PERTURBATIONS["block_friction=2x,table_friction=2x"])
    np.testing.assert_allclose(_model_arrays(sim)["friction"], 2.0 * nominal["friction"])
    # The remaining singles act elsewhere: latency on commands, noise on the measurement.
    assert set(SINGLE_PERTURBATIONS) - set(_CHANGES) == {
        "latency=40ms", "latency=80ms", "joint_noise=0.005rad", "object_noise=5mm"}


def _tracking_error(params: SimParams, ticks: int = 12) -> float:
    """How far the arm is from a held joint target after ``ticks`` control periods."""
    sim = ArmSim()
    sim.set_params(params)
    sim.reset()
    target = sim.arm_qpos.copy()
    target[4:] += 0.05  # the light wrist joints: small servo forces, where dry friction shows
    for _ in range(ticks):
        sim.set_joint_targets(target)
        sim.step()
    return float(np.abs(sim.arm_qpos[4:] - target[4:]).max())


def test_dry_joint_friction_and_a_soft_servo_are_felt_by_the_arm() -> None:
    nominal = _tracking_error(SimParams())
    assert _tracking_error(SINGLE_PERTURBATIONS["joint_frictionloss=0.5Nm"]) > nominal + 1e-4
    assert _tracking_error(SINGLE_PERTURBATIONS["servo_kp_only=0.7x"]) != nominal


@pytest.mark.parametrize("ticks", [1, 2])
def test_latency_conditions_delay_the_command_by_their_ticks(ticks: int) -> None:
    sim = ArmSim()
    sim.set_params(SINGLE_PERTURBATIONS[f"latency={40 * ticks}ms"])
    sim.reset()
    home = sim.data.ctrl[sim._arm_act].copy()
    target = sim.arm_qpos.copy() + 0.05
    for _ in range(ticks):
        sim.set_joint_targets(target)
        np.testing.assert_array_equal(sim.data.ctrl[sim._arm_act], home)
        sim.step()
    sim.set_joint_targets(target)
    np.testing.assert_allclose(sim.data.ctrl[sim._arm_act], target)


def test_the_bundles_take_every_knob_together_in_both_directions() -> None:
    low, high = BUNDLES["all_low_friction"], BUNDLES["all_high_friction"]
    assert (low.block_friction_scale, low.table_friction_scale) == (0.5, 0.5)
    assert (high.block_friction_scale, high.table_friction_scale) == (2.0, 2.0)
    assert low.block_mass_scale < 1.0 < high.block_mass_scale
    assert low.joint_damping_nms is not None and high.joint_damping_nms is not None
    assert low.joint_damping_nms < 1.0 < high.joint_damping_nms  # the model's damping is 1
    assert low.actuator_gain_scale < 1.0 and high.actuator_kp_scale < 1.0
    for bundle in (low, high):
        # The one-ended knobs at the suite's harshest value, in every bundle.
        assert bundle.latency_ticks == max(p.latency_ticks for p in SINGLE_PERTURBATIONS.values())
        assert bundle.joint_friction_nm == 0.5
        assert bundle.joint_position_noise_rad == 0.005 and bundle.object_position_noise_m == 0.005


def test_robustness_reports_every_bundle_and_calls_out_the_worst(tmp_path, capsys) -> None:
    import json

    from her_policy.app.cli import main

    out = tmp_path / "rb"
    assert main(["robustness", "scripted", "--task", "push", "--goals", "2", "--out", str(out)]) == 0
    rows = json.loads((out / "robustness.json").read_text())
    kinds = {r["name"]: r["kind"] for r in rows}
    assert kinds["nominal"] == "nominal" and kinds["latency=80ms"] == "single"
    assert [n for n, k in kinds.items() if k == "bundle"] == ["all_low_friction", "all_high_friction"]
    bundles = [r for r in rows if r["kind"] == "bundle"]
    worst = min(bundles, key=lambda r: r["success"])
    table = (out / "robustness.md").read_text()
    assert "| **all_low_friction** (bundle) |" in table and "| **all_high_friction** (bundle) |" in table
    assert f"worst bundle (all together): {worst['name']} {worst['success']:.2f}" in table
    assert f"worst bundle (all together): {worst['name']}" in capsys.readouterr().out


def test_robustness_compares_policies_side_by_side_on_the_same_goals(tmp_path) -> None:
    import json

    from her_policy.app.cli import main

    out = tmp_path / "rb"
    code = main(["robustness", "scripted", "--compare", "scripted", "--task", "push", "--goals", "3",
                 "--perturbation", "block_friction_scale=0.5,table_friction_scale=0.5", "--out", str(out)])
    assert code == 0
    table = (out / "robustness.md").read_text()
    assert "| condition | scripted | scripted' |" in table and "| block_friction=0.5x,table_friction=0.5x |" in table
    both = json.loads((out / "robustness.json").read_text())
    assert list(both) == ["scripted", "scripted'"]
    # Same goals, same conditions, a deterministic controller: the same outcome in both columns.
    assert [r["successes"] for r in both["scripted"]] == [r["successes"] for r in both["scripted'"]]
    assert (out / "robustness.png").stat().st_size > 0
    assert main(["robustness", "scripted", "--compare", str(tmp_path / "nope"), "--task", "push"]) == 2
