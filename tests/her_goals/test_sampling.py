"""Desired-goal samplers: seeded, and training never shares a goal with evaluation."""

import numpy as np
import pytest

from her_goals import ConfigError, GoalRegion, GoalSampler, GoalShapeError, get_goal_space

REGION = GoalRegion(low=(0.3, -0.15, 0.05), high=(0.6, 0.15, 0.35))


def make(seed: int = 0) -> GoalSampler:
    return GoalSampler(get_goal_space("ee_position"), REGION, seed=seed)


def test_same_seed_same_goals_and_other_seed_other_goals() -> None:
    np.testing.assert_array_equal(make(3).sample(20), make(3).sample(20))
    assert not np.allclose(make(3).sample(20), make(4).sample(20))
    np.testing.assert_array_equal(make(3).heldout(50), make(3).heldout(50))


def test_goals_lie_in_the_region() -> None:
    goals = make().sample(2000)
    assert goals.shape == (2000, 3)
    assert REGION.contains(goals).all()
    # Uniform coverage: every octant of the box gets goals.
    mid = (np.array(REGION.low) + np.array(REGION.high)) / 2
    octant = ((goals > mid) * [1, 2, 4]).sum(axis=1)
    assert set(octant.tolist()) == set(range(8))


def test_training_and_heldout_streams_never_share_a_goal() -> None:
    sampler = make(0)
    train = sampler.sample(20000)
    heldout = sampler.heldout(2000)
    assert not sampler.is_heldout(train).any()
    assert sampler.is_heldout(heldout).all()
    # Even a held-out list built from the training seed cannot contain a training goal.
    train_set = {tuple(g) for g in np.round(train, 12)}
    assert not any(tuple(g) in train_set for g in np.round(heldout, 12))


def test_heldout_goals_follow_the_task_distribution() -> None:
    heldout = make(0).heldout(4000)
    train = make(0).sample(4000)
    np.testing.assert_allclose(heldout.mean(axis=0), train.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(heldout.std(axis=0), train.std(axis=0), atol=0.01)


def test_floor_fraction_puts_goals_on_the_table() -> None:
    region = GoalRegion(low=(0.3, -0.15, 0.02), high=(0.6, 0.15, 0.32), floor_fraction=0.5)
    goals = GoalSampler(get_goal_space("object_position"), region, seed=1).sample(4000)
    on_floor = np.isclose(goals[:, 2], 0.02)
    assert 0.45 < on_floor.mean() < 0.55


def test_bad_regions_and_dimension_mismatch_are_named() -> None:
    with pytest.raises(ConfigError, match="low <= high"):
        GoalRegion(low=(1.0,), high=(0.0,))
    with pytest.raises(GoalShapeError, match="goal region has 2 dimensions"):
        GoalSampler(get_goal_space("ee_position"), GoalRegion(low=(0, 0), high=(1, 1)))


def test_reseeding_training_keeps_the_heldout_list() -> None:
    sampler = make(5)
    before = sampler.heldout(30)
    first = sampler.sample(5)
    sampler.reset(99)
    np.testing.assert_array_equal(sampler.heldout(30), before)
    assert not np.allclose(sampler.sample(5), first)
    sampler.reset(5)
    np.testing.assert_array_equal(sampler.sample(5), first)
