"""her fleet: arms on Ray feed one learner; killed arms and learners lose nothing and the fleet goes on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from her_policy.app.fleet import FleetSettings, check_address, run_fleet

ray = pytest.importorskip("ray")


def test_an_address_that_does_not_answer_is_refused_fast(tmp_path: Path) -> None:
    from her_goals.errors import ConfigError

    start = time.monotonic()
    with pytest.raises(ConfigError, match="no Ray head answers"):
        check_address("127.0.0.1:1")
    with pytest.raises(ConfigError, match="host:port"):
        check_address("localhost")
    assert time.monotonic() - start < 10


@pytest.mark.slow
def test_two_arms_on_reach_improve_and_survive_a_killed_arm_and_learner(tmp_path: Path) -> None:
    from her_policy.learn.continuous import continuous_learner
    from her_recorder.reader import read_episodes

    killed: dict[str, bool] = {}
    start = time.monotonic()

    def chaos(state: dict[str, Any]) -> None:
        elapsed = time.monotonic() - start
        if elapsed > 20 and "arm" not in killed:
            state["ray"].kill(state["arms"][0], no_restart=False)
            killed["arm"] = True
        if elapsed > 30 and "learner" not in killed:
            state["ray"].kill(state["learner"], no_restart=False)
            killed["learner"] = True

    settings = FleetSettings(
        out=tmp_path / "run", arms=2, task="reach", minutes=2.5, publish_every=300,
        eval_goals=20, target_success=None,
    )  # fmt: skip
    summary = run_fleet(settings, report=print, chaos=chaos)
    assert killed == {"arm": True, "learner": True}
    assert summary.restarts >= 1 and summary.rows
    assert max(r["requested_success"] for r in summary.rows) >= 0.9, summary.line()
    # The learner kept reach's one update per env step within a round of calls plus what the
    # kills cost: arms wait for it instead of running ahead.
    assert summary.updates >= 0.8 * summary.env_steps - 2 * 2 * 50, summary.line()
    # Every completed episode of every arm (the killed arm's unclosed bag included) reaches
    # the learner exactly once: a learner resumed from the fleet's checkpoint catches up.
    sessions = sorted((tmp_path / "run").glob("arm_*/session"))
    recorded = sum(len(read_episodes(s, log_summary=False).episodes) for s in sessions)
    learner = continuous_learner(sessions, tmp_path / "run" / "learner", task="reach", publish_every=10**9)
    assert learner.resumed
    learner.ingest()
    assert len(learner.watcher.seen) == recorded == learner.buffer.n_episodes
