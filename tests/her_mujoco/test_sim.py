"""The simulated arm: position tracking, a quiet block, a gripper that holds it, exact stamps."""

import numpy as np
import pytest

from her_goals import StateError
from her_goals.robot import Kinematics, cartesian_step
from her_mujoco import ArmSim


@pytest.fixture()
def sim() -> ArmSim:
    return ArmSim()


def move_tcp(sim: ArmSim, kin: Kinematics, target: np.ndarray, opening: float, steps: int) -> None:
    for _ in range(steps):
        delta = np.clip(target - kin.fk(sim.arm_qpos), -0.05, 0.05)
        sim.set_joint_targets(cartesian_step(kin, sim.arm_qpos, delta, sim.control_period_s), opening)
        sim.step()


def test_holding_home_the_arm_stays_put_and_the_block_rests_without_jitter(sim: ArmSim) -> None:
    sim.reset()
    home, block = sim.arm_qpos.copy(), sim.object_pose()
    for _ in range(50):  # 2 s
        sim.step()
    assert np.max(np.abs(sim.arm_qpos - home)) < 1e-4
    np.testing.assert_allclose(sim.object_pose(), block, atol=5e-4)
    block_speed = np.abs(sim.data.qvel[-6:]).max()
    assert block_speed < 1e-3


def test_joint_targets_are_tracked_closely(sim: ArmSim) -> None:
    sim.reset()
    q0 = sim.arm_qpos.copy()
    rate = np.array([0.5, 0.5, 0.5, -0.5, 0.5, 0.5, 0.5])  # rad/s, all joints at once
    errors = []
    for k in range(1, 11):
        target = q0 + rate * sim.control_period_s * k
        sim.set_joint_targets(target)
        sim.step()
        errors.append(np.max(np.abs(sim.arm_qpos - target)))
    assert max(errors) < 0.02  # lag while moving at 0.5 rad/s
    for _ in range(3):
        sim.step()
    assert np.max(np.abs(sim.arm_qpos - target)) < 1e-3  # settled


def test_the_gripper_closes_on_the_block_and_lifts_it(sim: ArmSim) -> None:
    kin = Kinematics(sim.config, sim.model)
    sim.reset(object_position=[0.55, 0.05, 0.025])
    block = sim.object_pose()[:3]
    move_tcp(sim, kin, block + np.array([0, 0, 0.1]), 0.08, 12)
    move_tcp(sim, kin, block, 0.08, 8)
    move_tcp(sim, kin, block, 0.0, 6)
    # Fingers stop on the 5 cm block instead of passing through it.
    assert 0.042 < sim.gripper_opening_m < 0.052
    move_tcp(sim, kin, block + np.array([0, 0, 0.2]), 0.0, 12)
    lifted = sim.object_pose()[:3]
    assert lifted[2] > 0.2
    assert np.linalg.norm(lifted - kin.fk(sim.arm_qpos)) < 0.02
    # Opening drops it back onto the table, where it comes to rest.
    move_tcp(sim, kin, block + np.array([0, 0, 0.2]), 0.08, 25)
    assert sim.object_pose()[2] == pytest.approx(0.025, abs=1e-3)


def test_time_is_exact_integer_nanoseconds_and_never_goes_back(sim: ArmSim) -> None:
    start = sim.reset().stamp_ns
    for _ in range(1000):
        sim.step()
    assert sim.time_ns == start + 1000 * 40_000_000
    assert isinstance(sim.state().stamp_ns, int)
    # The next episode starts one control period after the last state: bags replay in order.
    assert sim.reset().stamp_ns == start + 1001 * 40_000_000
    assert ArmSim().reset().stamp_ns == 0


def test_state_is_what_a_driver_publishes(sim: ArmSim) -> None:
    state = sim.reset()
    assert state.joint_names == (*(f"joint{i}" for i in range(1, 8)), "finger_joint1", "finger_joint2")
    assert state.position.shape == state.velocity.shape == state.effort.shape == (9,)
    np.testing.assert_allclose(state.object_pose, [0.5, 0.0, 0.025, 1, 0, 0, 0])
    sim.step()
    # Gravity compensation counts as actuator effort: joint 2 holds the arm up.
    assert abs(sim.state().effort[1]) > 5.0


def test_seeded_reset_places_the_object_reproducibly(sim: ArmSim) -> None:
    a = sim.reset(seed=3).object_pose
    b = sim.reset(seed=3).object_pose
    c = sim.reset(seed=4).object_pose
    assert a is not None and b is not None and c is not None
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.all(np.abs(a[:2] - [0.5, 0.0]) <= 0.15)


def test_exploding_physics_is_flagged_not_hidden(sim: ArmSim) -> None:
    sim.reset()
    sim.step()
    assert not sim.diverged
    sim.data.qvel[:] = 1e12
    sim.step()
    assert sim.diverged
    assert np.isfinite(sim.data.qpos).all()  # MuJoCo reset itself; the flag is how we know
    sim.reset()
    assert not sim.diverged


def test_bad_commands_are_refused(sim: ArmSim) -> None:
    with pytest.raises(StateError, match="shape"):
        sim.set_joint_targets(np.zeros(6))
    with pytest.raises(StateError, match="NaN"):
        sim.set_joint_targets(np.full(7, np.nan))
    with pytest.raises(StateError, match="object_position"):
        sim.reset(object_position=[0.5, 0.0])
