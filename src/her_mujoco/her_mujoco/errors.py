"""The errors of the MuJoCo arm, in the HER-ROS ``HerError`` family.

Configuration and state problems use her_goals' ``ConfigError``/``StateError``; what is
the simulator's own (stepping an env the wrong way) is a :class:`SimError`. Each subclass
also derives the builtin Gymnasium users expect (``ValueError`` for a bad action,
``RuntimeError`` for a step out of order), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

from her_goals.errors import HerError


class SimError(HerError):
    """Base class of the simulator's own errors; the message says what to do."""


class ActionError(SimError, ValueError):
    """An action of the wrong shape, or with NaN/inf in it."""


class EpisodeOrderError(SimError, RuntimeError):
    """``step()`` before ``reset()``, or after the physics diverged."""
