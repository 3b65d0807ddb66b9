"""Off-policy learners for goal-conditioned control: DDPG (the HER recipe), TD3 and SAC.

All three share the building blocks of :mod:`her_policy.learn.nets` and one TD-target
rule (:func:`td_target`)::

    y = r + gamma * (1 - terminated) * next_value,  clipped to [-1/(1-gamma), 0]

A time-limit truncation is not a terminal state: the stored next observation is
real, so the target bootstraps from it. Only ``terminated`` stops the bootstrap.
The clip is the range of discounted sums of sparse rewards in [-1, 0] (the goal
contract), as in OpenAI baselines' HER.

A learner owns its networks, optimisers and the input normaliser;
``update(batch)`` takes one :class:`~her_policy.learn.buffer.HerBatch`, whatever filled
the buffer (a simulator, or bags offline).
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from her_policy.artefact.actor import LOG_STD_MAX, LOG_STD_MIN, Head, PolicySnapshot
from her_policy.artefact.layout import PolicyLayout
from her_policy.errors import PolicyError
from her_policy.learn.buffer import HerBatch
from her_policy.learn.config import TrainConfig
from her_policy.learn.nets import Adam, linear_layers, mlp, polyak_update
from her_policy.learn.normaliser import GoalConditionedNormaliser


def td_target(
    reward: Tensor,
    terminated: Tensor,
    next_value: Tensor,
    gamma: float,
    clip: bool,
    discount: Tensor | None = None,
) -> Tensor:
    """TD target; ``terminated`` (float 0/1) stops the bootstrap, truncation does not.

    ``discount`` (per sample, gamma^m for m-step returns) replaces ``gamma`` as the
    bootstrap factor when given; the clip range stays [-1/(1-gamma), 0].
    """
    factor = gamma if discount is None else discount
    target = reward + factor * (1.0 - terminated) * next_value
    if clip:
        target = target.clamp(-1.0 / (1.0 - gamma), 0.0)
    return target


def _adam(params: Any, lr: float) -> Adam:
    return Adam(params, lr=lr)


def _step_on(loss: Tensor, params: list[nn.Parameter], opt: Adam) -> None:
    """Gradient step of ``params`` only: the critic's weight gradients are not computed
    for an actor loss that passes through the critic (a third of its backward pass)."""
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()


class Learner:
    """Base of the learners: normaliser, batch conversion, export and checkpoints."""

    algorithm: ClassVar[str]
    head: ClassVar[Head] = "deterministic"

    def __init__(
        self, layout: PolicyLayout, config: TrainConfig, *, gamma: float, seed: int = 0
    ) -> None:
        self.layout = layout
        self.config = config
        self.gamma = float(gamma)
        self.seed = int(seed)
        self.n_updates = 0
        torch.manual_seed(seed)
        self.normaliser = GoalConditionedNormaliser(
            layout.observation_dim,
            layout.goal_dim,
            eps=config.norm_eps,
            clip=config.norm_clip,
            clip_obs=config.clip_obs,
        )
        low = np.asarray(layout.action_low, np.float32)
        high = np.asarray(layout.action_high, np.float32)
        self._action_centre = (high + low) / 2
        self._action_half = (high - low) / 2
        self.actor: nn.Sequential
        self._discount: Tensor | None = None

    # -- data -----------------------------------------------------------------
    def tensors(self, batch: HerBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(input, unit action, reward, next input, terminated) as float32 tensors.

        For an n-step batch: (input, action, n-step return, input after m steps,
        terminated within them); the per-sample bootstrap factor goes to
        ``self._discount`` for the next TD target.
        """
        norm = self.normaliser
        x = norm(batch.observation, batch.desired_goal)
        a = (batch.action - self._action_centre) / self._action_half
        ahead = batch.n_step
        if ahead is None:
            self._discount = None
            reward, after, terminated = batch.reward, batch.next_observation, batch.terminated
        else:
            self._discount = torch.from_numpy(ahead.discount)
            reward, after, terminated = ahead.returns, ahead.observation, ahead.terminated
        x2 = norm(after, batch.desired_goal)
        return (
            torch.from_numpy(x),
            torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(reward, dtype=np.float32)),
            torch.from_numpy(x2),
            torch.from_numpy(terminated.astype(np.float32)),
        )

    def td_target(self, r: Tensor, term: Tensor, next_value: Tensor) -> Tensor:
        """The TD target of the batch last converted by :meth:`tensors`."""
        return td_target(r, term, next_value, self.gamma, self.config.clip_target, self._discount)

    def update(self, batch: HerBatch, *, with_metrics: bool = False) -> dict[str, float]:
        """One gradient step of critic (and, when due, actor) on ``batch``."""
        metrics = self._update(*self.tensors(batch), with_metrics=with_metrics)
        self.n_updates += 1
        return metrics

    def _update(
        self, x: Tensor, a: Tensor, r: Tensor, x2: Tensor, term: Tensor, *, with_metrics: bool
    ) -> dict[str, float]:
        raise NotImplementedError

    def _next_value(self, x2: Tensor) -> Tensor:
        """Bootstrap value of the next input under the target networks, (B,)."""
        raise NotImplementedError

    @torch.no_grad()
    def target_values(self, batch: HerBatch) -> np.ndarray:
        """The TD targets ``update`` would regress on for ``batch`` (no update made)."""
        _, _, r, x2, term = self.tensors(batch)
        return self.td_target(r, term, self._next_value(x2)).numpy()

    # -- acting and export ----------------------------------------------------
    @torch.no_grad()
    def act(self, observation: Any, desired_goal: Any) -> np.ndarray:
        """Deterministic env actions for (N, obs) / (N, goal) inputs (torch path, for checks)."""
        x = torch.from_numpy(
            self.normaliser(np.atleast_2d(observation), np.atleast_2d(desired_goal))
        )
        out = self.actor(x)[:, : self.layout.action_dim]
        return self.layout.to_env_action(torch.tanh(out).numpy())

    def snapshot(self) -> PolicySnapshot:
        """Actor weights and normaliser statistics as numpy, for collectors and artefacts."""
        layers = linear_layers(self.actor)
        stats = self.normaliser.stats()
        return PolicySnapshot(
            weights=tuple(layer.weight.detach().numpy().T.copy() for layer in layers),
            biases=tuple(layer.bias.detach().numpy().copy() for layer in layers),
            head=self.head,
            obs_mean=stats["obs_mean"],
            obs_std=stats["obs_std"],
            goal_mean=stats["goal_mean"],
            goal_std=stats["goal_std"],
            clip_obs=stats["clip_obs"],
            norm_clip=stats["norm_clip"],
        )

    def modules(self) -> dict[str, nn.Module | Adam]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: networks, optimisers, normaliser, counters."""
        state: dict[str, Any] = {k: m.state_dict() for k, m in self.modules().items()}
        state["normaliser"] = self.normaliser.state_dict()
        state["n_updates"] = self.n_updates
        state["algorithm"] = self.algorithm
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("algorithm") != self.algorithm:
            raise PolicyError(
                f"checkpoint is for {state.get('algorithm')!r}, this learner is {self.algorithm!r}"
            )
        for key, module in self.modules().items():
            module.load_state_dict(state[key])
        self.normaliser.load_state_dict(state["normaliser"])
        self.n_updates = int(state["n_updates"])


class DDPG(Learner):
    """DDPG as in the HER paper and OpenAI baselines: action L2, clipped targets, polyak."""

    algorithm = "ddpg"

    def __init__(
        self, layout: PolicyLayout, config: TrainConfig, *, gamma: float, seed: int = 0
    ) -> None:
        super().__init__(layout, config, gamma=gamma, seed=seed)
        d, n_a, h = layout.input_dim, layout.action_dim, config.hidden
        self.actor = mlp(d, n_a, h)
        self.critic = mlp(d + n_a, 1, h)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._actor_params = list(self.actor.parameters())
        self.actor_opt = _adam(self._actor_params, config.actor_lr)
        self.critic_opt = _adam(self.critic.parameters(), config.critic_lr)

    def modules(self) -> dict[str, nn.Module | Adam]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "actor_target": self.actor_target,
            "critic_target": self.critic_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
        }

    def _next_value(self, x2: Tensor) -> Tensor:
        a2 = torch.tanh(self.actor_target(x2))
        return self.critic_target(torch.cat([x2, a2], 1)).squeeze(1)

    def _update(
        self, x: Tensor, a: Tensor, r: Tensor, x2: Tensor, term: Tensor, *, with_metrics: bool
    ) -> dict[str, float]:
        cfg = self.config
        with torch.no_grad():
            y = self.td_target(r, term, self._next_value(x2))
        q = self.critic(torch.cat([x, a], 1)).squeeze(1)
        critic_loss = F.mse_loss(q, y)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        pi = torch.tanh(self.actor(x))
        q_pi = self.critic(torch.cat([x, pi], 1))
        actor_loss = -q_pi.mean() + cfg.action_l2 * pi.square().mean()
        _step_on(actor_loss, self._actor_params, self.actor_opt)

        if (self.n_updates + 1) % cfg.target_update_every == 0:
            polyak_update(self.actor_target.parameters(), self.actor.parameters(), cfg.tau)
            polyak_update(self.critic_target.parameters(), self.critic.parameters(), cfg.tau)
        if not with_metrics:
            return {}
        return {
            "critic_loss": critic_loss.item(),
            "actor_loss": actor_loss.item(),
            "q_mean": q.mean().item(),
            "target_mean": y.mean().item(),
        }


class TwinCritic(nn.Module):
    """``n`` critics Q(x, a) stacked in one network; returns (n, B)."""

    def __init__(
        self, input_dim: int, action_dim: int, hidden: tuple[int, ...], n: int = 2
    ) -> None:
        super().__init__()
        self.n = n
        self.net = mlp(input_dim + action_dim, 1, hidden, ensemble=n)

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        xa = torch.cat([x, a], 1)
        return self.net(xa.unsqueeze(0).expand(self.n, *xa.shape)).squeeze(-1)


class TD3(Learner):
    """TD3: twin critics, target policy smoothing, delayed actor updates (plus action L2)."""

    algorithm = "td3"

    def __init__(
        self, layout: PolicyLayout, config: TrainConfig, *, gamma: float, seed: int = 0
    ) -> None:
        super().__init__(layout, config, gamma=gamma, seed=seed)
        d, n_a, h = layout.input_dim, layout.action_dim, config.hidden
        self.actor = mlp(d, n_a, h)
        self.critic = TwinCritic(d, n_a, h)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._actor_params = list(self.actor.parameters())
        self.actor_opt = _adam(self._actor_params, config.actor_lr)
        self.critic_opt = _adam(self.critic.parameters(), config.critic_lr)
        self._last_actor_loss = float("nan")

    def _next_value(self, x2: Tensor) -> Tensor:
        cfg = self.config
        a2 = torch.tanh(self.actor_target(x2))
        noise = (torch.randn_like(a2) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
        return self.critic_target(x2, (a2 + noise).clamp(-1.0, 1.0)).min(0).values

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

        if (self.n_updates + 1) % cfg.policy_delay == 0:
            pi = torch.tanh(self.actor(x))
            actor_loss = -self.critic(x, pi)[0].mean() + cfg.action_l2 * pi.square().mean()
            _step_on(actor_loss, self._actor_params, self.actor_opt)
            polyak_update(self.actor_target.parameters(), self.actor.parameters(), cfg.tau)
            polyak_update(self.critic_target.parameters(), self.critic.parameters(), cfg.tau)
            if with_metrics:
                self._last_actor_loss = actor_loss.item()
        if not with_metrics:
            return {}
        return {
            "critic_loss": critic_loss.item() / 2,
            "actor_loss": self._last_actor_loss,
            "q_mean": q.mean().item(),
            "target_mean": y.mean().item(),
        }


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
        self.critic = TwinCritic(d, n_a, h)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), requires_grad=True)
        self.target_entropy = -float(n_a)
        self._actor_params = list(self.actor.parameters())
        self.actor_opt = _adam(self._actor_params, config.actor_lr)
        self.critic_opt = _adam(self.critic.parameters(), config.critic_lr)
        self.alpha_opt = _adam([self.log_alpha], config.actor_lr)

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
        return self.critic_target(x2, a2).min(0).values - self.log_alpha.detach().exp() * logp2

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
        q_pi = self.critic(x, pi).min(0).values
        actor_loss = (alpha * logp - q_pi).mean()
        _step_on(actor_loss, self._actor_params, self.actor_opt)

        if cfg.learn_alpha:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        if (self.n_updates + 1) % cfg.target_update_every == 0:
            polyak_update(self.critic_target.parameters(), self.critic.parameters(), cfg.tau)
        if not with_metrics:
            return {}
        return {
            "critic_loss": critic_loss.item() / 2,
            "actor_loss": actor_loss.item(),
            "q_mean": q.mean().item(),
            "target_mean": y.mean().item(),
            "alpha": float(alpha),
            "entropy": -logp.mean().item(),
        }


LEARNERS: dict[str, type[Learner]] = {"ddpg": DDPG, "td3": TD3, "sac": SAC}


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
