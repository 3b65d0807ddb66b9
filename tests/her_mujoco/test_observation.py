"""The observation is built from RobotStates alone, with a documented layout."""

import numpy as np
import pytest
from transforms3d.euler import quat2euler

from her_goals import RobotState, StateError
from her_goals.robot import Kinematics, ObservationBuilder, ObservationLayout
from her_goals.robot.observation import opening_of, quat_to_rpy

JOINTS = (*(f"joint{i}" for i in range(1, 8)), "finger_joint1", "finger_joint2")
DT = 0.04


@pytest.fixture(scope="module")
def kin() -> Kinematics:
    return Kinematics()


def robot_state(q: np.ndarray, fingers: float, pose: list[float] | None, stamp_ns: int) -> RobotState:
    # Deliberately not in the builder's joint order: states come from drivers as they are.
    names = JOINTS[::-1]
    position = np.concatenate((q, [fingers, fingers]))[::-1]
    return RobotState(names, position, stamp_ns=stamp_ns,
                      object_pose=None if pose is None else np.asarray(pose, float))


def test_layouts_are_fetch_like_and_storable() -> None:
    reach, push = ObservationLayout.build(False), ObservationLayout.build(True)
    assert reach.names == ("tcp_pos", "tcp_vel", "gripper_opening", "gripper_opening_rate")
    assert reach.size == 8 and push.size == 23
    assert push.slice("object_rel_pos") == slice(11, 14)
    assert ObservationLayout.from_spec(push.spec()) == push
    with pytest.raises(KeyError, match="Did you mean 'object_pos'"):
        push.slice("object_poss")


def test_values_and_finite_difference_velocities(kin: Kinematics) -> None:
    builder = ObservationBuilder(kin, ("finger_joint1", "finger_joint2"), DT, with_object=True)
    at = builder.layout.slice
    q0 = kin.home_qpos.copy()
    q1 = q0 + 0.01
    yaw = 0.1  # the block turns about z by 0.1 rad and slides 4 mm in x during one period
    s0 = robot_state(q0, 0.04, [0.5, 0.0, 0.025, 1, 0, 0, 0], 0)
    s1 = robot_state(q1, 0.03, [0.504, 0.0, 0.025, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)], 40_000_000)
    first = builder(s0)
    assert np.all(first[at("tcp_vel")] == 0) and np.all(first[at("object_angvel")] == 0)
    obs = builder(s1, s0)
    np.testing.assert_allclose(obs[at("tcp_pos")], kin.fk(q1))
    np.testing.assert_allclose(obs[at("tcp_vel")], (kin.fk(q1) - kin.fk(q0)) / DT)
    assert obs[at("gripper_opening")][0] == pytest.approx(0.06)
    assert obs[at("gripper_opening_rate")][0] == pytest.approx(-0.02 / DT)
    np.testing.assert_allclose(obs[at("object_rel_pos")], [0.504, 0.0, 0.025] - kin.fk(q1))
    np.testing.assert_allclose(obs[at("object_rot")], [0, 0, yaw], atol=1e-12)
    np.testing.assert_allclose(obs[at("object_vel")], [0.1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(obs[at("object_angvel")], [0, 0, yaw / DT], atol=1e-9)


def test_rpy_convention() -> None:
    roll, pitch, yaw = 0.3, -0.2, 1.1
    # q = qz(yaw) * qy(pitch) * qx(roll) for R = Rz Ry Rx
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    quat = np.array([
        cy * cp * cr + sy * sp * sr,
        cy * cp * sr - sy * sp * cr,
        cy * sp * cr + sy * cp * sr,
        sy * cp * cr - cy * sp * sr,
    ])
    np.testing.assert_allclose(quat_to_rpy(quat), [roll, pitch, yaw], atol=1e-12)


def test_object_tasks_need_an_object_pose(kin: Kinematics) -> None:
    builder = ObservationBuilder(kin, ("finger_joint1", "finger_joint2"), DT, with_object=True)
    with pytest.raises(StateError, match="object_pose"):
        builder(robot_state(kin.home_qpos, 0.04, None, 0))
    reach = ObservationBuilder(kin, ("finger_joint1", "finger_joint2"), DT, with_object=False)
    assert reach(robot_state(kin.home_qpos, 0.04, None, 0)).shape == (8,)


def test_a_joint_missing_from_the_state_is_named(kin: Kinematics) -> None:
    builder = ObservationBuilder(kin, ("finger_joint1", "finger_joint2"), DT, with_object=False)
    state = RobotState(JOINTS[1:], np.zeros(8))
    with pytest.raises(StateError, match="joint1"):
        builder(state)


def test_quat_to_rpy_is_transforms3d_bit_for_bit() -> None:
    """Random unit, unnormalised, near-zero and gimbal-locked quaternions: identical bytes."""
    rng = np.random.default_rng(0)
    quats = rng.normal(size=(10_000, 4))
    quats[:5000] /= np.linalg.norm(quats[:5000], axis=1, keepdims=True)
    quats[5000:5100] = 0.0  # no rotation (below transforms3d's epsilon)
    quats[5100:5200] = [np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0]  # pitch +90 deg: yaw is 0
    quats[5200:5300] = [np.sqrt(0.5), 0.0, -np.sqrt(0.5), 0.0]
    quats[5300:5400] *= 1e-9
    differ = [
        q.tolist() for q in quats
        if quat_to_rpy(q).tobytes() != np.asarray(quat2euler(q, "sxyz"), dtype=np.float64).tobytes()
    ]
    assert not differ, differ[:3]


def test_gripper_opening_is_numpys_sum_bit_for_bit() -> None:
    """The opening is added on Python floats in numpy's order: the same bytes as ``ndarray.sum``
    for 0 to 11 fingers, signed zeros included, and NaN/inf still refused."""
    rng = np.random.default_rng(0)
    for n in range(12):
        for _ in range(2000):
            fingers = rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, size=n)
            if n and rng.random() < 0.2:
                fingers[rng.integers(n)] = -0.0
            if n and rng.random() < 0.1:
                fingers[:] = -0.0
            expected = np.float64(fingers.sum())
            if n and rng.random() < 0.05:
                fingers[rng.integers(n)] = rng.choice([np.inf, -np.inf, np.nan])
                with pytest.raises(StateError, match="NaN/inf"):
                    opening_of(fingers.tolist(), ("f",))
                continue
            got = np.float64(opening_of(fingers.tolist(), ("f",)))
            assert got.tobytes() == expected.tobytes(), (n, fingers.tolist())
