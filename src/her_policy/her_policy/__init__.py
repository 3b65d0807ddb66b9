"""Learner side of HER-ROS: HER replay, DDPG/TD3/SAC, training, requested-goal evaluation, artefacts.

Names are imported lazily, so ``from her_policy import load_artefact`` (or the
runtime and safety modules) never imports torch; only the learners and the
trainer do.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HerReplayBuffer": "her_policy.buffer",
    "HerBatch": "her_policy.buffer",
    "BatchStats": "her_policy.buffer",
    "RelabelStrategy": "her_policy.buffer",
    "relabel_probability": "her_policy.buffer",
    "TrainConfig": "her_policy.config",
    "PolicyLayout": "her_policy.layout",
    "PolicySnapshot": "her_policy.actor",
    "DeterministicPolicy": "her_policy.actor",
    "EnvSource": "her_policy.envs",
    "goal_space_of": "her_policy.envs",
    "EvalResult": "her_policy.evaluate",
    "evaluate": "her_policy.evaluate",
    "wilson_interval": "her_policy.evaluate",
    "PolicyArtefact": "her_policy.artefact",
    "save_artefact": "her_policy.artefact",
    "load_artefact": "her_policy.artefact",
    "Learner": "her_policy.learners",
    "DDPG": "her_policy.learners",
    "TD3": "her_policy.learners",
    "SAC": "her_policy.learners",
    "make_learner": "her_policy.learners",
    "train": "her_policy.train",
    "train_from_buffer": "her_policy.train",
    "TrainResult": "her_policy.train",
    "PolicyError": "her_policy.errors",
    "EpisodeError": "her_policy.errors",
    "EmptyBufferError": "her_policy.errors",
    "ArtefactError": "her_policy.errors",
    "GoalSpaceMismatchError": "her_policy.errors",
    "EnvContractError": "her_policy.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'her_policy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
