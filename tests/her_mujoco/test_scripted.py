"""Scripted controllers solve the tasks on held-out goals: the tasks are solvable as built.

Measured on this model (100 held-out goals each): reach 1.00, push 0.95 (tool
starting at the block's height, issue 10; 0.99 from the old start 17.5 cm above it),
pick-and-place 0.99. The thresholds below leave margin for other machines.
"""

import numpy as np
import pytest

from her_mujoco import make_task
from her_policy.deploy.scripted import scripted_controller

EPISODES = 20
MIN_SUCCESS = {"reach": 0.95, "push": 0.85, "pick_and_place": 0.85}


@pytest.mark.parametrize("task", list(MIN_SUCCESS))
def test_scripted_controller_reaches_held_out_goals(task: str) -> None:
    env = make_task(task)
    controller = scripted_controller(env)
    goals = env.unwrapped.goal_sampler.heldout(EPISODES)
    successes, start_distances = [], []
    for seed, goal in enumerate(goals):
        obs, _ = env.reset(seed=seed, options={"desired_goal": goal})
        start_distances.append(np.linalg.norm(obs["achieved_goal"] - goal))
        truncated = False
        while not truncated:
            obs, _, terminated, truncated, info = env.step(controller(obs))
            assert not terminated
        successes.append(info["is_success"])
    assert np.mean(successes) >= MIN_SUCCESS[task]
    # Almost no goal was already reached at reset: success means the tool or block moved.
    assert np.mean(np.array(start_distances) > 0.05) >= 0.9


def test_controllers_are_chosen_by_task_and_refuse_unknown_ones() -> None:
    action = scripted_controller("reach")(
        {"observation": np.zeros(8), "desired_goal": np.array([0.0, 0.0, 1.0])}
    )
    assert action.shape == (4,) and action.dtype == np.float32
    assert action[2] == 1.0  # straight up, clipped to the unit action
    with pytest.raises(ValueError, match="Did you mean 'push'"):
        scripted_controller("puhs")
