"""One simulated arm of the robot loop: explores with the newest policy version and records.

What the robot does while a learner trains (``her loop``, and each arm of ``her fleet``):
episodes on training goals through the full control loop (action limits, IK, safety
monitor), recorded to the arm's own session of bags, with a
:class:`~her_policy.deploy.hot_swap.FollowingPolicy` that swaps in each new version
between episodes and explores around it (the training preset's noise and random actions;
uniformly random actions before the first version). :meth:`ArmWorker.evaluate` measures a
version on held-out requested goals through the same loop, without exploration, recorded
as an evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import her_mujoco
from her_goals.evaluation import EvaluationPlan, heldout_reset_seed, policy_id
from her_goals.stats import wilson_interval
from her_policy.app.sim import run_requested_goals, sim_control_loop
from her_policy.deploy.hot_swap import FollowingPolicy
from her_policy.deploy.sinks import RecorderSink
from her_policy.learn.envs import layout_of
from her_recorder.writer import EpisodeRecorder

SESSION_BAG_EPISODES = 1000
"""Episodes per bag of an arm's session. An open MCAP bag keeps an index entry per chunk (two
per episode) in memory until it is closed, so a run of hours on one bag grows by ~0.5 kB per
episode; a new bag every 1000 episodes keeps the arm's memory flat (``bench/bench_soak.py``)."""


@dataclass
class VersionResult:
    """Requested-goal success of one version on held-out goals."""

    version: str
    successes: int
    n_goals: int
    ci_low: float
    ci_high: float
    safety_cost_mean: float

    @property
    def success(self) -> float:
        return self.successes / self.n_goals if self.n_goals else float("nan")


@dataclass
class ArmWorker:
    """See the module docstring. Episode goals come from the task's training stream."""

    task: str
    session: Path
    versions: Path
    seed: int = 0
    noise: float = 0.2
    random_eps: float = 0.3
    eval_session: Path | None = None
    episodes: int = 0
    env_steps: int = 0
    swaps: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = her_mujoco.make_task(self.task)
        base: Any = self.env.unwrapped
        self.rng = np.random.default_rng(self.seed)
        layout = layout_of(self.env)
        fields = [(str(n), int(a), int(b)) for n, a, b in layout.spec()["observation_fields"]]
        self.policy = FollowingPolicy(
            self.versions,
            base.goal_space,
            self.task,
            fields,
            layout.action_dim,
            fallback=self._random,
            explore=self._explore,
            on_swap=self._swapped,
        )
        plan = EvaluationPlan.for_task(
            self.task, "train", policy=self._acting(), stream_seed=self.seed, sampler=base.goal_sampler
        )
        self.recorder = EpisodeRecorder(
            self.session, goal_space=base.goal_space, task=self.task, resume=True,
            config={"split": "train", "policy": "continuous", "task": self.task},
            seeds={"arm": self.seed}, plan=plan, max_episodes_per_bag=SESSION_BAG_EPISODES,
        )  # fmt: skip
        self.recorder.open()
        self.sink = RecorderSink(self.recorder, split="train", policy=self._acting())
        self.loop = sim_control_loop(self.env, self.policy, sink=self.sink)
        base.goal_sampler.reset(self.seed)

    def _acting(self) -> str:
        """The id every Step names: the acting version's artefact hash (+explore), or random."""
        base = self.policy.artefact_hash if getattr(self, "policy", None) and self.policy.actor else "random"
        return policy_id(base, noise_std=self.noise, random_eps=self.random_eps)

    def _swapped(self, event: Any) -> None:
        self.swaps.append(event.version if event.swapped else f"refused {event.version}")
        if event.swapped:
            self.sink.policy = self._acting()  # from this episode on, its Steps name the new version

    def _random(self, o: NDArray[np.float64], g: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.rng.uniform(-1.0, 1.0, 4)

    def _explore(self, action: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.random_eps and self.rng.random() < self.random_eps:
            return self.rng.uniform(-1.0, 1.0, action.shape)
        if self.noise:
            return np.clip(action + self.rng.normal(0.0, self.noise, action.shape), -1.0, 1.0)
        return action

    def run(self, n_episodes: int) -> int:
        """Run ``n_episodes`` training episodes; returns the env steps they took."""
        base: Any = self.env.unwrapped
        steps = 0
        for _ in range(n_episodes):
            goal = base.goal_sampler.sample()
            self.env.reset(seed=self.seed * 1_000_003 + self.episodes, options={"desired_goal": goal})
            result = self.loop.run_episode(goal)
            self.episodes += 1
            steps += result.ticks
        self.env_steps += steps
        return steps

    def evaluate(self, n_goals: int, *, heldout_seed: int = 0) -> VersionResult | None:
        """The current version on ``n_goals`` held-out goals (None before the first version)."""
        if self.policy.actor is None:
            return None
        base: Any = self.env.unwrapped
        actor = self.policy.actor
        plan = EvaluationPlan.for_task(
            self.task, "eval", planned_episodes=n_goals, policy=self.policy.artefact_hash,
            stream_seed=heldout_seed, sampler=base.goal_sampler,
        )  # fmt: skip
        goals = plan.goals()
        if self.eval_session is not None:
            # One session per version, so each evaluation is its own verifiable claim.
            with EpisodeRecorder(
                self.eval_session / self.policy.version, goal_space=base.goal_space, task=self.task,
                resume=True, plan=plan,
                config={"split": "eval", "policy_version": self.policy.version,
                        "artefact_hash": self.policy.artefact_hash, "task": self.task},
            ) as rec:  # fmt: skip
                sink = RecorderSink(rec, split=plan.split, policy=plan.policy)
                loop = sim_control_loop(self.env, actor, sink=sink)
                results = run_requested_goals(self.env, loop, goals, seed=heldout_reset_seed(heldout_seed))
        else:
            loop = sim_control_loop(self.env, actor)
            results = run_requested_goals(self.env, loop, goals, seed=heldout_reset_seed(heldout_seed))
        wins = sum(bool(r.success) for r in results)
        low, high = wilson_interval(wins, len(results))
        cost = float(np.mean([r.safety_cost for r in results])) if results else 0.0
        return VersionResult(self.policy.version, wins, len(results), low, high, cost)

    def close(self) -> None:
        self.recorder.close()
        self.env.close()
