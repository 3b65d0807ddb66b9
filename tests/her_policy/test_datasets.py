"""her export: bags as LeRobotDataset v3.0 and Minari datasets, read back exactly, and training
from them (her train --bags / --demos) as from their bags."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import minari
import numpy as np
import pyarrow.parquet as pq
import pytest

from her_policy.learn.offline import TrainingDataError, load_training_episodes
from her_recorder.datasets import export_bags, read_dataset, read_training_input
from her_recorder.reader import Episode, read_episodes

ARRAYS = ("observation", "next_observation", "action", "action_raw", "achieved_goal", "next_achieved_goal",
          "desired_goal", "reward", "terminated", "truncated", "is_success", "safety_flags", "safety_cost",
          "stamp_ns", "true_next_achieved_goal")  # fmt: skip


@pytest.fixture(scope="module")
def bags(record: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two train episodes, two eval episodes, then one more train episode (splits interleaved)."""
    path = tmp_path_factory.mktemp("bags") / "session"
    record(path, 2)
    record(path, 2, split="eval", seed=7)
    record(path, 1, seed=3)
    return path


def assert_same_episode(a: Episode, b: Episode) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    for name in ("episode_id", "split", "task", "end_reason", "status", "success", "sim_params",
                 "safety_reasons"):  # fmt: skip
        assert getattr(a, name) == getattr(b, name), name
    assert a.goal_space.same_as(b.goal_space) and a.bag.name == b.bag.name


def by_key(episodes: list[Episode]) -> dict[tuple[str, int], Episode]:
    return {(e.bag.name, e.episode_id): e for e in episodes}


def test_lerobot_export_has_leroBots_v3_layout_and_imports_back_exactly(her: Any, bags: Path, tmp_path: Path) -> None:
    out = tmp_path / "reach_lerobot"
    result = her("export", str(bags), "--format", "lerobot", "--out", str(out))
    assert result.returncode == 0, result.stderr
    originals = read_episodes(bags, log_summary=False).episodes
    assert len(originals) == 5
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 5
    assert info["total_frames"] == sum(len(e) for e in originals) and info["total_tasks"] == 1
    assert info["splits"] == {"train": "0:3", "eval": "3:5"}  # grouped: training first
    prov = info["her_ros"]
    assert prov["task"] == "reach" and prov["goal_space"]["units"] == "m"
    assert prov["goal_space"]["tolerance"] == originals[0].goal_space.tolerance
    mcaps = sorted(bags.rglob("*.mcap"))
    hashed = {name for bag in prov["bags"] for name in bag["files"]}
    assert {p.name for p in mcaps} == hashed and prov["training_refuses"] == ["eval"]
    # The data file against info.json: every feature a column, vectors of the declared length.
    data = pq.read_table(out / info["data_path"].format(chunk_index=0, file_index=0))
    assert set(info["features"]) == set(data.column_names)
    for name, ft in info["features"].items():
        column = data.column(name).combine_chunks()
        if ft["shape"] != [1]:
            assert column.type.list_size == ft["shape"][0], name
    episodes = pq.read_table(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pydict()
    assert episodes["dataset_from_index"] == [0, *episodes["dataset_to_index"][:-1]]
    assert episodes["her/split"] == ["train", "train", "train", "eval", "eval"]
    tasks = pq.read_table(out / "meta" / "tasks.parquet").to_pydict()
    assert tasks == {"task_index": [0], "__index_level_0__": ["reach"]}
    stats = json.loads((out / "meta" / "stats.json").read_text())
    first = originals[0]
    lo, hi = episodes["dataset_from_index"][0], episodes["dataset_to_index"][0]
    stored = np.array(data.column("observation.state").to_pylist()[lo:hi])
    np.testing.assert_array_equal(stored, first.observation)  # float64, exactly
    assert stats["action"]["count"] == [info["total_frames"]]
    # Import: the bag's episodes, exactly.
    imported, _ = read_dataset(out)
    assert [e.split for e in imported] == ["train"] * 3 + ["eval"] * 2
    want = by_key(originals)
    for e in imported:
        assert_same_episode(e, want[(e.bag.name, e.episode_id)])


def test_minari_export_opens_in_minari_and_imports_back_exactly(bags: Path, tmp_path: Path) -> None:
    out = tmp_path / "reach-v0"
    result = export_bags([bags], "minari", out)
    assert result.episodes == 5 and result.splits == {"train": "0:3", "eval": "3:5"}
    dataset = minari.MinariDataset(out / "data")
    assert dataset.total_episodes == 5 and dataset.id == "her_ros/reach-v0"
    originals = read_episodes(bags, log_summary=False).episodes
    ordered = [e for e in originals if e.split == "train"] + [e for e in originals if e.split == "eval"]
    metas = list(dataset.storage.get_episode_metadata(range(5)))
    for stored, meta, e in zip(dataset.iterate_episodes(), metas, ordered, strict=True):
        assert meta["her_ros"]["split"] == e.split and int(meta["her_ros"]["episode_id"]) == e.episode_id
        np.testing.assert_array_equal(stored.observations["observation"][:-1], e.observation)
        np.testing.assert_array_equal(stored.observations["observation"][-1], e.next_observation[-1])
        np.testing.assert_array_equal(stored.observations["desired_goal"][:-1], e.desired_goal)
        np.testing.assert_array_equal(stored.actions, e.action)
        np.testing.assert_array_equal(stored.rewards, e.reward)
        np.testing.assert_array_equal(stored.truncations, e.truncated)
        np.testing.assert_array_equal(stored.infos["success"][1:], e.is_success)
        np.testing.assert_array_equal(stored.infos["safety_cost"][1:], e.safety_cost)
    assert dataset.storage.metadata["her_ros"]["goal_space"]["name"] == originals[0].goal_space.name
    imported = read_training_input([out]).episodes
    want = by_key(originals)
    assert len(imported) == 5
    for e in imported:
        assert_same_episode(e, want[(e.bag.name, e.episode_id)])


@pytest.mark.parametrize("fmt", ["lerobot", "minari"])
def test_training_refuses_an_exported_datasets_evaluation_episodes(her: Any, bags: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "ds"
    export_bags([bags], fmt, out)
    run = her("train", "--bags", str(out), "--updates", "20", "--out", str(tmp_path / "run"), "--no-progress")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "2 of 5 episodes are held-out evaluation episodes" in run.stderr and str(out) in run.stderr
    assert not (tmp_path / "run" / "policy").exists()


def test_demos_of_another_task_in_a_dataset_are_refused(her: Any, record: Any, tmp_path: Path) -> None:
    record(tmp_path / "push", 1, task="push")
    export_bags([tmp_path / "push"], "lerobot", tmp_path / "push_ds")
    run = her("train", "--task", "reach", "--demos", str(tmp_path / "push_ds"), "--env-steps", "100",
              "--no-progress")  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "push_ds" in run.stderr and "'push'" in run.stderr


def test_export_errors_are_one_line_and_say_the_fix(her: Any, record: Any, bags: Path, tmp_path: Path) -> None:
    typo = her("export", str(bags), "--format", "lerobt", "--out", str(tmp_path / "a"))
    assert typo.returncode == 2 and "Did you mean 'lerobot'?" in typo.stderr and "Traceback" not in typo.stderr
    out = tmp_path / "ds"
    assert her("export", str(bags), "--format", "minari", "--out", str(out)).returncode == 0
    again = her("export", str(bags), "--format", "minari", "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr
    replaced = her("export", str(bags), "--format", "lerobot", "--out", str(out), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "meta" / "info.json").exists() and not (out / "data" / "metadata.json").exists()
    inside = her("export", str(bags), "--format", "lerobot", "--out", str(bags / "ds"), "--overwrite")
    assert inside.returncode == 2 and "outside the bags" in inside.stderr
    mixed = tmp_path / "mixed"
    record(mixed / "a", 1)
    record(mixed / "b", 1, task="push")
    both = her("export", str(mixed / "a"), str(mixed / "b"), "--format", "lerobot", "--out", str(tmp_path / "m"))
    assert both.returncode == 2 and "tasks" in both.stderr and "one task at a time" in both.stderr
    open_bag = tmp_path / "open"
    record(open_bag, 1)
    bag = next(p for p in open_bag.iterdir() if p.is_dir())
    (bag / "metadata.yaml").unlink()
    torn = her("export", str(open_bag), "--format", "lerobot", "--out", str(tmp_path / "t"))
    assert torn.returncode == 2 and "her bag recover" in torn.stderr and "Traceback" not in torn.stderr
    assert not (tmp_path / "t").exists() and not (bag / "metadata.yaml").exists()


@pytest.mark.parametrize("fmt", ["lerobot", "minari"])
def test_a_dataset_trains_the_same_actor_as_its_bags(her: Any, record: Any, tmp_path: Path, fmt: str) -> None:
    bags = tmp_path / "bags"
    record(bags, 4)
    export_bags([bags], fmt, tmp_path / "ds")
    weights = []
    for source in (bags, tmp_path / "ds"):
        run_dir = tmp_path / f"run_{source.name}"
        run = her("train", "--bags", str(source), "--updates", "200", "--seed", "3", "--out", str(run_dir),
                  "--final-eval-episodes", "1", "--no-progress")  # fmt: skip
        assert run.returncode == 0, run.stderr
        with np.load(run_dir / "policy" / "actor.npz") as arrays:
            weights.append({k: arrays[k] for k in arrays.files})
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test (dataset loaders read local
    directories only)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_minari_load_dataset_finds_an_export_in_the_local_datasets_root(
    bags: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    root = tmp_path / "minari_root"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    export_bags([bags], "minari", root / "her_ros" / "reach-v0")
    dataset = minari.load_dataset("her_ros/reach-v0")  # download=False: the local root only
    assert dataset.id == "her_ros/reach-v0" and dataset.total_episodes == 5
    assert dataset.total_steps == sum(len(e) for e in read_episodes(bags, log_summary=False).episodes)
    assert "her_ros/reach-v0" in minari.list_local_datasets()


def test_lerobot_dataset_class_reads_an_export_exactly(bags: Path, tmp_path: Path, no_network: None) -> None:
    """LeRobot's own loader, where it can be installed (Python 3.12 and a torch it accepts);
    elsewhere the layout tests above check the documented format."""
    lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    out = tmp_path / "reach_lerobot"
    export_bags([bags], "lerobot", out)
    dataset = lerobot_dataset.LeRobotDataset("her_ros/reach", root=out)
    originals = read_episodes(bags, log_summary=False).episodes
    ordered = [e for e in originals if e.split == "train"] + [e for e in originals if e.split == "eval"]
    assert dataset.num_episodes == 5 and len(dataset) == sum(len(e) for e in ordered)
    rows = [(e, t) for e in ordered for t in range(len(e))]
    for i, (e, t) in enumerate(rows):
        item = dataset[i]
        assert item["task"] == "reach" and int(item["frame_index"]) == t
        np.testing.assert_array_equal(np.asarray(item["observation.state"]), e.observation[t])
        np.testing.assert_array_equal(np.asarray(item["observation.desired_goal"]), e.desired_goal[t])
        np.testing.assert_array_equal(np.asarray(item["action"]), e.action[t])
        assert float(item["next.reward"]) == float(e.reward[t])
        assert int(item["safety.flags"]) == int(e.safety_flags[t])


def test_a_one_element_goal_is_a_plain_lerobot_column_and_comes_back_as_a_vector(record: Any, tmp_path: Path) -> None:
    record(tmp_path / "drawer", 1, task="drawer")
    out = tmp_path / "drawer_lerobot"
    export_bags([tmp_path / "drawer"], "lerobot", out)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["features"]["observation.achieved_goal"]["shape"] == [1]
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet")
    # LeRobot reads a shape-[1] feature as datasets.Value: one number per frame, not a list.
    assert data.schema.field("observation.achieved_goal").type == "double"
    original = read_episodes(tmp_path / "drawer", log_summary=False).episodes[0]
    assert original.achieved_goal.shape[1] == 1
    imported, _ = read_dataset(out)
    assert_same_episode(imported[0], original)


@pytest.fixture(scope="module")
def push_dataset(record: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("push")
    record(root / "bags", 1, task="push")
    export_bags([root / "bags"], "minari", root / "push_ds")
    return root / "push_ds"


def test_training_input_of_a_dataset_and_bags_of_another_task_is_refused(record: Any,
    tmp_path: Path, push_dataset: Path
) -> None:
    record(tmp_path / "reach", 1)
    with pytest.raises(TrainingDataError, match="task 'push', but the first bag's") as err:
        load_training_episodes([tmp_path / "reach", push_dataset])
    assert str(push_dataset) in str(err.value) and "one task" in str(err.value)


def test_a_dataset_whose_goal_space_differs_from_the_task_is_refused_as_demos(her: Any, bags: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    export_bags([bags], "lerobot", out)
    info_path = out / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["her_ros"]["goal_space"]["tolerance"] *= 2  # a dataset of another tolerance
    info_path.write_text(json.dumps(info))
    run = her("train", "--task", "reach", "--demos", str(out), "--env-steps", "100", "--no-progress")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "goal space" in run.stderr and str(out) in run.stderr and "one goal space" in run.stderr


@pytest.mark.parametrize("fmt", ["lerobot", "minari"])
def test_a_damaged_dataset_is_one_line_that_says_export_again(her: Any, bags: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "ds"
    export_bags([bags], fmt, out)
    data = next(p for p in sorted((out / "data").rglob("*")) if p.suffix in (".parquet", ".hdf5"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    run = her("train", "--bags", str(out), "--updates", "20", "--out", str(tmp_path / "run"), "--no-progress")
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert str(out) in last and "export the bags again" in last, last
    assert not (tmp_path / "run" / "policy").exists()


def test_exporting_a_bag_with_a_cut_off_file_says_recover_it_first(her: Any, record: Any, tmp_path: Path) -> None:
    record(tmp_path / "s", 1)
    bag = next(p for p in (tmp_path / "s").iterdir() if p.is_dir())
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:-100])  # a crash mid-write: no footer
    cut = mcap.read_bytes()
    run = her("export", str(tmp_path / "s"), "--format", "minari", "--out", str(tmp_path / "ds"))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"her bag recover {bag}" in run.stderr and "no MCAP footer" in run.stderr
    assert not (tmp_path / "ds").exists() and mcap.read_bytes() == cut  # the bag untouched
