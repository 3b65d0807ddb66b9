"""Policy artefact (save/load without torch, tamper and goal-space checks) and requested-goal evaluation."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import itertools

from her_policy_toys import TOY_SPACE, OraclePolicy, StillPolicy, ToyFactory

from her_goals.spaces import GoalSpace, get_goal_space
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.store import load_artefact, save_artefact
from her_policy.artefact.weights import ActorWeights
from her_policy.errors import ArtefactError, EnvContractError, GoalSpaceMismatchError
from her_policy.learn.envs import HELDOUT_SEED_BASE, goal_space_of, requested_resets, training_seed
from her_policy.learn.evaluate import evaluate, wilson_interval

LAYOUT = PolicyLayout(3, 3, 3, (-1.0,) * 3, (1.0,) * 3, (("position", 0, 3),))


def snapshot(seed: int = 0, head: str = "deterministic") -> ActorWeights:
    rng = np.random.default_rng(seed)
    out = 6 if head == "gaussian" else 3
    sizes = [6, 16, 16, out]
    return ActorWeights(
        weights=tuple(rng.normal(0, 0.5, (a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)),
        biases=tuple(rng.normal(0, 0.1, b).astype(np.float32) for b in sizes[1:]),
        head=head,  # type: ignore[arg-type]
        obs_mean=rng.normal(size=3).astype(np.float32),
        obs_std=rng.uniform(0.5, 2, 3).astype(np.float32),
        goal_mean=rng.normal(size=3).astype(np.float32),
        goal_std=rng.uniform(0.5, 2, 3).astype(np.float32),
    )


def write(path: Path, space: GoalSpace = TOY_SPACE, head: str = "deterministic") -> Path:
    return save_artefact(
        path,
        snapshot=snapshot(head=head),
        layout=LAYOUT,
        goal_space=space,
        algorithm="sac" if head == "gaussian" else "ddpg",
        config={"algo": "ddpg", "env": "HerPolicyToyPoint-v0"},
        seeds={"run": 0},
        data_hashes={"replay_episodes_sha256": "ab" * 32},
    )


def test_round_trip_keeps_actions_and_provenance(tmp_path: Path) -> None:
    path = write(tmp_path / "policy", head="gaussian")
    art = load_artefact(path)
    obs, goal = np.random.default_rng(1).normal(size=(8, 3)), np.random.default_rng(2).normal(size=(8, 3))
    from her_policy.artefact.numpy_actor import NumpyActor

    expected = NumpyActor(snapshot(head="gaussian")).batch(obs, goal)  # deterministic: tanh(mean)
    np.testing.assert_allclose(art.act_batch(obs, goal), expected, atol=1e-6)
    np.testing.assert_allclose(art.act(obs[0], goal[0]), expected[0], atol=1e-6)
    meta = art.metadata
    assert meta["goal_space"] == TOY_SPACE.spec()
    assert meta["observation_layout"]["observation_fields"] == [["position", 0, 3]]
    assert set(meta["normaliser"]) >= {"obs_mean", "obs_std", "goal_mean", "goal_std", "clip_obs", "norm_clip"}
    prov = meta["provenance"]
    assert set(prov) >= {"config", "config_hash", "seeds", "versions", "data_hashes"}
    assert prov["versions"]["numpy"] == np.__version__
    assert len(art.artefact_hash) == 64
    assert load_artefact(path / "policy.json").artefact_hash == art.artefact_hash


def test_loading_needs_no_torch(tmp_path: Path) -> None:
    path = write(tmp_path / "policy")
    code = (
        "import sys, numpy as np\n"
        "from her_policy import load_artefact\n"
        f"a = load_artefact({str(path)!r})\n"
        "a.act(np.zeros(3), np.zeros(3))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'gymnasium', 'her_policy.learn.algorithms', 'her_policy.learn.train')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_runtime_actor_reads_the_artefact_weights(tmp_path: Path) -> None:
    runtime = pytest.importorskip("her_policy.deploy.runtime")
    path = write(tmp_path / "policy")
    actor = runtime.RuntimeActor.load(path / "actor.npz", expect_goal_space=TOY_SPACE.name)
    art = load_artefact(path)
    o, g = np.array([0.1, -0.2, 0.3]), np.array([0.0, 0.1, -0.1])
    np.testing.assert_allclose(actor(o, g), art.act(o, g), atol=1e-5)


def test_edits_and_missing_files_are_detected(tmp_path: Path) -> None:
    path = write(tmp_path / "policy")
    meta_file = path / "policy.json"
    meta = json.loads(meta_file.read_text())
    meta["goal_space"]["tolerance"] = 0.5
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ArtefactError, match="modified after it was written"):
        load_artefact(path)
    path = write(tmp_path / "policy2")
    with np.load(path / "actor.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["w0"] = arrays["w0"] * 2
    np.savez(path / "actor.npz", **arrays)
    with pytest.raises(ArtefactError, match="does not match the hash"):
        load_artefact(path)
    with pytest.raises(ArtefactError, match="not a policy artefact"):
        load_artefact(tmp_path / "nowhere")


def test_artefact_from_another_goal_space_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "policy")
    other = get_goal_space("object_position")
    with pytest.raises(GoalSpaceMismatchError) as err:
        load_artefact(path, expect_goal_space=other)
    assert "toy_point" in str(err.value) and "object_position" in str(err.value)
    with pytest.raises(GoalSpaceMismatchError, match="object_position"):
        load_artefact(path, expect_goal_space="object_position")
    tighter = TOY_SPACE.with_tolerance(0.01)
    with pytest.raises(GoalSpaceMismatchError, match="0.01"):
        load_artefact(path, expect_goal_space=tighter)
    load_artefact(path, expect_goal_space=TOY_SPACE)
    # ... and evaluate() refuses to run it in an env of another goal space.
    wrong = write(tmp_path / "wrong", space=other)
    with pytest.raises(GoalSpaceMismatchError, match="evaluate it on its own task"):
        evaluate(wrong, ToyFactory("sampler"), 2)


# -- evaluation ---------------------------------------------------------------------
def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == pytest.approx(1.0)
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)


@pytest.mark.parametrize("kind", ["sampler", "fetchlike"])
def test_requested_goal_success_of_an_oracle_and_a_still_policy(kind: str) -> None:
    good = evaluate(OraclePolicy(), ToyFactory(kind), 30, n_envs=3)
    assert good.requested_success == 1.0 and good.kind == "requested"
    assert good.ci_low == pytest.approx(wilson_interval(30, 30)[0])
    still = evaluate(StillPolicy(), ToyFactory(kind), 30)
    assert still.requested_success < 0.2
    assert still.mean_final_distance > good.mean_final_distance
    assert "Wilson 95%" in str(good)


def test_requested_goals_are_the_task_heldout_goals() -> None:
    env = ToyFactory("sampler")()
    resets = requested_resets(env, 5)
    from her_goals.evaluation import heldout_goal

    np.testing.assert_array_equal(
        np.stack([r["options"]["desired_goal"] for r in resets]),
        np.stack([heldout_goal(env.unwrapped.goal_sampler, 0, i) for i in range(5)]),
    )  # the stream an evaluation plan names: her eval, her eval --record and the audit agree
    assert env.unwrapped.goal_sampler.is_heldout(np.stack([r["options"]["desired_goal"] for r in resets])).all()
    fetch = ToyFactory("fetchlike")()
    seeds = [r["seed"] for r in requested_resets(fetch, 5)]
    assert min(seeds) >= HELDOUT_SEED_BASE > training_seed(10**9 - 1, 999)


def test_evaluation_cannot_be_given_goals_or_a_buffer() -> None:
    params = set(inspect.signature(evaluate).parameters)
    assert params == {"policy", "env_factory", "n_episodes", "n_envs", "heldout_seed", "envs"}
    with pytest.raises(ValueError, match="takes a policy artefact"):
        evaluate(object(), ToyFactory(), 1)


def test_env_that_ignores_requested_goals_is_caught() -> None:
    with pytest.raises(EnvContractError, match="ignored the requested goal"):
        evaluate(OraclePolicy(), ToyFactory("ignores_goal"), 2)


def test_goal_space_is_built_and_checked_for_gymnasium_robotics_style_envs() -> None:
    space = goal_space_of(ToyFactory("fetchlike")(), name="toy-fetchlike")
    assert (space.name, space.dim, space.units, space.frame, space.tolerance) == ("toy-fetchlike", 3, "m", "world", 0.05)
    assert goal_space_of(ToyFactory("sampler")()) is TOY_SPACE
    with pytest.raises(EnvContractError, match="disagrees with the env's compute_reward"):
        goal_space_of(ToyFactory("bad_reward")())
