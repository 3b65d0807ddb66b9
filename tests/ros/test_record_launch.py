"""`ros2 launch her_bringup record.launch.py ... num_episodes:=N` ends by itself once N episodes are in the bag.

Runs the README's recording command (with a small N) as a user types it, through the
``ros2`` CLI; the recorder logs every episode it writes. Skipped without ROS 2 or the
built workspace.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ros_cli import bringup_share, run

bringup_share(launch_tests=False)


def test_record_launch_with_num_episodes_ends_and_logs_every_episode(tmp_path: Path):
    ros2 = shutil.which("ros2")
    assert ros2, "ros2 is not on PATH"
    bags = tmp_path / "bags"
    cmd = [ros2, "launch", "her_bringup", "record.launch.py", "sim:=true", "task:=reach", "num_episodes:=2",
           f"bag_dir:={bags}"]
    done = run(cmd, timeout=240)
    log = done.stdout
    assert done.returncode == 0, log[-4000:]
    written = re.findall(r"episode (\d+) written \((END|ABORT) \w+, (\d+) steps", log)
    assert [w[0] for w in written] == ["0", "1"], log[-4000:]
    assert "num_episodes 2 written: closing the bag, exiting" in log
    from her_recorder import read_episodes

    result = read_episodes(bags, log_summary=False)
    assert len(result.episodes) == 2 and not result.report.errors()
