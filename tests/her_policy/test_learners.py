"""Learners: TD targets (truncation bootstraps, termination does not), building blocks, export."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from her_goals.spaces import GoalSpace
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.numpy_actor import NumpyActor
from her_policy.learn.algorithms import LEARNERS, make_learner, td_target
from her_policy.learn.buffer import BatchStats, HerBatch, HerReplayBuffer
from her_policy.learn.config import TrainConfig
from her_policy.learn.nets import EnsembleLinear, mlp, polyak_update
from her_policy.learn.normaliser import RunningNormaliser

torch.set_num_threads(1)  # two threads on a shared 2-core machine are many times slower

SPACE = GoalSpace(name="unit", dim=3, units="m", frame="world", tolerance=0.05)
LAYOUT = PolicyLayout(5, 3, 2, (-1.0, -2.0), (1.0, 2.0))
GAMMA = 0.9


def config(algo: str, **kw: object) -> TrainConfig:
    return TrainConfig(algo=algo, hidden=(32, 32), batch_size=64, **kw)  # type: ignore[arg-type]


def batch(
    n: int = 64, *, terminated: bool = False, truncated: bool = False, seed: int = 0
) -> HerBatch:
    rng = np.random.default_rng(seed)
    return HerBatch(
        observation=rng.normal(size=(n, 5)).astype(np.float32),
        action=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        next_observation=rng.normal(size=(n, 5)).astype(np.float32),
        desired_goal=rng.normal(size=(n, 3)),
        next_achieved_goal=rng.normal(size=(n, 3)),
        reward=-np.ones(n, np.float32),
        terminated=np.full(n, terminated),
        truncated=np.full(n, truncated),
        relabelled=np.zeros(n, bool),
        stats=BatchStats(0.0, 0.0, float("nan")),
    )


def test_td_target_rule() -> None:
    r = torch.tensor([-1.0, -1.0, 0.0])
    v = torch.tensor([-5.0, -5.0, 3.0])
    term = torch.tensor([1.0, 0.0, 0.0])
    y = td_target(r, term, v, GAMMA, clip=False)
    torch.testing.assert_close(y, torch.tensor([-1.0, -1.0 - 4.5, 2.7]))
    y = td_target(r, term, v, GAMMA, clip=True)
    torch.testing.assert_close(y, torch.tensor([-1.0, -5.5, 0.0]))  # clip [-1/(1-g), 0] = [-10, 0]


@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_termination_stops_the_bootstrap_but_truncation_does_not(algo: str) -> None:
    learner = make_learner(LAYOUT, config(algo, clip_target=False), gamma=GAMMA, seed=0)
    torch.manual_seed(1)
    terminal = learner.target_values(batch(terminated=True))
    np.testing.assert_array_equal(terminal, -np.ones(64, np.float32))
    torch.manual_seed(1)
    truncated = learner.target_values(batch(truncated=True))
    torch.manual_seed(1)
    running = learner.target_values(batch())
    np.testing.assert_allclose(truncated, running)  # a time limit is not a terminal state
    assert np.abs(truncated - (-1.0)).min() > 1e-6, "the truncated target includes gamma * V(s')"


def test_n_step_batches_bootstrap_with_their_own_discount() -> None:
    from her_policy.learn.buffer import NStepTarget

    learner = make_learner(LAYOUT, config("ddpg", clip_target=False), gamma=GAMMA, seed=0)
    one = batch()
    b = one._replace(n_step=NStepTarget(
        returns=np.full(64, -1.9, np.float32), observation=one.next_observation,
        discount=np.full(64, GAMMA**2, np.float32), terminated=np.zeros(64, bool),
    ))
    v = (learner.target_values(one) + 1.0) / GAMMA  # one-step: -1 + gamma * V(s')
    np.testing.assert_allclose(learner.target_values(b), -1.9 + GAMMA**2 * v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_updates_fit_a_fixed_batch_and_report_finite_metrics(algo: str, layer_norm: bool) -> None:
    learner = make_learner(LAYOUT, config(algo, critic_layer_norm=layer_norm), gamma=GAMMA, seed=0)
    norms = [m for m in learner.critic.modules() if "LayerNorm" in type(m).__name__]
    assert len(norms) == (2 if layer_norm else 0), "one per hidden layer of (32, 32)"
    b = batch()
    first = learner.update(b, with_metrics=True)
    for _ in range(60):
        last = learner.update(b, with_metrics=True)
    assert all(np.isfinite(v) for v in last.values())
    assert last["critic_loss"] < first["critic_loss"]
    assert learner.n_updates == 61
    assert learner.update(b) == {}, "metrics only when asked (no per-update sync)"


@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_numpy_snapshot_acts_like_the_torch_actor(algo: str) -> None:
    learner = make_learner(LAYOUT, config(algo), gamma=GAMMA, seed=0)
    rng = np.random.default_rng(0)
    learner.normaliser.update(rng.normal(3, 2, (100, 5)), rng.normal(-1, 0.5, (100, 3)))
    for _ in range(5):
        learner.update(batch())
    obs, goal = rng.normal(3, 2, (16, 5)), rng.normal(-1, 0.5, (16, 3))
    torch_actions = learner.act(obs, goal)
    numpy_actions = LAYOUT.to_env_action(NumpyActor(learner.snapshot()).batch(obs, goal))
    np.testing.assert_allclose(numpy_actions, torch_actions, atol=1e-5)
    assert (np.abs(torch_actions) <= np.array([1.0, 2.0])).all(), "actions scaled to the env range"


@pytest.mark.parametrize("algo", sorted(LEARNERS))
def test_checkpoint_round_trip(algo: str) -> None:
    a = make_learner(LAYOUT, config(algo), gamma=GAMMA, seed=0)
    for _ in range(3):
        a.update(batch())
    b = make_learner(LAYOUT, config(algo), gamma=GAMMA, seed=5)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(0)
    ya = a.target_values(batch(seed=2))
    torch.manual_seed(0)
    yb = b.target_values(batch(seed=2))
    np.testing.assert_array_equal(ya, yb)
    with pytest.raises(ValueError, match="checkpoint is for"):
        make_learner(
            LAYOUT, config("ddpg" if algo != "ddpg" else "td3"), gamma=GAMMA
        ).load_state_dict(a.state_dict())


def test_learner_trains_from_a_filled_buffer_without_an_env() -> None:
    from her_policy.learn.train import train_from_buffer

    buf = HerReplayBuffer(SPACE, 5, 2, capacity=1000, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(4):
        buf.add_episode(
            rng.normal(size=(11, 5)),
            rng.uniform(-1, 1, (10, 2)),
            rng.normal(size=(11, 3)) * 0.05,
            rng.normal(size=3) * 0.05,
            truncated=True,
        )
    learner = make_learner(LAYOUT, config("sac"), gamma=GAMMA)
    stats = train_from_buffer(learner, buf, 20, batch_size=32)
    assert stats.n_updates == 20 and learner.n_updates == 20
    assert stats.hindsight_ratio == pytest.approx(0.8, abs=0.1)
    assert set(stats.metrics) >= {"critic_loss", "actor_loss", "alpha"}


def test_polyak_update() -> None:
    target = [torch.zeros(3), torch.ones(2)]
    source = [torch.ones(3), torch.zeros(2)]
    polyak_update(source, target, 0.25)  # SB3's order: online parameters, then targets
    torch.testing.assert_close(target[0], torch.full((3,), 0.25))
    torch.testing.assert_close(target[1], torch.full((2,), 0.75))
    torch.testing.assert_close(source[0], torch.ones(3))  # the online side is untouched
    with pytest.raises(ValueError):
        polyak_update(source[:1], target, 0.5)


@pytest.mark.parametrize("fused", [True, False])
def test_our_adam_matches_torch_optim_adam(fused: bool) -> None:
    from her_policy.learn.nets import Adam

    torch.manual_seed(0)
    a, b = mlp(5, 2, (16, 16)), mlp(5, 2, (16, 16))
    b.load_state_dict(a.state_dict())
    reference, ours = torch.optim.Adam(a.parameters(), lr=1e-2), Adam(b.parameters(), lr=1e-2)
    ours._fused = fused and ours._fused
    for _ in range(30):
        x = torch.randn(32, 5)
        for net, opt in ((a, reference), (b, ours)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_ensemble_layer_is_independent_linear_layers() -> None:
    layer = EnsembleLinear(2, 4, 3)
    x = torch.randn(2, 5, 4)
    y = layer(x)
    for i in range(2):
        torch.testing.assert_close(y[i], x[i] @ layer.weight[i] + layer.bias[i])
    net = mlp(4, 1, (8, 8), ensemble=2)
    assert net(x).shape == (2, 5, 1)


def test_normaliser_matches_numpy_statistics() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(2.0, 3.0, (1000, 4))
    data[:, 3] = 7.0  # constant column: std floored at eps
    norm = RunningNormaliser(4, eps=0.01, clip=5.0)
    norm.update(data[:500])
    norm.update(data[500:])
    np.testing.assert_allclose(norm.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.std[:3], data.std(0)[:3], rtol=1e-4)
    assert norm.std[3] == pytest.approx(0.01)
    out = norm(np.array([[2.0, 2.0, 2.0, 100.0]]))
    assert out[0, 3] == 5.0, "normalised values are clipped"


def test_joined_normaliser_follows_its_statistics() -> None:
    from her_policy.learn.normaliser import GoalConditionedNormaliser

    rng = np.random.default_rng(0)
    norm = GoalConditionedNormaliser(4, 2)
    o, g = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    for _ in range(3):
        norm.update(rng.normal(1, 2, (50, 4)), rng.normal(-1, 3, (50, 2)))
        np.testing.assert_allclose(norm(o, g), np.concatenate([norm.observation(o), norm.goal(g)], 1), rtol=1e-6)
    other = GoalConditionedNormaliser(4, 2)
    other(o, g)
    other.load_state_dict(norm.state_dict())
    np.testing.assert_allclose(other(o, g), norm(o, g), rtol=1e-6)


def test_config_rejects_nonsense() -> None:
    from her_goals.errors import ConfigError

    with pytest.raises(ConfigError, match="tau"):
        dataclasses.replace(config("ddpg"), tau=0.0)
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(task="reach", env="FetchReach-v4")


@pytest.mark.parametrize("algo", ["ddpg", "td3", "sac"])
def test_a_critic_ensemble_is_one_stacked_network_that_fits_a_batch(algo: str) -> None:
    cfg = config(algo, n_critics=5, target_critics=2, critic_layer_norm=True, critic_dropout=0.01)
    learner = make_learner(LAYOUT, cfg, gamma=GAMMA, seed=0)
    ensemble = [m for m in learner.critic.modules() if isinstance(m, EnsembleLinear)]
    assert len(ensemble) == 3 and all(m.weight.shape[0] == 5 for m in ensemble), "5 critics, 3 stacked layers"
    assert sum(isinstance(m, torch.nn.Dropout) for m in learner.critic.modules()) == 2
    x, a, *_ = learner.tensors(batch())
    assert learner.critic(x, a).shape == (5, 64)
    b = batch()
    first = learner.update(b, with_metrics=True)
    for _ in range(60):
        last = learner.update(b, with_metrics=True)
    assert np.isfinite(list(last.values())).all() and last["critic_loss"] < first["critic_loss"]


def test_redq_target_is_the_minimum_over_a_random_subset_of_critics() -> None:
    from her_policy.learn.algorithms.td3 import Critics, actor_value, target_minimum

    critics = Critics(3, 2, (8,), n=5)
    last = [m for m in critics.modules() if isinstance(m, EnsembleLinear)][-1]
    with torch.no_grad():  # critic i answers -(i + 1) whatever the input
        last.weight.zero_()
        last.bias.copy_(-torch.arange(1.0, 6.0).view(5, 1, 1))
    x, a = torch.randn(4, 3), torch.randn(4, 2)
    assert target_minimum(critics, x, a, None).tolist() == [-5.0] * 4, "all critics: the minimum of all"
    torch.manual_seed(0)
    drawn = {target_minimum(critics, x, a, 2)[0].item() for _ in range(200)}
    assert drawn == {-2.0, -3.0, -4.0, -5.0}, "a subset of 2: never the largest, every other as its minimum"
    q = critics(x, a)[:, :1]
    assert actor_value(q).item() == -3.0, "the actor follows the ensemble's mean"
    assert actor_value(q[:2]).item() == -1.0, "twin critics: the first, as TD3"


def test_a_subset_of_an_ensemble_computes_exactly_what_the_whole_gives_those_members() -> None:
    from her_policy.learn.algorithms.td3 import Critics

    torch.manual_seed(1)
    critics = Critics(7, 3, (32, 32), n=5, layer_norm=True)
    x, a = torch.randn(16, 7), torch.randn(16, 3)
    members = torch.tensor([4, 1])
    assert torch.equal(critics(x, a, members), critics(x, a)[members]), "same numbers, only fewer computed"


def test_an_ensemble_subset_larger_than_the_ensemble_is_refused() -> None:
    from her_goals.errors import ConfigError

    with pytest.raises(ConfigError, match="target_critics 3 is more than the 2 critics"):
        config("td3", target_critics=3)
    with pytest.raises(ConfigError, match="target_critics 2 is more than the 1 critics"):
        config("ddpg", target_critics=2)  # DDPG's one critic, not TD3's two
    with pytest.raises(ConfigError, match="critic_dropout"):
        config("td3", critic_dropout=1.0)
