"""her train --bags: an artefact from recorded bags only, naming the data it learned from."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import her_mujoco
from her_goals.episode_arrays import EpisodeArrays
from her_policy.app.bag_transport import BagRoundTrip
from her_policy.deploy.scripted import scripted_controller
from her_recorder import EpisodeRecorder


def scripted_reach_bags(path: Path, n_episodes: int = 6) -> None:
    env = her_mujoco.make_task("reach")
    controller = scripted_controller(env)
    space = env.unwrapped.goal_space
    episodes = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=i)
        rows: dict[str, list[np.ndarray]] = {
            "o": [obs["observation"]],
            "a": [],
            "ag": [obs["achieved_goal"]],
        }
        truncated = False
        while not truncated:
            action = controller(obs)
            obs, _, _, truncated, _ = env.step(action)
            rows["o"].append(obs["observation"])
            rows["a"].append(action)
            rows["ag"].append(obs["achieved_goal"])
        n = len(rows["a"])
        episodes.append(
            EpisodeArrays.from_rollout(
                np.array(rows["o"]),
                np.array(rows["a"]),
                np.array(rows["ag"]),
                np.tile(obs["desired_goal"], (n, 1)),
                terminated=False,
                truncated=True,
                success=1.0,
            )
        )
    with EpisodeRecorder(path, goal_space=space, task="reach") as rec:
        BagRoundTrip(rec)(episodes)


def run_her(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "her_policy.app.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_train_from_bags_writes_an_artefact_naming_the_bag_files(tmp_path: Path) -> None:
    scripted_reach_bags(tmp_path / "bags")
    out = run_her(
        "train",
        "--bags",
        str(tmp_path / "bags"),
        "--updates",
        "50",
        "--out",
        str(tmp_path / "run"),
        "--final-eval-episodes",
        "5",
        "--no-progress",
    )
    assert out.returncode == 0, out.stderr
    assert "6 episodes (300 steps) usable" in out.stderr
    meta = json.loads((tmp_path / "run" / "policy" / "policy.json").read_text())
    assert meta["goal_space"]["name"] == "ee_position"
    hashes = meta["provenance"]["data_hashes"]
    mcaps = sorted((tmp_path / "bags").rglob("*.mcap"))
    assert mcaps and all(f"bag:{p}" in hashes for p in mcaps)
    assert "requested-goal success" in out.stdout  # evaluated on the task's held-out goals


def test_train_from_a_directory_without_bags_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = run_her("train", "--bags", str(tmp_path / "empty"), "--no-progress")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "empty" in out.stderr
