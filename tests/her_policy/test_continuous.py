"""The continuous learner: closed episodes only, each once across restarts; versions name their data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import her_mujoco
from her_goals.spaces import get_goal_space
from her_policy.app.sim import policy_actor, sim_control_loop
from her_policy.artefact.versions import latest_version, published, trained_on
from her_policy.deploy.sinks import RecorderSink
from her_policy.learn.continuous import SessionError, continuous_learner
from her_recorder import EpisodeRecorder

SMALL = {
    "hidden": (16, 16),
    "batch_size": 16,
    "updates_per_step": 0.2,
    "buffer_capacity": 20_000,
    "torch_threads": 1,
}


def record(session: Path, n: int, *, seed: int = 0, task: str = "reach") -> None:
    """``n`` scripted episodes of ``task`` into ``session`` (a new bag each call)."""
    env = her_mujoco.make_task(task)
    actor = policy_actor(env, "scripted", noise=0.3, seed=seed)
    sampler = env.unwrapped.goal_sampler
    sampler.reset(seed)
    space = env.unwrapped.goal_space
    with EpisodeRecorder(session, goal_space=space, task=task, resume=True) as rec:
        loop = sim_control_loop(env, actor, sink=RecorderSink(rec, split="train"))
        for i, goal in enumerate(sampler.sample(n)):
            env.reset(seed=seed + i, options={"desired_goal": goal})
            loop.run_episode(goal, max_ticks=10)
    env.close()


def learner(sessions: list[Path], out: Path, **kw: Any) -> Any:
    return continuous_learner(sessions, out, task="reach", overrides=SMALL, **kw)


def test_only_closed_episodes_are_ingested_and_each_once(tmp_path: Path) -> None:
    session = tmp_path / "session"
    record(session, 3)
    lrn = learner([session], tmp_path / "run", publish_every=10)
    assert lrn.ingest() == 3 and lrn.ingest() == 0
    # A bag still being written: its ended episode is closed (synced at END) and is ingested
    # while the recorder runs; the episode in progress after it is not.
    space = get_goal_space("ee_position")
    goal = np.array([0.5, 0.0, 0.2])

    def steps(rec: EpisodeRecorder, n: int, t0: int, *, ends: bool = True) -> None:
        for t in range(n):
            rec.record_step(
                observation=np.zeros(8), next_observation=np.zeros(8), action_raw=np.zeros(4),
                achieved_goal=goal, next_achieved_goal=goal, truncated=ends and t == n - 1, stamp_ns=t0 + t,
            )  # fmt: skip

    with EpisodeRecorder(session, goal_space=space, task="reach", resume=True) as rec:
        rec.start_episode(goal, stamp_ns=1)
        steps(rec, 3, 10)
        rec.end_episode(stamp_ns=20)
        rec.start_episode(goal, stamp_ns=30)
        steps(rec, 2, 40, ends=False)
        assert lrn.ingest() == 1, "the closed episode of an open bag was not ingested"
        assert lrn.ingest() == 0, "an episode without its END was ingested"
        steps(rec, 1, 50)
        rec.end_episode(stamp_ns=60)
    assert lrn.ingest() == 1 and lrn.ingest() == 0
    assert len(lrn.watcher.seen) == 5 and lrn.buffer.n_episodes == 5


def test_versions_name_their_episodes_and_a_restart_loses_none_and_counts_none_twice(
    tmp_path: Path,
) -> None:
    session, out = tmp_path / "session", tmp_path / "run"
    record(session, 4)
    first = learner([session], out, publish_every=5)
    first.ingest()
    first.train()
    version = first.publish_if_due(force=True)
    assert version is not None and latest_version(out / "versions") == version
    assert trained_on(version) == sorted(first.watcher.seen) and len(trained_on(version)) == 4
    record(session, 2, seed=50)
    assert first.ingest() == 2  # ingested after the checkpoint, then "killed"
    del first

    second = learner([session], out, publish_every=5)
    assert second.resumed and len(second.watcher.seen) == 4
    assert second.ingest() == 2 and second.ingest() == 0
    assert second.buffer.n_episodes == 6 and len(second.watcher.seen) == 6
    second.train()
    newer = second.publish_if_due(force=True)
    assert newer is not None and published(out / "versions") == [1, 2]
    assert len(trained_on(newer)) == 6 and len(set(trained_on(newer))) == 6


def test_a_directory_that_is_not_a_session_or_holds_another_task_is_refused(
    tmp_path: Path,
) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    with pytest.raises(SessionError, match="not a recording session"):
        learner([junk], tmp_path / "run")
    push = tmp_path / "push"
    record(push, 1, task="push")
    lrn = learner([push], tmp_path / "run2")
    with pytest.raises(SessionError, match="push"):
        lrn.ingest()


def test_the_continuous_learner_trains_with_the_presets_n_step_returns(tmp_path: Path, monkeypatch: Any) -> None:
    """her learn, her loop and her fleet learn like her train: push's 3-step returns included."""
    from her_policy.learn.trainer import Trainer

    seen: list[bool] = []
    real = Trainer.sample

    def spy(self: Trainer, batch_size: int | None = None) -> Any:
        batch = real(self, batch_size)
        seen.append(batch.n_step is not None)
        return batch

    monkeypatch.setattr(Trainer, "sample", spy)
    session = tmp_path / "session"
    record(session, 4)
    run = continuous_learner([session], tmp_path / "run", task="reach", overrides={**SMALL, "n_step": 3})
    run.ingest()
    assert run.train() > 0 and seen and all(seen)
