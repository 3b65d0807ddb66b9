"""The learners, one module each: TD3 (:mod:`.td3`, with DDPG as its special case), SAC, and
GCIQL (:mod:`.gciql`, for learning from another policy's data).

``make_learner(layout, config, gamma=...)`` builds the one ``config.algo`` names; add an
algorithm by subclassing :class:`~.base.Learner` in a module here and listing it in
:data:`LEARNERS` (ARCHITECTURE.md, "Add an algorithm").
"""

from __future__ import annotations

from her_policy.artefact.layout import PolicyLayout
from her_policy.errors import PolicyError
from her_policy.learn.algorithms.base import Learner, td_target
from her_policy.learn.algorithms.gciql import GCIQL
from her_policy.learn.algorithms.sac import SAC
from her_policy.learn.algorithms.td3 import DDPG, TD3
from her_policy.learn.config import TrainConfig

__all__ = ["DDPG", "GCIQL", "LEARNERS", "SAC", "TD3", "Learner", "make_learner", "td_target"]

LEARNERS: dict[str, type[Learner]] = {"ddpg": DDPG, "td3": TD3, "sac": SAC, "gciql": GCIQL}


def make_learner(
    layout: PolicyLayout, config: TrainConfig, *, gamma: float, seed: int | None = None
) -> Learner:
    """The learner named by ``config.algo``."""
    try:
        cls = LEARNERS[config.algo]
    except KeyError:
        raise PolicyError(
            f"unknown algorithm {config.algo!r}; use one of {list(LEARNERS)}"
        ) from None
    return cls(layout, config, gamma=gamma, seed=config.seed if seed is None else seed)
