"""Soft actor-critic with twin critics and an automatically tuned temperature."""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.weights import LOG_STD_MAX, LOG_STD_MIN, Head
from her_policy.learn.algorithms.base import Learner, adam, step_on
from her_policy.learn.algorithms.td3 import critics_for, target_minimum
from her_policy.learn.config import TrainConfig
from her_policy.learn.nets import Adam, mlp, polyak_update


def squashed_gaussian(out: Tensor, action_dim: int) -> tuple[Tensor, Tensor]:
    """Sample a tanh-Gaussian action from the actor output; returns (action, log_prob)."""
    mean, log_std = out[:, :action_dim], out[:, action_dim:].clamp(LOG_STD_MIN, LOG_STD_MAX)
    std = log_std.exp()
    eps = torch.randn_like(mean)
    u = mean + std * eps
    # log N(u; mean, std) - log|d tanh(u)/du|, the latter as 2(log 2 - u - softplus(-2u)).
    log_prob = (-0.5 * eps.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(1)
    log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(1)
    return torch.tanh(u), log_prob


class SAC(Learner):
    """Soft actor-critic with twin critics and an automatically tuned temperature."""

    algorithm = "sac"
    head: ClassVar[Head] = "gaussian"

    def __init__(
        self, layout: PolicyLayout, config: TrainConfig, *, gamma: float, seed: int = 0
    ) -> None:
        super().__init__(layout, config, gamma=gamma, seed=seed)
        d, n_a, h = layout.input_dim, layout.action_dim, config.hidden
        self.actor = mlp(d, 2 * n_a, h)
        self.n_critics = config.n_critics or 2
        self.critic = critics_for(config, d, n_a, 2)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), requires_grad=True)
        self.target_entropy = -float(n_a)
        self._actor_params = list(self.actor.parameters())
        self.actor_opt = adam(self._actor_params, config.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), config.critic_lr)
        self.alpha_opt = adam([self.log_alpha], config.actor_lr)

    def modules(self) -> dict[str, nn.Module | Adam]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "alpha_opt": self.alpha_opt,
        }

    def _next_value(self, x2: Tensor) -> Tensor:
        a2, logp2 = squashed_gaussian(self.actor(x2), self.layout.action_dim)
        q2 = target_minimum(self.critic_target, x2, a2, self.config.target_critics)
        return q2 - self.log_alpha.detach().exp() * logp2

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["log_alpha"] = self.log_alpha.detach().clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])

    def _update(
        self, x: Tensor, a: Tensor, r: Tensor, x2: Tensor, term: Tensor, *, with_metrics: bool
    ) -> dict[str, float]:
        cfg = self.config
        n_a = self.layout.action_dim
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            y = self.td_target(r, term, self._next_value(x2))
        q = self.critic(x, a)
        critic_loss = (q - y).square().mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        pi, logp = squashed_gaussian(self.actor(x), n_a)
        q_all = self.critic(x, pi)
        q_pi = q_all.mean(0) if self.n_critics > 2 else q_all.min(0).values  # REDQ-SAC: the mean
        actor_loss = (alpha * logp - q_pi).mean()
        step_on(actor_loss, self._actor_params, self.actor_opt)

        if cfg.learn_alpha:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        if (self.n_updates + 1) % cfg.target_update_every == 0:
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), cfg.tau)
        if not with_metrics:
            return {}
        return {
            "critic_loss": critic_loss.item() / self.n_critics,
            "actor_loss": actor_loss.item(),
            "q_mean": q.mean().item(),
            "target_mean": y.mean().item(),
            "alpha": float(alpha),
            "entropy": -logp.mean().item(),
        }
