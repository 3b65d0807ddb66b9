"""Fixtures of the her_policy tests: the ``her`` command and bags of scripted episodes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import her_mujoco
from her_policy.app.sim import policy_actor, sim_control_loop
from her_policy.deploy.sinks import RecorderSink
from her_recorder import EpisodeRecorder


@pytest.fixture(scope="session")
def her() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``her(*args, timeout=300)``: runs ``her ARGS`` (``python -m her_policy.app.cli``) to the end."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "her_policy.app.cli", *args], capture_output=True, text=True, timeout=timeout
        )

    return run


@pytest.fixture(scope="session")
def record() -> Callable[..., None]:
    """``record(session, n, task="reach", split="train", seed=0)``: ``n`` noisy scripted episodes of
    ``task`` (10 ticks each, START split ``split``) appended to the session ``session``."""

    def run(session: Path, n: int, *, task: str = "reach", split: str = "train", seed: int = 0) -> None:
        env = her_mujoco.make_task(task)
        actor = policy_actor(env, "scripted", noise=0.3, seed=seed)
        sampler = env.unwrapped.goal_sampler
        sampler.reset(seed)
        with EpisodeRecorder(session, goal_space=env.unwrapped.goal_space, task=task, resume=True) as rec:
            loop = sim_control_loop(env, actor, sink=RecorderSink(rec, split=split))
            for i, goal in enumerate(sampler.sample(n)):
                env.reset(seed=seed + i, options={"desired_goal": goal})
                loop.run_episode(goal, max_ticks=10)
        env.close()

    return run
