"""Runtime actor: numpy and torch forward passes agree, artefacts load, the faster backend is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from her_goals import get_goal_space
from her_policy.deploy.runtime import PARITY_ATOL, ActorLoadError, ActorWeights, RuntimeActor

OBS, GOAL, ACT = 23, 3, 4


@pytest.fixture(scope="module")
def weights() -> ActorWeights:
    return ActorWeights.random(
        OBS, GOAL, ACT, hidden=(256, 256, 256), seed=7, goal_space="ee_position"
    )


@pytest.fixture(scope="module")
def actor(weights: ActorWeights) -> RuntimeActor:
    return RuntimeActor(weights, backend="numpy")


def inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 3, (n, OBS)), rng.normal(0, 3, (n, GOAL))


def test_numpy_and_torch_give_the_same_action(actor: RuntimeActor):
    obs, goal = inputs(500)
    # Including inputs beyond both clips (clip_obs 200, norm_clip 5).
    obs[:50] *= 1e3
    goal[50:100] = -1e9
    for o, g in zip(obs, goal):
        np.testing.assert_allclose(
            actor.numpy_actor(o, g), actor.torch_actor(o, g), atol=PARITY_ATOL, rtol=0
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


def test_auto_checks_parity_times_both_and_keeps_the_faster(weights: ActorWeights):
    a = RuntimeActor(weights, backend="auto", timing_calls=50)
    assert a.parity_error is not None and a.parity_error <= PARITY_ATOL
    assert set(a.timings_us) == {"numpy", "torch"}
    fastest = min(a.timings_us, key=lambda b: a.timings_us[b][0])
    assert a.backend == fastest
    o, g = inputs(1)
    assert a(o[0], g[0]).shape == (ACT,)


def test_non_finite_input_gives_non_finite_action_never_a_plausible_one(actor: RuntimeActor):
    o, g = inputs(1)
    o = o[0].copy()
    o[4] = np.nan
    assert np.isnan(actor(o, g[0])).all()
    assert np.isnan(actor.torch_actor(o, g[0])).all()


def test_output_is_float64_in_range(actor: RuntimeActor):
    obs, goal = inputs(100, seed=5)
    acts = np.array([actor(o, g) for o, g in zip(obs, goal)])
    assert acts.dtype == np.float64
    assert (np.abs(acts) <= 1.0).all()


def test_npz_round_trip_and_goal_space_check(tmp_path: Path, weights: ActorWeights):
    path = weights.save(tmp_path / "actor.npz")
    a = RuntimeActor.load(path, expect_goal_space="ee_position", backend="numpy")
    o, g = inputs(1)
    np.testing.assert_array_equal(a(o[0], g[0]), RuntimeActor(weights, backend="numpy")(o[0], g[0]))
    with pytest.raises(ActorLoadError, match="object_position"):
        RuntimeActor.load(path, expect_goal_space="object_position", backend="numpy")


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
    a = RuntimeActor(w, backend="numpy")
    rng = np.random.default_rng(0)
    for _ in range(20):
        o, g = rng.normal(size=5), rng.normal(size=2)
        out = a(o, g)
        assert (np.abs(out) <= 0.5).all()
        np.testing.assert_allclose(out, a.torch_actor(o, g), atol=PARITY_ATOL)


def _save_artefact(
    path: Path, weights: ActorWeights, low: tuple[float, ...], high: tuple[float, ...]
) -> Path:
    artefact = pytest.importorskip("her_policy.artefact.store")
    from her_policy.artefact.actor import PolicySnapshot
    from her_policy.artefact.layout import PolicyLayout

    snapshot = PolicySnapshot(
        weights=weights.weights,
        biases=weights.biases,
        head="deterministic",
        obs_mean=weights.obs_mean,
        obs_std=weights.obs_std,
        goal_mean=weights.goal_mean,
        goal_std=weights.goal_std,
    )
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
    a = RuntimeActor.load(path, expect_goal_space=get_goal_space("ee_position"), backend="auto")
    assert a.artefact_hash == art.artefact_hash
    assert a.goal_space.name == "ee_position"
    obs, goal = inputs(100, seed=9)
    for o, g in zip(obs, goal):
        np.testing.assert_allclose(a(o, g), art.act(o, g), atol=PARITY_ATOL)
        np.testing.assert_allclose(a.numpy_actor(o, g), a.torch_actor(o, g), atol=PARITY_ATOL)


def test_artefact_goal_space_mismatch_is_refused(tmp_path: Path, weights: ActorWeights):
    path = _save_artefact(tmp_path / "art", weights, (-1.0,) * ACT, (1.0,) * ACT)
    from her_policy.errors import GoalSpaceMismatchError

    with pytest.raises(GoalSpaceMismatchError):
        RuntimeActor.load(path, expect_goal_space="object_position", backend="numpy")


def test_asymmetric_action_range_is_mapped_like_the_learner(tmp_path: Path, weights: ActorWeights):
    low, high = (-1.0, -1.0, -1.0, 0.0), (1.0, 1.0, 1.0, 0.5)
    path = _save_artefact(tmp_path / "art", weights, low, high)
    from her_policy.artefact.store import load_artefact

    art = load_artefact(path)
    a = RuntimeActor.load(path, backend="numpy")
    obs, goal = inputs(30, seed=2)
    for o, g in zip(obs, goal):
        out = a(o, g)
        np.testing.assert_allclose(out, art.act(o, g), atol=PARITY_ATOL)
        assert 0.0 <= out[3] <= 0.5
