"""Fixtures of the ROS-free tests of the ROS layer: rosbags message classes stand in for rclpy's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from her_goals.rosglue.msgconv import MessageTypes
from her_recorder.interfaces import typestore

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def types() -> MessageTypes:
    """The Jazzy typestore (with her_interfaces) as a message factory."""
    return MessageTypes.from_rosbags(typestore())
