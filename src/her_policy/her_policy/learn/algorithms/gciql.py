"""Goal-conditioned implicit Q-learning (GCIQL) with DDPG+BC policy extraction.

For learning from another policy's data (bags of a scripted, teleoperated or earlier
policy), after OGBench's GCIQL (Park et al. 2025): the critic never bootstraps from an
action the data does not hold. Three networks, trained on the same relabelled batches::

    value   V(s, g):     expectile regression (expectile tau) of V towards min_i Qt_i(s, a_data, g)
    critic  Q_i(s,a,g):  towards r + gamma^m (1 - terminated) V(s', g)   (clipped to [-1/(1-gamma), 0])
    actor   pi(s, g):    ddpg_bc: -min_i Q_i(s, pi(s, g), g) / mean|Q|  +  bc_weight * mean (pi - a_data)^2
                         awr:     mean  min(exp(temperature * (Q(s, a_data, g) - V(s, g))), 100) * (pi - a_data)^2

With ``expectile`` 0.5 the value is the data's mean return (SARSA on the behaviour policy);
towards 1 it is the best return the data shows from ``s`` for goal ``g``. The Q targets
come from V, which is fitted on data actions only, so out-of-data actions are never
bootstrapped from (what made plain DDPG over-estimate on a fixed buffer). Target critics
move by ``polyak_update`` every ``config.target_update_every`` updates.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from her_policy.artefact.layout import PolicyLayout
from her_policy.learn.algorithms.base import Learner, adam, step_on
from her_policy.learn.algorithms.td3 import Critics
from her_policy.learn.config import TrainConfig
from her_policy.learn.nets import Adam, mlp, polyak_update

AWR_MAX_WEIGHT = 100.0
"""Cap of the advantage weights exp(temperature * A) (OGBench's)."""


class GCIQL(Learner):
    """See the module docstring."""

    algorithm = "gciql"

    def __init__(
        self, layout: PolicyLayout, config: TrainConfig, *, gamma: float, seed: int = 0
    ) -> None:
        super().__init__(layout, config, gamma=gamma, seed=seed)
        d, n_a, h = layout.input_dim, layout.action_dim, config.hidden
        self.actor = mlp(d, n_a, h)
        self.critic = Critics(d, n_a, h, n=2, layer_norm=config.critic_layer_norm)
        self.value = mlp(d, 1, h, layer_norm=config.critic_layer_norm)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._actor_params = list(self.actor.parameters())
        self.actor_opt = adam(self._actor_params, config.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), config.critic_lr)
        self.value_opt = adam(self.value.parameters(), config.critic_lr)

    def modules(self) -> dict[str, nn.Module | Adam]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "value": self.value,
            "critic_target": self.critic_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "value_opt": self.value_opt,
        }

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        out = {**super().describe(), "expectile": cfg.expectile, "actor_loss": cfg.actor_loss}
        if cfg.actor_loss == "awr":
            out["awr_temperature"] = cfg.awr_temperature
        else:
            out["bc_weight"] = cfg.bc_weight
        return out

    def _next_value(self, x2: Tensor) -> Tensor:
        return self.value(x2).squeeze(-1)

    def _update(
        self, x: Tensor, a: Tensor, r: Tensor, x2: Tensor, term: Tensor, *, with_metrics: bool
    ) -> dict[str, float]:
        cfg = self.config
        tau = cfg.expectile
        with torch.no_grad():
            q_data = self.critic_target(x, a).min(0).values
        v = self.value(x).squeeze(-1)
        diff = q_data - v
        weight = torch.where(diff >= 0, tau, 1.0 - tau)
        value_loss = (weight * diff.square()).mean()
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()

        with torch.no_grad():
            y = self.td_target(r, term, self._next_value(x2))
        q = self.critic(x, a)
        critic_loss = (q - y).square().mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        pi = torch.tanh(self.actor(x))
        if cfg.actor_loss == "awr":
            with torch.no_grad():
                advantage = self.critic(x, a).min(0).values - self.value(x).squeeze(-1)
                weight = (cfg.awr_temperature * advantage).exp().clamp(max=AWR_MAX_WEIGHT)
            bc = (weight * (pi - a).square().mean(1)).mean()
            actor_loss = bc + cfg.action_l2 * pi.square().mean()
        else:
            q_pi = self.critic(x, pi).min(0).values
            q_term = -q_pi.mean() / q_pi.abs().mean().detach().clamp_min(1e-6)
            bc = self.bc_error(pi, a)
            actor_loss = q_term + cfg.bc_weight * bc + cfg.action_l2 * pi.square().mean()
        step_on(actor_loss, self._actor_params, self.actor_opt)

        if (self.n_updates + 1) % cfg.target_update_every == 0:
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), cfg.tau)
        if not with_metrics:
            return {}
        return {
            "critic_loss": critic_loss.item() / 2,
            "value_loss": value_loss.item(),
            "actor_loss": actor_loss.item(),
            "bc_error": bc.item(),
            "q_mean": q.mean().item(),
            "v_mean": v.mean().item(),
            "target_mean": y.mean().item(),
        }
