"""TD3, and DDPG as its special case (one critic, no target smoothing, no actor delay).

As in Stable-Baselines3, ``class DDPG(TD3)`` changes three settings, not the algorithm::

    TD3:  n_critics 2, target policy noise config.policy_noise, actor every config.policy_delay
    DDPG: n_critics 1, no target noise,                         actor every update

Both add the HER recipe's action L2 penalty to the actor loss and clip TD targets to
``[-1/(1-gamma), 0]`` (:func:`~her_policy.learn.algorithms.base.td_target`). Targets move
by ``polyak_update`` every ``policy_delay * config.target_update_every`` updates: with the
actor for TD3 (target_update_every 1), every 40 updates with tau 0.05 in the baselines
DDPG recipe (policy_delay 1).

With ``config.bc_weight > 0`` the actor loss is TD3+BC's (Fujimoto & Gu 2021), for learning
from another policy's data::

    -Q(s, pi(s)) / mean|Q(s, pi(s))|  +  bc_weight * mean (pi(s) - a_data)^2  (+ action L2)

(``bc_on: demos`` clones the demonstration samples of a batch only; ``bc_q_filter`` only
those where the critic still rates the data's action above the actor's, Nair et al. 2018.)
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from her_policy.artefact.layout import PolicyLayout
from her_policy.learn.algorithms.base import Learner, adam, step_on
from her_policy.learn.config import TrainConfig
from her_policy.learn.nets import Adam, ensemble_forward, mlp, polyak_update


class Critics(nn.Module):
    """``n`` critics Q(x, a); returns (n, B).

    One critic is a plain MLP (the HER paper's DDPG); two or more are stacked in one
    ensemble network, so a batch is one batched matmul per layer.
    """

    def __init__(
        self,
        input_dim: int,
        action_dim: int,
        hidden: tuple[int, ...],
        n: int = 2,
        *,
        layer_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n = n
        self.net = mlp(
            input_dim + action_dim, 1, hidden, ensemble=n if n > 1 else 0, layer_norm=layer_norm, dropout=dropout
        )

    def forward(self, x: Tensor, a: Tensor, members: Tensor | None = None) -> Tensor:
        """Q of every critic, (n, B); with ``members`` (indices) of those only, (len(members), B)."""
        xa = torch.cat([x, a], 1)
        if self.n == 1:
            return self.net(xa).squeeze(-1).unsqueeze(0)
        if members is None:
            return self.net(xa.unsqueeze(0).expand(self.n, *xa.shape)).squeeze(-1)
        return ensemble_forward(self.net, xa.unsqueeze(0).expand(len(members), *xa.shape), members).squeeze(-1)


def critics_for(config: TrainConfig, input_dim: int, action_dim: int, default_n: int) -> Critics:
    """The critics ``config`` asks for: ``n_critics`` (or the algorithm's ``default_n``) with
    its layer norm and dropout."""
    return Critics(
        input_dim, action_dim, config.hidden, n=config.n_critics or default_n,
        layer_norm=config.critic_layer_norm, dropout=config.critic_dropout,
    )  # fmt: skip


def target_minimum(critic: Critics, x: Tensor, a: Tensor, subset: int | None) -> Tensor:
    """The TD target's value of ``a`` at ``x``: the minimum over all the target critics'
    estimates, or over ``subset`` of them drawn at random (REDQ's in-target minimisation),
    computing only the drawn critics."""
    members = None
    if subset is not None and subset < critic.n:
        members = torch.randperm(critic.n)[:subset]
    return critic(x, a, members).min(0).values


def actor_value(q: Tensor) -> Tensor:
    """What the actor maximises from the critics' (n, B) estimates of its actions: the first
    critic's for one or two (TD3, DDPG), the ensemble's mean for more (REDQ)."""
    return q.mean(0) if q.shape[0] > 2 else q[0]


class TD3(Learner):
    """TD3: twin critics, target policy smoothing, delayed actor updates (plus action L2)."""

    algorithm = "td3"
    n_critics = 2

    def __init__(
        self, layout: PolicyLayout, config: TrainConfig, *, gamma: float, seed: int = 0
    ) -> None:
        super().__init__(layout, config, gamma=gamma, seed=seed)
        d, n_a, h = layout.input_dim, layout.action_dim, config.hidden
        self.actor = mlp(d, n_a, h)
        self.n_critics = config.n_critics or type(self).n_critics
        self.critic = critics_for(config, d, n_a, self.n_critics)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._actor_params = list(self.actor.parameters())
        self.actor_opt = adam(self._actor_params, config.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), config.critic_lr)
        self._last_actor_loss = float("nan")

    @property
    def policy_delay(self) -> int:
        """Critic updates per actor update."""
        return self.config.policy_delay

    @property
    def target_noise(self) -> float:
        """Std of the target policy smoothing noise (0: none)."""
        return self.config.policy_noise

    def _next_value(self, x2: Tensor) -> Tensor:
        a2 = torch.tanh(self.actor_target(x2))
        if self.target_noise > 0:
            clip = self.config.noise_clip
            noise = (torch.randn_like(a2) * self.target_noise).clamp(-clip, clip)
            a2 = (a2 + noise).clamp(-1.0, 1.0)
        return target_minimum(self.critic_target, x2, a2, self.config.target_critics)

    def modules(self) -> dict[str, nn.Module | Adam]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "actor_target": self.actor_target,
            "critic_target": self.critic_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
        }

    def _update(
        self, x: Tensor, a: Tensor, r: Tensor, x2: Tensor, term: Tensor, *, with_metrics: bool
    ) -> dict[str, float]:
        cfg = self.config
        with torch.no_grad():
            y = self.td_target(r, term, self._next_value(x2))
        q = self.critic(x, a)
        critic_loss = (q - y).square().mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        count = self.n_updates + 1
        if count % self.policy_delay == 0:
            pi = torch.tanh(self.actor(x))
            q_pi = actor_value(self.critic(x, pi))
            if cfg.bc_weight > 0:
                # TD3+BC: the Q term at unit scale (divided by its mean |Q|) plus the
                # behaviour-cloning term, so bc_weight means the same whatever Q's scale.
                q_term = -q_pi.mean() / q_pi.abs().mean().detach().clamp_min(1e-6)
                keep = None
                if cfg.bc_q_filter:  # clone only where the data's action is still the better one
                    with torch.no_grad():
                        keep = actor_value(self.critic(x, a)) > q_pi
                bc = self.bc_error(pi, a, keep)
                actor_loss = q_term + cfg.bc_weight * bc + cfg.action_l2 * pi.square().mean()
            else:
                actor_loss = -q_pi.mean() + cfg.action_l2 * pi.square().mean()
            step_on(actor_loss, self._actor_params, self.actor_opt)
            if with_metrics:
                self._last_actor_loss = actor_loss.item()
        if count % (self.policy_delay * cfg.target_update_every) == 0:
            polyak_update(self.actor.parameters(), self.actor_target.parameters(), cfg.tau)
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), cfg.tau)
        if not with_metrics:
            return {}
        return {
            "critic_loss": critic_loss.item() / self.n_critics,
            "actor_loss": self._last_actor_loss,
            "q_mean": q.mean().item(),
            "target_mean": y.mean().item(),
        }


class DDPG(TD3):
    """DDPG as in the HER paper and OpenAI baselines: TD3 with one critic, no smoothing, no delay."""

    algorithm = "ddpg"
    n_critics = 1

    @property
    def policy_delay(self) -> int:
        return 1

    @property
    def target_noise(self) -> float:
        return 0.0
