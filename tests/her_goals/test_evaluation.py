"""The evaluation plan: a prefix-stable held-out stream, strict (de)serialisation, plausibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from her_goals import get_goal_space
from her_goals.errors import ConfigError
from her_goals.evaluation import (
    PLAN_FORMAT,
    EvaluationPlan,
    implausible,
    policy_id,
    registered_goal_space,
    split_name,
)
from her_goals.sampling import GoalSampler
from her_goals.tasks import get_task


def test_the_heldout_stream_is_prefix_stable_and_held_out() -> None:
    plan = EvaluationPlan.for_task("reach", "heldout", planned_episodes=20, policy="scripted", stream_seed=7)
    goals = plan.goals()
    assert goals.shape == (20, 3) and plan.split == "eval"
    np.testing.assert_array_equal(plan.goals(5), goals[:5])  # goal i does not depend on n
    np.testing.assert_array_equal(plan.goal(13), goals[13])
    assert plan.is_heldout(goals).all()
    assert plan.goal_region.contains(goals).all()
    other = EvaluationPlan.for_task("reach", "eval", planned_episodes=20, stream_seed=8)
    assert not np.isclose(other.goals(), goals).all(axis=-1).any()  # another seed, other goals


def test_the_plan_follows_the_writers_sampler_and_the_registry() -> None:
    space = registered_goal_space("push")
    assert space.name == "object_position" and space.tolerance == get_task("push").tolerance
    sampler = GoalSampler(space, get_task("push").goal_region, seed=4, heldout_every=5)
    plan = EvaluationPlan.for_task("push", "eval", planned_episodes=3, sampler=sampler)
    assert (plan.sampler_seed, plan.heldout_every, plan.cell_size) == (4, 5, sampler.cell_size)


def test_round_trip_and_strict_parsing() -> None:
    plan = EvaluationPlan.for_task("reach", "train", policy="learner")
    data = plan.to_dict()
    assert data["format"] == PLAN_FORMAT
    assert EvaluationPlan.from_dict(data).same_as(plan)
    with pytest.raises(ConfigError, match="unknown key"):
        EvaluationPlan.from_dict({**data, "planned": 3})
    with pytest.raises(ConfigError, match="format"):
        EvaluationPlan.from_dict({**data, "format": "other/9"})
    with pytest.raises(ConfigError, match="split"):
        EvaluationPlan.from_dict({**data, "split": "test"})
    with pytest.raises(ConfigError, match="missing"):
        EvaluationPlan.from_dict({k: v for k, v in data.items() if k != "goal_region"})


def test_policy_ids_and_split_names() -> None:
    assert policy_id("abc") == "abc" and policy_id("abc", noise_std=0.1) == "abc+explore"
    assert policy_id("scripted", random_eps=0.3) == "scripted+explore"
    assert split_name("heldout") == "eval" and split_name("train") == "train"


def test_values_implausible_for_their_units() -> None:
    metres = get_goal_space("ee_position")
    assert implausible(metres, [[0.5, 0.0, 0.2]], 0.05) == ""
    assert "not in metres" in implausible(metres, [[50.0, 0.0, 20.0]])
    assert "tolerance 5" in implausible(metres, [[0.5, 0.0, 0.2]], 5.0)
    radians = get_goal_space("joint_angle")
    assert implausible(radians, [[math.pi / 2]]) == ""
    assert "degrees" in implausible(radians, [[90.0]])
