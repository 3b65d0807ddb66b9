"""`ros2 launch her_bringup loop.launch.py`: the sim stack explores and records while her learn
trains; the policy node follows the learner's versions and swaps only when an episode starts.

Runs the launch as a user types it, stops it like Ctrl-C, then reads the run directory: the
learner published versions, the bags hold episodes acted by a published version, and no
episode names two policies. Skipped without ROS 2 or the built workspace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ros_cli import bringup_share, run

bringup_share(launch_tests=False)


def test_loop_launch_deploys_the_learners_versions_between_episodes(tmp_path: Path):
    from her_policy.artefact.store import load_artefact
    from her_policy.artefact.versions import published, version_name
    from her_recorder.audit.episodes import bag_meta
    from her_recorder.audit.ledger import read_ledger
    from her_recorder.reader import find_bags

    ros2 = shutil.which("ros2")
    assert ros2, "ros2 is not on PATH"
    run_dir = tmp_path / "loop"
    cmd = [ros2, "launch", "her_bringup", "loop.launch.py", "task:=reach", f"run:={run_dir}", "publish_every:=100"]
    done = run(cmd, timeout=150, check_timeout=False)  # runs until stopped, like the real loop
    log = done.stdout
    versions = run_dir / "learner" / "versions"
    numbers = published(versions)
    assert numbers, f"her learn published no version:\n{log[-4000:]}"
    hashes = {load_artefact(versions / version_name(n)).artefact_hash for n in numbers}
    bags = find_bags([run_dir / "session"])
    ledger = [e for b in read_ledger(bags, {bag: bag_meta(bag) for bag in bags}) for e in b.episodes]
    acted = [next(iter(e.policies)) for e in ledger if e.steps]
    assert all(len(e.policies) == 1 for e in ledger if e.steps), "an episode named two policies: swapped mid-episode"
    assert acted[0] == "random+explore", acted  # before the first version: the fallback
    assert any(str(p).removesuffix("+explore") in hashes for p in acted), (acted, hashes, log[-3000:])
