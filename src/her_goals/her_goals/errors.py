"""The one exception family of the goal contract.

Every error names the offending thing and says what to do about it.
"""

from __future__ import annotations


class HerError(Exception):
    """Base class of every error raised by HER-ROS core packages."""


class GoalError(HerError, ValueError):
    """A goal that cannot be used: wrong shape, NaN/inf, unknown space."""


class GoalShapeError(GoalError):
    """A goal whose shape does not match its goal space or its partner goal."""


class NonFiniteGoalError(GoalError):
    """A goal that contains NaN or inf."""


class UnknownGoalSpaceError(GoalError, KeyError):
    """A goal-space name that is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(HerError, ValueError):
    """A configuration file or mapping with a typo, a wrong type or a missing key."""


class StateError(HerError, ValueError):
    """Robot state that cannot be used: missing joints, NaN, stale."""
