"""The goal contract: one pure, vectorised reward function per goal space."""

import dataclasses

import numpy as np
import pytest

from her_goals import (
    GOAL_SPACES,
    GoalError,
    GoalShapeError,
    GoalSpace,
    NonFiniteGoalError,
    UnknownGoalSpaceError,
    get_goal_space,
)

BLOCK_1D = GoalSpace(name="block_x", dim=1, units="m", frame="table", tolerance=0.5)


def test_seed_worked_example_block_meant_for_10_ended_at_7() -> None:
    achieved = np.array([7.0])
    # The requested goal was 10: a failure.
    assert BLOCK_1D.compute_reward(achieved, np.array([10.0])) == -1.0
    assert not BLOCK_1D.is_success(achieved, np.array([10.0]))
    # Relabelled to where the block actually went: a success. Same physics, new label.
    assert BLOCK_1D.compute_reward(achieved, np.array([7.0])) == 0.0
    assert BLOCK_1D.is_success(achieved, np.array([7.0]))


def test_batch_of_two_has_shape_two_and_scalar_equals_batch0() -> None:
    space = get_goal_space("object_position")
    achieved = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    desired = np.array([[0.01, 0.0, 0.0], [0.0, 0.0, 0.0]])
    batch = space.compute_reward(achieved, desired)
    assert batch.shape == (2,)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, [0.0, -1.0])
    scalar = space.compute_reward(achieved[0], desired[0])
    assert scalar.shape == ()
    assert scalar == batch[0]


def test_any_leading_batch_shape() -> None:
    space = get_goal_space("ee_position")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 5, 3)) * 0.05
    d = rng.normal(size=(4, 5, 3)) * 0.05
    r = space.compute_reward(a, d)
    assert r.shape == (4, 5)
    flat = space.compute_reward(a.reshape(-1, 3), d.reshape(-1, 3)).reshape(4, 5)
    np.testing.assert_array_equal(r, flat)


def test_reward_is_success_minus_one_including_the_boundary() -> None:
    space = get_goal_space("ee_position")
    d = np.zeros(3)
    on_boundary = np.array([space.tolerance, 0.0, 0.0])
    inside = np.array([space.tolerance * 0.999, 0.0, 0.0])
    assert space.compute_reward(on_boundary, d) == -1.0 and not space.is_success(on_boundary, d)
    assert space.compute_reward(inside, d) == 0.0 and space.is_success(inside, d)


def test_periodic_angle_uses_shortest_arc() -> None:
    hinge = dataclasses.replace(get_goal_space("joint_angle"), periodic=True)
    assert hinge.is_success([np.pi - 0.01], [-np.pi + 0.01])
    assert not get_goal_space("joint_angle").is_success([np.pi - 0.01], [-np.pi + 0.01])


def test_wrong_shape_is_rejected_with_the_space_named() -> None:
    space = get_goal_space("object_position")
    with pytest.raises(GoalShapeError, match=r"object_position.*\(\.\.\., 3\)"):
        space.compute_reward(np.zeros(2), np.zeros(2))


def test_no_silent_broadcasting_of_mismatched_batches() -> None:
    space = get_goal_space("object_position")
    with pytest.raises(GoalShapeError, match="without broadcasting"):
        space.compute_reward(np.zeros((5, 3)), np.zeros(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_goal_is_rejected(bad: float) -> None:
    space = get_goal_space("ee_position")
    with pytest.raises(NonFiniteGoalError, match="desired_goal contains NaN or inf"):
        space.compute_reward(np.zeros(3), np.array([0.0, bad, 0.0]))


def test_unknown_goal_space_suggests_the_close_name() -> None:
    with pytest.raises(UnknownGoalSpaceError, match="Did you mean 'object_position'"):
        get_goal_space("object_postion")


def test_spec_round_trip_and_mismatch_detection() -> None:
    for space in GOAL_SPACES.values():
        assert GoalSpace.from_spec(space.spec()) == space
    reach = get_goal_space("ee_position")
    assert not reach.same_as(reach.with_tolerance(0.01))
    assert not reach.same_as(get_goal_space("object_position"))


def test_invalid_tolerance_is_rejected() -> None:
    with pytest.raises(NonFiniteGoalError, match="tolerance"):
        GoalSpace(name="x", dim=3, units="m", frame="w", tolerance=0.0)


def test_compute_reward_takes_gymnasium_infos_and_refuses_anything_else() -> None:
    space = get_goal_space("ee_position")
    a, d = np.zeros((2, 3)), np.zeros((2, 3))
    for info in (None, {}, [{}, {}], np.array([{}, {}], dtype=object)):
        np.testing.assert_array_equal(space.compute_reward(a, d, info), [0.0, 0.0])
    for bad in ("info", 3.0, np.zeros(2), [1, 2]):
        with pytest.raises(GoalError, match="info must be"):
            space.compute_reward(a, d, bad)
