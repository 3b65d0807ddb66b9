"""The errors of her_policy: replay, learners, artefacts, training, deployment.

All derive from :class:`her_goals.errors.HerError`, so one ``except HerError``
catches every mistake a user can make with HER-ROS data.
"""

from __future__ import annotations

from her_goals.errors import HerError


class PolicyError(HerError, ValueError):
    """Base class of every error raised by her_policy; its message names the input and the fix."""


class EpisodeError(PolicyError):
    """An episode that cannot be stored: inconsistent shapes, NaN, wrong dimensions."""


class EmptyBufferError(PolicyError):
    """Sampling from a replay buffer that holds no transition."""


class ArtefactError(PolicyError):
    """A policy artefact that cannot be used: missing files, bad hash, unknown format."""


class ActorLoadError(ArtefactError):
    """Actor weights that cannot be used: missing arrays, wrong shapes, NaN, a damaged file."""


class GoalSpaceMismatchError(ArtefactError):
    """A policy or buffer trained for one goal space used with another."""


class TrainingDivergedError(PolicyError):
    """Non-finite losses, weights or normaliser statistics: the run stops, no artefact is written."""


class EnvContractError(PolicyError):
    """An environment that breaks the goal-env contract (e.g. rewards disagree)."""
