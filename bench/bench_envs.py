"""Benchmark of the MuJoCo arm tasks against Gymnasium-Robotics Fetch, measured in one run.

Prints:
  1. scripted-controller success on held-out goals for each of our tasks;
  2. env steps/s with random actions for HerReach/HerPush/HerPickAndPlace beside
     FetchReach-v4 and FetchPush-v4 (same number of steps; rounds interleaved so
     a change in machine load hits every env alike; median and best of the rounds);
  3. raw MuJoCo mj_step/s of our model (and of Fetch's, for scale), and the cost
     of one IK call and one observation build.

Usage: .venv/bin/python bench/bench_envs.py [--steps 2000] [--rounds 3] [--episodes 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import gymnasium_robotics
import mujoco
import numpy as np

from her_goals.robot.ik import cartesian_step
from her_goals.tasks import TASKS
from her_mujoco import ENV_CLASSES, make_task
from her_policy.deploy.scripted import scripted_controller

FETCH_IDS = ("FetchReach-v4", "FetchPush-v4")


def scripted_success(task: str, episodes: int) -> float:
    """Share of held-out goals the scripted controller reaches within 50 steps."""
    env = make_task(task)
    controller = scripted_controller(env)
    goals = env.unwrapped.goal_sampler.heldout(episodes)
    wins = 0.0
    for seed, goal in enumerate(goals):
        obs, _ = env.reset(seed=seed, options={"desired_goal": goal})
        truncated = terminated = False
        info: dict = {}
        while not (truncated or terminated):
            obs, _, terminated, truncated, info = env.step(controller(obs))
        wins += info["is_success"]
    return wins / episodes


def env_steps_per_s(env: gym.Env, actions: np.ndarray) -> float:
    """Env steps per second over ``actions`` (resets at episode ends are included)."""
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def mj_steps_per_s(model: mujoco.MjModel, data: mujoco.MjData, n: int) -> float:
    """Raw mj_step calls per second, in one C loop (no Python per step)."""
    start = time.perf_counter()
    mujoco.mj_step(model, data, nstep=n)
    return n / (time.perf_counter() - start)


def micros_per_call(fn: Callable[[], object], n: int = 2000) -> float:
    """Mean wall time of ``fn()`` in microseconds."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="env steps per env per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--episodes", type=int, default=50, help="held-out goals per task")
    args = parser.parse_args()
    gym.register_envs(gymnasium_robotics)

    print(
        f"scripted controller, success on {args.episodes} held-out goals (requested-goal success)"
    )
    for task in ENV_CLASSES:
        print(f"  {task:<16} {scripted_success(task, args.episodes):.2f}")

    ids = [*(TASKS[n].env_id for n in ENV_CLASSES), *FETCH_IDS]
    envs = {env_id: gym.make(env_id) for env_id in ids}
    actions = np.random.default_rng(0).uniform(-1, 1, (args.steps, 4)).astype(np.float32)
    rates: dict[str, list[float]] = {env_id: [] for env_id in ids}
    for _ in range(args.rounds):
        for env_id, env in envs.items():
            rates[env_id].append(env_steps_per_s(env, actions))
    print(
        f"\nenv steps/s, random actions, {args.steps} steps x {args.rounds} rounds (median / best)"
    )
    for env_id in ids:
        print(f"  {env_id:<20} {statistics.median(rates[env_id]):7.0f} / {max(rates[env_id]):7.0f}")

    print("\nraw MuJoCo mj_step/s (block resting on the table; 20 substeps = one env step)")
    ours = envs["HerPush-v0"].unwrapped
    ours.reset(seed=0)
    print(f"  {'her_arm.xml':<20} {mj_steps_per_s(ours.sim.model, ours.sim.data, 20000):7.0f}")
    fetch = envs["FetchPush-v4"].unwrapped
    fetch.reset(seed=0)
    print(f"  {'Fetch push.xml':<20} {mj_steps_per_s(fetch.model, fetch.data, 20000):7.0f}")

    q = ours.sim.arm_qpos.copy()
    delta = np.array([0.01, -0.01, 0.01])
    ik_us = micros_per_call(
        lambda: cartesian_step(ours.kinematics, q, delta, ours.control_period_s)
    )
    state = ours.sim.state()
    obs_us = micros_per_call(lambda: ours.observation_builder(state, state))
    print(f"\nper step: IK {ik_us:.0f} us, observation build {obs_us:.0f} us")


if __name__ == "__main__":
    main()
