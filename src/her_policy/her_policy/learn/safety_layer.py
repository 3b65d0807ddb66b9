"""Training under the safety layer: the robot's action limits, IK and monitor inside a training env.

A her_mujoco task env steps its arm through a :class:`TrainingSafetyLayer` when one is set
(``env.unwrapped.set_command_filter``): each action goes through the pipeline the robot and
``her eval`` use (``her_policy.deploy.pipeline.pipeline_for`` on the env's rig, with
``config/safety.yaml``: the same clip into the workspace box, the same table-clearance floor,
the same step caps, singularity and joint-limit checks), and the step's ``info["cost"]`` is the
monitor's intervention cost (``SafetyDecision.safety_cost``), ``info["safety_flags"]`` its
reasons. The reward stays the goal space's (ARCHITECTURE.md, rule 2): the cost is a separate
channel, which the trainer can turn into a penalty or a Lagrangian constraint
(``TrainConfig.cost_penalty``, ``cost_budget``).

This is the one module of ``learn`` that imports ``deploy`` (``pyproject.toml``'s import
contract names it): training must see the robot's own safety code, not a copy of it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from her_goals.extractors import RobotState
from her_goals.safety_flags import FilteredCommand
from her_policy.deploy.pipeline import TickPipeline, pipeline_for
from her_policy.deploy.settings import SafetyStackConfig, load_safety_config

Vector = NDArray[np.float64]


class TrainingSafetyLayer:
    """The robot's control pipeline as a training env's command filter (one per env)."""

    def __init__(self, env: Any, config: SafetyStackConfig) -> None:
        base = env.unwrapped
        dt = float(base.control_period_s)
        if abs(config.loop.period_s - dt) > 1e-9:
            # The loop ticks at the task's rate, as sim_control_loop does for evaluation.
            config = dataclasses.replace(config, loop=dataclasses.replace(config.loop, rate_hz=1.0 / dt))
        self.config = config
        self._action: Vector = np.zeros(4)
        self._previous: RobotState | None = None
        self.pipeline: TickPipeline = pipeline_for(
            base.rig, config, self._actor, ik_settings=base.ik_settings
        )

    @classmethod
    def install(cls, env: Any, config_path: str | None = None) -> Any:
        """Set a layer from ``config_path`` (default: the repository's ``config/safety.yaml``)
        on ``env``; returns the env."""
        env.unwrapped.set_command_filter(cls(env, load_safety_config(config_path)))
        return env

    def _actor(self, observation: Vector, desired_goal: Vector) -> Vector:
        return self._action  # the training env's action: the pipeline does everything after it

    def start(self) -> None:
        self._previous = None
        self.pipeline.reset()

    def __call__(self, state: RobotState, action: Vector, desired_goal: Vector, now_ns: int) -> FilteredCommand:
        self._action = np.asarray(action, dtype=np.float64)
        result = self.pipeline.tick(state, int(now_ns), desired_goal, previous=self._previous)
        self._previous = state
        d = result.decision
        return FilteredCommand(d.command, d.gripper_m, float(d.safety_cost), int(d.flags))
