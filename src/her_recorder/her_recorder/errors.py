"""Errors of the bag layer, in the HER-ROS ``HerError`` family.

Every message names the bag (and episode or step where there is one) and says
what to do next, so the command line can print it instead of a traceback.
"""

from __future__ import annotations

from her_goals.errors import HerError


class BagError(HerError):
    """Base class of every error raised by ``her_recorder``."""


class BagFormatError(BagError, ValueError):
    """A path that is not a readable HER bag: not a bag, foreign, corrupt or empty."""


class BagMismatchError(BagError, ValueError):
    """A bag of another goal space, task or message schema than the one asked for."""


class RecorderError(BagError, RuntimeError):
    """The recorder was used out of order (a step outside an episode, writing after close)."""
