"""The loop follows published versions: swaps between episodes only, refuses what does not fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import her_mujoco
from her_goals.spaces import get_goal_space
from her_policy.app.sim import run_requested_goals, sim_control_loop
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.store import save_artefact
from her_policy.artefact.versions import publish_version
from her_policy.artefact.weights import ActorWeights
from her_policy.deploy.hot_swap import FollowingPolicy


def reach_layout(env: object) -> tuple[PolicyLayout, list[tuple[str, int, int]]]:
    from her_policy.learn.envs import layout_of

    layout = layout_of(env)
    return layout, [tuple(f) for f in layout.spec()["observation_fields"]]  # type: ignore[misc]


def artefact(tmp: Path, layout: PolicyLayout, *, seed: int, space: str = "ee_position", task: str = "reach") -> Path:
    return save_artefact(
        tmp / f"staging{seed}",
        snapshot=ActorWeights.random(layout.observation_dim, layout.goal_dim, layout.action_dim, (16,), seed=seed),
        layout=layout,
        goal_space=get_goal_space(space),
        algorithm="ddpg",
        config={"task": task},
        seeds={},
        data_hashes={},
        provenance={"env": f"task:{task}"},
    )


def test_versions_swap_in_between_episodes_only_and_unfit_ones_are_refused(tmp_path: Path) -> None:
    env = her_mujoco.make_task("reach")
    layout, fields = reach_layout(env)
    versions = tmp_path / "versions"
    calls: list[str] = []

    class Watched(FollowingPolicy):
        def __call__(self, o: np.ndarray, g: np.ndarray) -> np.ndarray:  # type: ignore[override]
            calls.append(self.version)
            if self.version == "v0001" and len(calls) == 3:
                # A new version is published while an episode runs: it must wait.
                publish_version(versions, 2, artefact(tmp_path, layout, seed=2), [("s", "b", 0)])
            return np.asarray(super().__call__(o, g))

    policy = Watched(
        versions, env.unwrapped.goal_space, "reach", fields, layout.action_dim,
        fallback=lambda o, g: np.zeros(4),
    )  # fmt: skip
    loop = sim_control_loop(env, policy)
    goals = env.unwrapped.goal_sampler.heldout(4)

    first = run_requested_goals(env, loop, goals[:1])  # no version yet: the fallback acts
    assert first[0].policy_version == "" and set(calls) == {""}
    publish_version(versions, 1, artefact(tmp_path, layout, seed=1), [("s", "b", 0)])
    calls.clear()
    run_requested_goals(env, loop, goals[1:2])
    assert set(calls) == {"v0001"}, "v0002 appeared mid-episode and must not act in it"
    calls.clear()
    run_requested_goals(env, loop, goals[2:3])
    assert set(calls) == {"v0002"}
    # An unfit version (another goal space) and a damaged one are refused; v0002 keeps acting.
    publish_version(versions, 3, artefact(tmp_path, layout, seed=3, space="object_position"), [])
    bad = artefact(tmp_path, layout, seed=4)
    (bad / "actor.npz").write_bytes(b"truncated")
    calls.clear()
    run_requested_goals(env, loop, goals[3:4])
    assert set(calls) == {"v0002"}
    publish_version(versions, 4, bad, [])
    run_requested_goals(env, loop, goals[:1])
    assert policy.version == "v0002"
    refused = [e for e in policy.events if not e.swapped]
    assert [e.version for e in refused] == ["v0003", "v0004"]
    assert "object_position" in refused[0].reason and "v0002 keeps acting" in refused[0].reason
    assert "actor.npz" in refused[1].reason
    shutil.rmtree(versions)
