"""HER sampling throughput: our HerReplayBuffer vs Stable-Baselines3's, same data, same machine.

Both buffers hold the same FetchPush-v4-shaped episodes (obs 25, goal 3,
action 4, 50 steps) at each size; a "sample" is one batch with `future`
relabelling (k=4) and recomputed rewards. Prints transitions/s for batch 256:

* ours: ``HerReplayBuffer.sample`` (numpy batch, rewards from the goal space);
* ours + tensors: the same plus what the learner does before its update
  (normalise observation and goal, ``torch.from_numpy``), since SB3's sample
  already returns torch tensors;
* SB3: ``HerReplayBuffer.sample`` (rewards through ``env.env_method("compute_reward")``).

SB3's buffer is filled by writing its arrays the way ``add`` would (one Python
call per transition would take minutes at 10^6); ``--check-fill`` verifies on a
small buffer that this gives the same state as ``add``.

Usage: .venv/bin/python bench/bench_replay.py [--sizes 10000 1000000] [--batch 256] [--seconds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

EPISODE = 50
OBS, GOAL, ACT = 25, 3, 4


def episodes(n_transitions: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic episodes: smooth random walks of the object and gripper, fixed goal per episode."""
    rng = np.random.default_rng(seed)
    n_ep = n_transitions // EPISODE
    steps = rng.normal(0, 0.01, (n_ep, EPISODE + 1, GOAL)).cumsum(axis=1)
    achieved = 1.3 + steps
    desired = 1.3 + rng.uniform(-0.15, 0.15, (n_ep, GOAL))
    obs = rng.normal(0, 1, (n_ep, EPISODE + 1, OBS)).astype(np.float32)
    obs[:, :, 3:6] = achieved
    actions = rng.uniform(-1, 1, (n_ep, EPISODE, ACT)).astype(np.float32)
    return {"obs": obs, "achieved": achieved, "desired": desired, "actions": actions}


def rate(fn: Callable[[], object], batch: int, seconds: float) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n * batch / (time.perf_counter() - start)


def ours(data: dict[str, np.ndarray], batch: int, seconds: float) -> tuple[float, float]:
    import gymnasium as gym
    import gymnasium_robotics
    import torch

    from her_policy.learn.buffer import HerReplayBuffer
    from her_policy.learn.envs import goal_space_of
    from her_policy.learn.normaliser import GoalConditionedNormaliser

    gym.register_envs(gymnasium_robotics)
    space = goal_space_of(gym.make("FetchPush-v4"), name="FetchPush-v4")
    n_ep = data["obs"].shape[0]
    buf = HerReplayBuffer(space, OBS, ACT, capacity=n_ep * (EPISODE + 1), k=4, seed=0)
    for i in range(n_ep):
        buf.add_episode(data["obs"][i], data["actions"][i], data["achieved"][i], data["desired"][i], truncated=True)
    norm = GoalConditionedNormaliser(OBS, GOAL)
    norm.update(data["obs"][:100].reshape(-1, OBS), data["achieved"][:100].reshape(-1, GOAL))

    def with_tensors() -> object:
        b = buf.sample(batch)
        x = torch.from_numpy(norm(b.observation, b.desired_goal))
        x2 = torch.from_numpy(norm(b.next_observation, b.desired_goal))
        return x, x2, torch.from_numpy(b.action), torch.from_numpy(b.reward), torch.from_numpy(b.terminated.astype(np.float32))

    return rate(lambda: buf.sample(batch), batch, seconds), rate(with_tensors, batch, seconds)


def sb3_buffer(data: dict[str, np.ndarray], via_add: bool = False):  # type: ignore[no-untyped-def]
    import gymnasium as gym
    import gymnasium_robotics
    from stable_baselines3 import HerReplayBuffer as SB3Her
    from stable_baselines3.common.vec_env import DummyVecEnv

    gym.register_envs(gymnasium_robotics)
    env = DummyVecEnv([lambda: gym.make("FetchPush-v4")])
    n_ep = data["obs"].shape[0]
    size = n_ep * EPISODE
    buf = SB3Her(size, env.observation_space, env.action_space, env=env, device="cpu",
                 n_sampled_goal=4, goal_selection_strategy="future")
    obs, ach, des, act = data["obs"], data["achieved"], data["desired"], data["actions"]
    if via_add:
        for e in range(n_ep):
            for t in range(EPISODE):
                o = {"observation": obs[e, t][None], "achieved_goal": ach[e, t][None], "desired_goal": des[e][None]}
                o2 = {"observation": obs[e, t + 1][None], "achieved_goal": ach[e, t + 1][None], "desired_goal": des[e][None]}
                done = np.array([t == EPISODE - 1])
                buf.add(o, o2, act[e, t][None], np.array([-1.0]), done, [{"TimeLimit.truncated": bool(done[0])}])
        return buf
    flat = lambda a: a.reshape(size, 1, -1)  # noqa: E731
    buf.observations["observation"][:] = flat(obs[:, :-1])
    buf.next_observations["observation"][:] = flat(obs[:, 1:])
    buf.observations["achieved_goal"][:] = flat(ach[:, :-1])
    buf.next_observations["achieved_goal"][:] = flat(ach[:, 1:])
    goals = np.repeat(des[:, None], EPISODE, axis=1)
    buf.observations["desired_goal"][:] = flat(goals)
    buf.next_observations["desired_goal"][:] = flat(goals)
    buf.actions[:] = flat(act)
    buf.rewards[:] = -1.0
    last = np.zeros((n_ep, EPISODE), bool)
    last[:, -1] = True
    buf.dones[:] = last.reshape(size, 1)
    buf.timeouts[:] = last.reshape(size, 1)
    buf.ep_start[:] = (np.arange(size) // EPISODE * EPISODE).reshape(size, 1)
    buf.ep_length[:] = EPISODE
    buf._current_ep_start[:] = 0
    buf.pos, buf.full = 0, True
    return buf


def sb3_sampling_rate(data: dict[str, np.ndarray], batch: int, seconds: float) -> float:
    buf = sb3_buffer(data)
    return rate(lambda: buf.sample(batch), batch, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per cell")
    parser.add_argument("--check-fill", action="store_true", help="check the direct SB3 fill against add()")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    if args.check_fill:
        data = episodes(1000)
        a, b = sb3_buffer(data, via_add=True), sb3_buffer(data)
        for name in ("ep_start", "ep_length", "actions", "dones"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for key in a.observations:
            np.testing.assert_array_equal(a.observations[key], b.observations[key])
            np.testing.assert_array_equal(a.next_observations[key], b.next_observations[key])
        print("direct SB3 fill == add(): ok")

    print(f"HER sampling, batch {args.batch}, future k=4, FetchPush-v4 shapes; transitions/s (higher is better)")
    print(f"{'stored':>10} | {'ours':>12} | {'ours+tensors':>12} | {'SB3':>12} | {'ours/SB3':>8}")
    for size in args.sizes:
        data = episodes(size)
        ours_rate, ours_t = ours(data, args.batch, args.seconds)
        sb3_rate = sb3_sampling_rate(data, args.batch, args.seconds)
        print(f"{size:>10} | {ours_rate:>12,.0f} | {ours_t:>12,.0f} | {sb3_rate:>12,.0f} | {ours_t / sb3_rate:>7.1f}x",
              flush=True)
        del data


if __name__ == "__main__":
    main()
