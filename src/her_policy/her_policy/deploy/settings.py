"""Settings of the robot's control stack: loop rate and episode length, action limits, safety.

One strict YAML (``config/safety.yaml``) holds all three sections; an unknown key is an
error naming the closest valid one. Units are in the key names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
from numpy.typing import NDArray

from her_goals.checks import NonNegativeInt, PositiveFloat, Range, check_fields
from her_goals.config import load_dataclass
from her_policy.deploy.limits import ActionLimitsConfig
from her_policy.deploy.safety import SafetyConfig

Vector = NDArray[np.float64]


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlLoopConfig:
    """How the loop runs (units in the key names)."""

    rate_hz: PositiveFloat = 25.0
    """Tick rate; one tick is one policy step (the task's control rate)."""
    max_ticks_per_episode: NonNegativeInt = 0
    """Episode length in ticks (a time limit: the last step is truncated, not terminal);
    0 = the task's episode length (her_goals.tasks)."""
    clip_target_to_workspace: bool = True
    """Clip the tool target into the workspace box before IK, so the arm slides along it."""
    abort_on_estop: bool = True
    """End the episode (ABORT, reason 'estop') once the e-stop latches; the hold is sent first."""
    thread_priority: Annotated[int, Range(ge=0, le=99)] = 0
    """SCHED_FIFO priority of the loop thread when running in real time (MoveIt Servo: 40);
    0 leaves the scheduler alone. Needs CAP_SYS_NICE; without it a warning is logged."""

    def __post_init__(self) -> None:
        check_fields(self, where="loop")  # the ranges declared on the fields

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


@dataclass(frozen=True)
class SafetyStackConfig:
    """``config/safety.yaml``: the loop, the action limits and the safety monitor."""

    loop: ControlLoopConfig = field(default_factory=ControlLoopConfig)
    limits: ActionLimitsConfig = field(default_factory=ActionLimitsConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)


def default_config_path() -> Path:
    """``config/safety.yaml`` of the repository (when run from a source checkout)."""
    return Path(__file__).resolve().parents[4] / "config" / "safety.yaml"


def load_safety_config(path: str | Path | None = None) -> SafetyStackConfig:
    """Load :class:`SafetyStackConfig` strictly (unknown keys are errors with a suggestion).

    Without a path: the repository's ``config/safety.yaml``, or, in an installed package (the
    ROS 2 build) where there is none, the built-in defaults, which equal that file.
    """
    if path is None:
        path = default_config_path()
        if not path.is_file():
            return SafetyStackConfig()
    return load_dataclass(SafetyStackConfig, path)


