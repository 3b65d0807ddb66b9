"""Reason flags and status levels shared by the action limits, the safety monitor and the Step record.

The flag bits are the ``safety_flags`` bitmask of ``her_interfaces/Step``: one bit per
reason, so a recorded step says every reason the command was changed, not only the
first. The status levels are ``diagnostic_msgs/DiagnosticStatus`` levels, so the ROS
node can publish them on ``/diagnostics`` unchanged.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class SafetyFlag(enum.IntFlag):
    """Why a command was changed or replaced (one bit per reason, as in Step.msg)."""

    NONE = 0
    CLIPPED = 1 << 0
    """The policy output was outside the per-dimension action range and was clipped."""
    STEP_LIMITED = 1 << 1
    """The end-effector or joint step per tick was scaled down (direction kept)."""
    JOINT_LIMIT = 1 << 2
    """The predicted joint position was clamped to the joint limits minus the margin."""
    VELOCITY_LIMIT = 1 << 3
    """The commanded (step / dt) or measured joint velocity exceeded its limit."""
    WORKSPACE = 1 << 4
    """The predicted tool position left the workspace box or went below the table floor."""
    STALE_STATE = 1 << 5
    """The latest joint state was older than the timeout (or stamped in the future)."""
    NON_FINITE = 1 << 6
    """NaN/inf in the state, the observation or the policy output (or the policy/IK raised)."""
    ESTOP = 1 << 7
    """The emergency stop is latched."""
    SINGULARITY = 1 << 8
    """The Jacobian condition number is in the slow-down band or past the halt threshold."""
    GOAL_OUT_OF_REGION = 1 << 9
    """The desired goal is outside the task's goal region; the episode was refused."""


ALL_FLAGS: tuple[SafetyFlag, ...] = tuple(f for f in SafetyFlag if f is not SafetyFlag.NONE)


def flag_names(flags: int) -> tuple[str, ...]:
    """Names of the reasons set in a bitmask, lowest bit first (``('CLIPPED', 'WORKSPACE')``)."""
    return tuple(f.name for f in ALL_FLAGS if flags & f and f.name is not None)


class SafetyStatus(enum.IntEnum):
    """Status level of one decision, numbered as ``diagnostic_msgs/DiagnosticStatus``."""

    OK = 0
    """Command passed through (at most clipped into the action range)."""
    WARN = 1
    """Command modified: scaled, clamped, or held because it would leave the workspace."""
    ERROR = 2
    """Fault: hold for e-stop, NaN/inf or singularity halt; measured joint beyond a hard limit; refused goal."""
    STALE = 3
    """Hold because the joint state is stale."""


# Severity order for combining levels: STALE outranks WARN, ERROR outranks everything,
# although the diagnostic_msgs numbering puts STALE (3) above ERROR (2).
_SEVERITY = {SafetyStatus.OK: 0, SafetyStatus.WARN: 1, SafetyStatus.STALE: 2, SafetyStatus.ERROR: 3}


def worse(a: SafetyStatus, b: SafetyStatus) -> SafetyStatus:
    """The more severe of two levels (ERROR > STALE > WARN > OK)."""
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


class FilteredCommand(NamedTuple):
    """What a safety layer (``her_mujoco.tasks.CommandFilter``) lets a training step send."""

    q_target: NDArray[np.float64] | None
    """Joint-position targets to send (rad), or None: send nothing this step (a hold)."""
    gripper_m: float | None
    """Gripper opening to command (m), or None: leave it."""
    cost: float
    """The intervention's safety cost of this step (0 when the command passed untouched)."""
    flags: int
    """The ``SafetyFlag`` bits raised (her_goals.safety_flags)."""
