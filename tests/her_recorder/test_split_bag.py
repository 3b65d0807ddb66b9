"""EpisodeRecorder.split_bag: a finished, readable bag on demand, between episodes only."""

from pathlib import Path

import numpy as np
import pytest

from her_goals import get_goal_space
from her_recorder import EpisodeRecorder
from her_recorder.errors import RecorderError
from her_recorder.reader import bag_summary, read_episodes

SPACE = get_goal_space("ee_position")


def one_episode(rec: EpisodeRecorder, t0: int) -> None:
    rec.start_episode(np.zeros(3), stamp_ns=t0)
    rec.record_step(
        observation=np.zeros(4),
        next_observation=np.ones(4),
        action_raw=np.zeros(4),
        achieved_goal=np.zeros(3),
        next_achieved_goal=np.zeros(3),
        stamp_ns=t0 + 1,
    )
    rec.end_episode(stamp_ns=t0 + 2)


@pytest.mark.parametrize("queue_size", [0, 64])
def test_split_bag_closes_a_readable_bag_while_the_session_goes_on(
    tmp_path: Path, queue_size: int
) -> None:
    with EpisodeRecorder(
        tmp_path / "s", goal_space=SPACE, task="reach", queue_size=queue_size
    ) as rec:
        one_episode(rec, 10)
        first = rec.split_bag()
        assert first is not None
        # Finished while the recorder is still open: metadata written, nothing to recover.
        assert not bag_summary(first).needs_recovery
        assert len(read_episodes(first, goal_space=SPACE, log_summary=False).episodes) == 1
        one_episode(rec, 20)
        second = rec.split_bag()
        assert second is not None and second != first
        assert rec.split_bag() is None  # nothing written since: no empty bag
    assert len(read_episodes(tmp_path / "s", goal_space=SPACE, log_summary=False).episodes) == 2


def test_split_bag_refuses_to_cut_an_open_episode(tmp_path: Path) -> None:
    with EpisodeRecorder(tmp_path / "s", goal_space=SPACE, task="reach") as rec:
        rec.start_episode(np.zeros(3), stamp_ns=1)
        with pytest.raises(RecorderError, match="bags split only between episodes"):
            rec.split_bag()
        rec.discard_episode()
