"""Run ROS 2 command lines (``ros2 launch``, ``ros2 topic pub``...) from the launch tests as a user would.

A command that overruns its time is stopped like Ctrl-C stops it (SIGINT to its process
group, so ``ros2 launch`` takes its nodes down), then killed: no node outlives a test.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def bringup_share(*, launch_tests: bool = False) -> Path:
    """her_bringup's installed share directory; skips the calling test module without ROS 2
    (rclpy, and launch_pytest for ``launch_tests``) or without the built, sourced workspace."""
    pytest.importorskip("rclpy")
    if launch_tests:
        pytest.importorskip("launch_pytest")
    ament = pytest.importorskip("ament_index_python.packages")
    try:
        return Path(ament.get_package_share_directory("her_bringup"))
    except ament.PackageNotFoundError:
        pytest.skip("her_bringup is not built/sourced (colcon build, source install/setup.bash)",
                    allow_module_level=True)


def run(cmd: Sequence[str], timeout: float, *, check_timeout: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group; on timeout interrupt it and raise AssertionError."""
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out, _ = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    except subprocess.TimeoutExpired:
        out = stop(proc)
        if check_timeout:
            raise AssertionError(f"{' '.join(cmd)} did not end within {timeout:g} s:\n{out[-6000:]}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def stop(proc: subprocess.Popen[str], grace: float = 30.0) -> str:
    """SIGINT the process group (Ctrl-C), then SIGKILL it after ``grace`` seconds; returns the output."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            out, _ = proc.communicate(timeout=wait)
            return out or ""
        except subprocess.TimeoutExpired:
            continue
    return ""
