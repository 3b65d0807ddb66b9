"""What every learner shares: the TD target, the normaliser, batch conversion, export, checkpoints.

The learners (:mod:`.td3` with DDPG as its special case, :mod:`.sac`) share the building blocks of :mod:`her_policy.learn.nets` and one TD-target
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

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.weights import ActorWeights, Head
from her_policy.errors import PolicyError, TrainingDivergedError
from her_policy.learn.buffer import HerBatch
from her_policy.learn.config import TrainConfig
from her_policy.learn.nets import Adam, linear_layers
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


def adam(params: Any, lr: float) -> Adam:
    return Adam(params, lr=lr)


def step_on(loss: Tensor, params: list[nn.Parameter], opt: Adam) -> None:
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
        self.critic: nn.Module
        """Q(x, a) of every critic, (n_critics, B)."""
        self._discount: Tensor | None = None
        self._prior: Tensor | None = None

    # -- data -----------------------------------------------------------------
    def tensors(self, batch: HerBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(input, unit action, reward, next input, terminated) as float32 tensors.

        For an n-step batch: (input, action, n-step return, input after m steps,
        terminated within them); the per-sample bootstrap factor goes to
        ``self._discount`` for the next TD target.
        """
        norm = self.normaliser
        self._prior = None if batch.prior is None else torch.from_numpy(batch.prior)
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

    def bc_error(self, pi: Tensor, a: Tensor, keep: Tensor | None = None) -> Tensor:
        """Behaviour-cloning error of the batch last converted: the mean over the cloned
        samples (all, or the demonstrations' when ``config.bc_on`` is "demos"; 0 when the batch
        holds none) of (pi - a)^2 averaged over action dimensions in unit action space. With
        ``keep`` (the Q filter) a sample not kept counts as 0 in that mean."""
        error = (pi - a).square().mean(1)
        if self.config.bc_on == "demos":
            if self._prior is None:
                return error.new_zeros(())
            error = error[self._prior]
            keep = keep[self._prior] if keep is not None else None
        if keep is not None:
            error = error * keep
        return error.mean()

    def describe(self) -> dict[str, Any]:
        """The settings that make this learner what it is, for the artefact's provenance."""
        cfg = self.config
        out: dict[str, Any] = {"algorithm": self.algorithm, "gamma": self.gamma, "n_step": cfg.n_step}
        if cfg.bc_weight > 0:
            out.update(bc_weight=cfg.bc_weight, bc_on=cfg.bc_on)
        return out

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

    @torch.no_grad()
    def probe(self, batch: HerBatch) -> dict[str, float]:
        """What the critic thinks of the data and of the policy on ``batch`` (no update):
        mean Q of the data's actions and of the policy's, the share of policy Q values above
        0 (sparse -1/0 returns cannot reach it), and the mean squared action gap between
        policy and data in unit action space (how far the actor has left the data)."""
        x, a, _, _, _ = self.tensors(batch)
        pi = self._mean_action(x)
        q_data = self._q(x, a)
        q_pi = self._q(x, pi)
        return {
            "q_data": q_data.mean().item(),
            "q_policy": q_pi.mean().item(),
            "q_policy_above_0": (q_pi > 0).float().mean().item(),
            "action_gap": (pi - a).square().sum(1).mean().item(),
        }

    def _mean_action(self, x: Tensor) -> Tensor:
        """The deterministic action of the actor, unit space (B, action_dim)."""
        return torch.tanh(self.actor(x)[:, : self.layout.action_dim])

    def _q(self, x: Tensor, a: Tensor) -> Tensor:
        """The (pessimistic) critic value of actions ``a``, (B,)."""
        values: Tensor = self.critic(x, a).min(0).values
        return values

    # -- acting and export ----------------------------------------------------
    @torch.no_grad()
    def act(self, observation: Any, desired_goal: Any) -> np.ndarray:
        """Deterministic env actions for (N, obs) / (N, goal) inputs (torch path, for checks)."""
        x = torch.from_numpy(
            self.normaliser(np.atleast_2d(observation), np.atleast_2d(desired_goal))
        )
        out = self.actor(x)[:, : self.layout.action_dim]
        return self.layout.to_env_action(torch.tanh(out).numpy())

    def snapshot(self) -> ActorWeights:
        """Actor weights and normaliser statistics as numpy, for collectors and artefacts."""
        layers = linear_layers(self.actor)
        stats = self.normaliser.stats()
        return ActorWeights(
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

    def check_finite(self, when: str, metrics: dict[str, float] | None = None) -> None:
        """Raise :class:`TrainingDivergedError` if a loss, a weight or a normaliser statistic
        is NaN or inf; ``when`` says where training is (env step, update)."""
        bad = [name for name, value in (metrics or {}).items() if not math.isfinite(value)]
        with torch.no_grad():
            for key, module in self.modules().items():
                if isinstance(module, nn.Module):
                    for name, param in module.named_parameters():
                        if not bool(torch.isfinite(param).all()):
                            bad.append(f"{key}.{name}")
                            break
        stats = self.normaliser.stats()
        bad += [k for k in ("obs_mean", "obs_std", "goal_mean", "goal_std") if not np.isfinite(stats[k]).all()]
        if bad:
            cfg = self.config
            raise TrainingDivergedError(
                f"training diverged at {when}: {', '.join(bad)} not finite. Likely cause: a learning "
                f"rate too high for this task (actor_lr {cfg.actor_lr}, critic_lr {cfg.critic_lr}), or "
                "non-finite observations or rewards from the env. No artefact was written; lower the "
                "learning rates (or check the env) and train again."
            )

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
