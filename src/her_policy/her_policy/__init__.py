"""Learner side of HER-ROS: HER replay, DDPG/TD3/SAC, training, requested-goal evaluation, artefacts.

Names are imported lazily, so ``from her_policy import load_artefact`` (or the
runtime and safety modules) never imports torch; only the learners and the
trainer do.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HerReplayBuffer": "her_policy.learn.buffer",
    "HerBatch": "her_policy.learn.buffer",
    "BatchStats": "her_policy.learn.buffer",
    "RelabelStrategy": "her_policy.learn.buffer",
    "relabel_probability": "her_policy.learn.buffer",
    "TrainConfig": "her_policy.learn.config",
    "PolicyLayout": "her_policy.artefact.layout",
    "ActorWeights": "her_policy.artefact.weights",
    "NumpyActor": "her_policy.artefact.numpy_actor",
    "DeterministicPolicy": "her_policy.artefact.numpy_actor",
    "EnvSource": "her_policy.learn.envs",
    "goal_space_of": "her_policy.learn.envs",
    "EvalResult": "her_policy.learn.evaluate",
    "evaluate": "her_policy.learn.evaluate",
    "wilson_interval": "her_policy.learn.evaluate",
    "PolicyArtefact": "her_policy.artefact.store",
    "save_artefact": "her_policy.artefact.store",
    "load_artefact": "her_policy.artefact.store",
    "Learner": "her_policy.learn.algorithms",
    "DDPG": "her_policy.learn.algorithms",
    "TD3": "her_policy.learn.algorithms",
    "SAC": "her_policy.learn.algorithms",
    "make_learner": "her_policy.learn.algorithms",
    "train": "her_policy.learn.train",
    "train_from_buffer": "her_policy.learn.train",
    "TrainResult": "her_policy.learn.train",
    "Trainer": "her_policy.learn.trainer",
    "GCIQL": "her_policy.learn.algorithms",
    "train_from_bags": "her_policy.learn.offline",
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
