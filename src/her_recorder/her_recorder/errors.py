"""The errors of ``her_recorder``: one base, :class:`BagError`, in the HER-ROS ``HerError`` family.

Every error raised out of this package is a :class:`BagError`. Its message names
the bag (and episode or step where there is one) and says what to do next, so
the command line can print it instead of a traceback. Errors that refine an
error of ``her_goals`` (a wrong goal shape, a bad node parameter) derive from
both, so ``except GoalShapeError`` and ``except ConfigError`` keep working.
"""

from __future__ import annotations

from her_goals.errors import ConfigError, GoalShapeError, HerError, NonFiniteGoalError


class BagError(HerError):
    """Base class of every error raised by ``her_recorder``."""


class BagFormatError(BagError, ValueError):
    """A path that is not a readable HER bag: not a bag, foreign, corrupt or empty."""


class BagMismatchError(BagError, ValueError):
    """A bag of another goal space, task or message schema than the one asked for."""


class RecorderError(BagError, RuntimeError):
    """The recorder was used out of order (a step outside an episode, writing after close)."""


class RosbagsVersionError(RecorderError):
    """The installed rosbags lacks an internal the recorder needs (see ``rosbags_adapter``)."""


class StepShapeError(BagError, GoalShapeError):
    """A value handed to the recorder has the wrong shape for its goal space or field."""


class NonFiniteStepError(BagError, NonFiniteGoalError):
    """A desired goal handed to the recorder contains NaN or inf."""


class RecorderConfigError(BagError, ConfigError):
    """A recorder_node parameter that cannot be used."""


class UnknownMessageError(BagError, KeyError):
    """A message name that ``her_interfaces`` does not define."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class AuditError(BagError, ValueError):
    """Input the audit cannot use: a bad training log, artefact or region."""
