"""Runtime actor: the numpy forward pass agrees with the torch twin, artefacts load, damage is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from her_goals import get_goal_space
from her_policy.artefact.weights import ActorWeights
from her_policy.deploy.runtime import RuntimeActor
from her_policy.errors import ActorLoadError
from her_policy.learn.torch_actor import PARITY_ATOL, TorchActor, check_parity, time_forward

OBS, GOAL, ACT = 23, 3, 4


@pytest.fixture(scope="module")
def weights() -> ActorWeights:
    return ActorWeights.random(
        OBS, GOAL, ACT, hidden=(256, 256, 256), seed=7, goal_space="ee_position"
    )


@pytest.fixture(scope="module")
def actor(weights: ActorWeights) -> RuntimeActor:
    return RuntimeActor(weights)


@pytest.fixture(scope="module")
def torch_actor(weights: ActorWeights) -> TorchActor:
    return TorchActor(weights)


def inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 3, (n, OBS)), rng.normal(0, 3, (n, GOAL))


def test_numpy_and_torch_give_the_same_action(actor: RuntimeActor, torch_actor: TorchActor):
    obs, goal = inputs(500)
    # Including inputs beyond both clips (clip_obs 200, norm_clip 5).
    obs[:50] *= 1e3
    goal[50:100] = -1e9
    for o, g in zip(obs, goal):
        np.testing.assert_allclose(
            actor.numpy_actor(o, g), torch_actor(o, g), atol=PARITY_ATOL, rtol=0
        )


def test_forward_matches_the_documented_formula(weights: ActorWeights, actor: RuntimeActor):
    o, g = inputs(1, seed=3)
    o, g = o[0], g[0]
    w = weights
    x = np.concatenate(
        [
            np.clip((np.clip(o, -200, 200) - w.obs_mean) / w.obs_std, -5, 5),
            np.clip((np.clip(g, -200, 200) - w.goal_mean) / w.goal_std, -5, 5),
        ]
    ).astype(np.float64)
    for i, (wi, bi) in enumerate(zip(w.weights, w.biases)):
        x = x @ wi.astype(np.float64) + bi
        if i < len(w.weights) - 1:
            x = np.maximum(x, 0)
    np.testing.assert_allclose(actor(o, g), np.tanh(x), atol=1e-5)


def test_parity_check_passes_on_the_same_weights_and_catches_a_drifted_forward_pass(
    weights: ActorWeights,
) -> None:
    assert check_parity(weights) <= PARITY_ATOL
    p50, p99 = time_forward(RuntimeActor(weights), weights, calls=50)
    assert 0 < p50 <= p99
    import her_policy.learn.torch_actor as ta

    class Drifted(TorchActor):
        def __call__(self, observation, desired_goal):  # type: ignore[no-untyped-def]
            return super().__call__(observation, desired_goal) + 1e-3

    original = ta.TorchActor
    ta.TorchActor = Drifted  # type: ignore[misc]
    try:
        with pytest.raises(ActorLoadError, match="drifted"):
            check_parity(weights)
    finally:
        ta.TorchActor = original  # type: ignore[misc]


def test_non_finite_input_gives_non_finite_action_never_a_plausible_one(
    actor: RuntimeActor, torch_actor: TorchActor
):
    o, g = inputs(1)
    o = o[0].copy()
    o[4] = np.nan
    assert np.isnan(actor(o, g[0])).all()
    assert np.isnan(torch_actor(o, g[0])).all()


def test_output_is_float64_in_range(actor: RuntimeActor):
    obs, goal = inputs(100, seed=5)
    acts = np.array([actor(o, g) for o, g in zip(obs, goal)])
    assert acts.dtype == np.float64
    assert (np.abs(acts) <= 1.0).all()


def test_npz_round_trip_and_goal_space_check(tmp_path: Path, weights: ActorWeights):
    path = weights.save(tmp_path / "actor.npz")
    a = RuntimeActor.load(path, expect_goal_space="ee_position")
    o, g = inputs(1)
    np.testing.assert_array_equal(a(o[0], g[0]), RuntimeActor(weights)(o[0], g[0]))
    with pytest.raises(ActorLoadError, match="object_position"):
        RuntimeActor.load(path, expect_goal_space="object_position")


def test_bad_weights_are_rejected(weights: ActorWeights):
    with pytest.raises(ActorLoadError, match="chain"):
        ActorWeights(
            weights=weights.weights[1:],
            biases=weights.biases[1:],
            obs_mean=weights.obs_mean,
            obs_std=weights.obs_std,
            goal_mean=weights.goal_mean,
            goal_std=weights.goal_std,
        )
    bad = list(weights.weights)
    bad[0] = bad[0].copy()
    bad[0][0, 0] = np.nan
    with pytest.raises(ActorLoadError, match="NaN"):
        ActorWeights(
            weights=tuple(bad),
            biases=weights.biases,
            obs_mean=weights.obs_mean,
            obs_std=weights.obs_std,
            goal_mean=weights.goal_mean,
            goal_std=weights.goal_std,
        )
    with pytest.raises(ActorLoadError, match="does not exist"):
        ActorWeights.load("/nonexistent/actor.npz")


def test_tanh_hidden_layers_and_max_action():
    w = ActorWeights.random(5, 2, 3, hidden=(16,), seed=1)
    w = ActorWeights(
        weights=w.weights,
        biases=w.biases,
        obs_mean=w.obs_mean,
        obs_std=w.obs_std,
        goal_mean=w.goal_mean,
        goal_std=w.goal_std,
        hidden_activation="tanh",
        max_action=0.5,
    )
    a, twin = RuntimeActor(w), TorchActor(w)
    rng = np.random.default_rng(0)
    for _ in range(20):
        o, g = rng.normal(size=5), rng.normal(size=2)
        out = a(o, g)
        assert (np.abs(out) <= 0.5).all()
        np.testing.assert_allclose(out, twin(o, g), atol=PARITY_ATOL)


def _save_artefact(
    path: Path, weights: ActorWeights, low: tuple[float, ...], high: tuple[float, ...]
) -> Path:
    artefact = pytest.importorskip("her_policy.artefact.store")
    from her_policy.artefact.layout import PolicyLayout

    snapshot = weights
    layout = PolicyLayout(OBS, GOAL, ACT, low, high)
    return artefact.save_artefact(
        path,
        snapshot=snapshot,
        layout=layout,
        goal_space=get_goal_space("ee_position"),
        algorithm="ddpg",
        config={"test": True},
        seeds={"train": 0},
        data_hashes={},
    )


def test_loads_a_learner_artefact_and_matches_its_own_policy(tmp_path: Path, weights: ActorWeights):
    path = _save_artefact(tmp_path / "art", weights, (-1.0,) * ACT, (1.0,) * ACT)
    from her_policy.artefact.store import load_artefact

    art = load_artefact(path)
    a = RuntimeActor.load(path, expect_goal_space=get_goal_space("ee_position"))
    assert a.artefact_hash == art.artefact_hash
    assert a.goal_space.name == "ee_position"
    obs, goal = inputs(100, seed=9)
    for o, g in zip(obs, goal):
        np.testing.assert_allclose(a(o, g), art.act(o, g), atol=PARITY_ATOL)
        np.testing.assert_allclose(a.numpy_actor(o, g), TorchActor(a.weights)(o, g), atol=PARITY_ATOL)


def test_artefact_goal_space_mismatch_is_refused(tmp_path: Path, weights: ActorWeights):
    path = _save_artefact(tmp_path / "art", weights, (-1.0,) * ACT, (1.0,) * ACT)
    from her_policy.errors import GoalSpaceMismatchError

    with pytest.raises(GoalSpaceMismatchError):
        RuntimeActor.load(path, expect_goal_space="object_position")


def test_asymmetric_action_range_is_mapped_like_the_learner(tmp_path: Path, weights: ActorWeights):
    low, high = (-1.0, -1.0, -1.0, 0.0), (1.0, 1.0, 1.0, 0.5)
    path = _save_artefact(tmp_path / "art", weights, low, high)
    from her_policy.artefact.store import load_artefact

    art = load_artefact(path)
    a = RuntimeActor.load(path)
    obs, goal = inputs(30, seed=2)
    for o, g in zip(obs, goal):
        out = a(o, g)
        np.testing.assert_allclose(out, art.act(o, g), atol=PARITY_ATOL)
        assert 0.0 <= out[3] <= 0.5
