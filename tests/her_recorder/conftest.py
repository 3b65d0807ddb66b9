"""Fixtures of the her_recorder tests; helpers live in her_recorder_testlib."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from her_recorder_testlib import Recorded, record_session


@pytest.fixture
def session(tmp_path: Path) -> tuple[Path, Recorded]:
    """A closed session of 4 episodes x 10 steps, with /joint_states."""
    path = tmp_path / "session"
    return path, record_session(path)
