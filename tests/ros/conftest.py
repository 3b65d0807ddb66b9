"""Launch tests of the ROS 2 nodes: they need rclpy, launch_pytest and the built workspace.

Without ROS 2 (CI, a fresh machine) every test here is skipped. With ROS 2, build and
source the workspace first (README, "On a robot"), then ``python -m pytest tests/ros``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# Keep the test graph to this machine and off the default domain other engineers use.
os.environ.setdefault("ROS_DOMAIN_ID", "61")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
