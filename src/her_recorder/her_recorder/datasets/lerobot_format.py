"""LeRobotDataset v3.0 on disk, written and read with pyarrow (the ``export`` extra).

The layout is LeRobot's own (``lerobot/datasets/utils.py``, codebase version ``v3.0``)::

    DIR/meta/info.json                          codebase_version, fps, features, splits, ...
    DIR/meta/stats.json                         min / max / mean / std / count per feature
    DIR/meta/tasks.parquet                      task string (the pandas index) -> task_index
    DIR/meta/episodes/chunk-000/file-000.parquet  one row per episode: its frame range, file
    DIR/data/chunk-000/file-000.parquet         one row per frame (a step)

A frame is one step: ``observation.state``, ``observation.achieved_goal``,
``observation.desired_goal``, ``action`` (executed, after limits and safety), ``action.raw``
(the policy's output), ``next.observation.state``, ``next.observation.achieved_goal``,
``next.reward``, ``next.success`` (requested-goal success of the step), ``next.done``
(terminated), ``next.truncated``, ``safety.flags`` (``SafetyFlag`` bits), ``safety.cost``,
``safety.reasons`` (a JSON list), ``stamp_ns``, and LeRobot's ``timestamp``, ``frame_index``,
``episode_index``, ``index``, ``task_index``; ``next.observation.true_achieved_goal`` when every
episode has the simulator's truth. Vectors are fixed-size lists (LeRobot's
``Sequence(length=n)``), float64 as recorded. The episode table adds our columns ``her/bag``,
``her/bag_path``, ``her/episode_id``, ``her/split``, ``her/end_reason``, ``her/status``,
``her/success``, ``her/sim_params``; ``info.json`` adds ``her_ros`` (the provenance).

Why pyarrow and not the ``lerobot`` package: lerobot 0.5 and later need Python 3.12, and 0.4
pins ``torch<2.11``; installing it would replace our torch. The tests check this layout
against LeRobot's documented one, field by field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from her_recorder.datasets.model import (
    HER_KEY,
    META_NAMES,
    DatasetError,
    Provenance,
    episode_meta,
    reasons_to_text,
    rebuild_episode,
)
from her_recorder.reader import Episode

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
"""Files per chunk directory (LeRobot's default)."""
FRAMES_PER_FILE = 200_000
"""Frames per data file (whole episodes; about 100 MB of push steps, LeRobot's file size)."""
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"

# (column, Episode attribute, dtype): vectors are (T, n), scalars (T,).
STEP_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("observation.state", "observation", "float64"),
    ("observation.achieved_goal", "achieved_goal", "float64"),
    ("observation.desired_goal", "desired_goal", "float64"),
    ("action", "action", "float64"),
    ("action.raw", "action_raw", "float64"),
    ("next.observation.state", "next_observation", "float64"),
    ("next.observation.achieved_goal", "next_achieved_goal", "float64"),
    ("next.reward", "reward", "float32"),
    ("next.success", "is_success", "bool"),
    ("next.done", "terminated", "bool"),
    ("next.truncated", "truncated", "bool"),
    ("safety.flags", "safety_flags", "uint32"),
    ("safety.cost", "safety_cost", "float32"),
    ("safety.reasons", "safety_reasons", "string"),
    ("stamp_ns", "stamp_ns", "int64"),
)
TRUTH_COLUMN = ("next.observation.true_achieved_goal", "true_next_achieved_goal", "float64")
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


VECTORS = frozenset(attr for _, attr, _ in (*STEP_COLUMNS, TRUTH_COLUMN) if attr not in
                    ("reward", "is_success", "terminated", "truncated", "safety_flags", "safety_cost",
                     "safety_reasons", "stamp_ns"))  # fmt: skip
"""The Episode attributes that are (T, n) arrays; the others are one value per step."""


def _column(values: Any, dtype: str) -> pa.Array:
    """One step field as a parquet column. A feature of shape ``[1]`` is a plain column in
    LeRobot (``datasets.Value``), so a one-element vector (the drawer's goal) is stored as
    its one value; :func:`read` gives it back its second axis."""
    if dtype == "string":
        return pa.array([reasons_to_text(r) for r in values], pa.string())
    arr = np.ascontiguousarray(values, dtype=dtype)
    if arr.ndim == 1 or arr.shape[1] == 1:
        return pa.array(arr.reshape(len(arr)))
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])


def _feature(dtype: str, values: Any) -> dict[str, Any]:
    shape = [1] if dtype == "string" or np.ndim(values) == 1 else [int(np.shape(values)[1])]
    return {"dtype": dtype, "shape": shape, "names": None}


def _fps(episodes: Sequence[Episode]) -> int:
    """The control rate, from the median step period of the stamps (LeRobot needs an int)."""
    gaps = np.concatenate([np.diff(e.stamp_ns) for e in episodes] or [np.zeros(0)])
    gaps = gaps[gaps > 0]
    return max(1, round(1e9 / float(np.median(gaps)))) if gaps.size else 1


def _stats(table: pa.Table, features: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, ft in features.items():
        if ft["dtype"] == "string":
            continue
        arr = _numpy(table.column(name), ft).astype(np.float64).reshape(table.num_rows, -1)
        if not arr.size:
            continue
        out[name] = {
            "min": arr.min(0).tolist(), "max": arr.max(0).tolist(), "mean": arr.mean(0).tolist(),
            "std": arr.std(0).tolist(), "count": [int(arr.shape[0])],
        }  # fmt: skip
    return out


def _numpy(column: pa.ChunkedArray, ft: dict[str, Any]) -> np.ndarray:
    arr = column.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type):
        return np.asarray(arr.flatten().to_numpy(zero_copy_only=False)).reshape(len(arr), -1)
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _tasks_table(task: str) -> pa.Table:
    """``meta/tasks.parquet`` as LeRobot writes it with pandas: the task string is the
    (unnamed) index, ``task_index`` the column."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }  # fmt: skip
    table = pa.table({"task_index": pa.array([0], pa.int64()), "__index_level_0__": [task]})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def write(out: Path, episodes: Sequence[Episode], prov: Provenance, *, final: Path) -> None:
    """Write ``episodes`` (already grouped by split) as a LeRobotDataset v3.0 into ``out`` (a
    staging directory renamed to ``final``)."""
    columns = list(STEP_COLUMNS)
    if all(e.true_next_achieved_goal is not None for e in episodes):
        columns.append(TRUTH_COLUMN)
    fps = _fps(episodes)
    first = episodes[0]
    features: dict[str, Any] = {name: _feature(dtype, getattr(first, attr)) for name, attr, dtype in columns}
    features.update(
        timestamp={"dtype": "float32", "shape": [1], "names": None},
        frame_index={"dtype": "int64", "shape": [1], "names": None},
        episode_index={"dtype": "int64", "shape": [1], "names": None},
        index={"dtype": "int64", "shape": [1], "names": None},
        task_index={"dtype": "int64", "shape": [1], "names": None},
    )
    files: list[list[Episode]] = [[]]
    frames_in_file = 0
    for e in episodes:
        if files[-1] and frames_in_file + len(e) > FRAMES_PER_FILE:
            files.append([])
            frames_in_file = 0
        files[-1].append(e)
        frames_in_file += len(e)
    rows: dict[str, list[Any]] = {k: [] for k in ("episode_index", "tasks", "length", "data/chunk_index",
                                                   "data/file_index", "dataset_from_index", "dataset_to_index")}  # fmt: skip
    meta_rows: dict[str, list[Any]] = {k: [] for k in META_NAMES}
    tables = []
    index = 0
    for n, group in enumerate(files):
        chunk, file = divmod(n, CHUNKS_SIZE)
        parts: dict[str, list[pa.Array]] = {name: [] for name in features}
        for e in group:
            t = len(e)
            ep_index = len(rows["episode_index"])
            frame = np.arange(t, dtype=np.int64)
            for name, attr, dtype in columns:
                parts[name].append(_column(getattr(e, attr), dtype))
            parts["timestamp"].append(pa.array((frame / fps).astype(np.float32)))
            parts["frame_index"].append(pa.array(frame))
            parts["episode_index"].append(pa.array(np.full(t, ep_index, np.int64)))
            parts["index"].append(pa.array(np.arange(index, index + t, dtype=np.int64)))
            parts["task_index"].append(pa.array(np.zeros(t, np.int64)))
            for key, value in (("episode_index", ep_index), ("tasks", [prov.task]), ("length", t),
                               ("data/chunk_index", chunk), ("data/file_index", file),
                               ("dataset_from_index", index), ("dataset_to_index", index + t)):  # fmt: skip
                rows[key].append(value)
            for key, value in episode_meta(e).items():
                meta_rows[key].append(value)
            index += t
        table = pa.table({name: pa.concat_arrays(arrays) for name, arrays in parts.items()})
        path = out / DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        tables.append(table)
    episodes_table = pa.table(
        {
            **{k: pa.array(v, pa.list_(pa.string()) if k == "tasks" else pa.int64()) for k, v in rows.items()},
            "meta/episodes/chunk_index": pa.array(np.zeros(len(episodes), np.int64)),
            "meta/episodes/file_index": pa.array(np.zeros(len(episodes), np.int64)),
            **{f"her/{k}": pa.array(v) for k, v in meta_rows.items()},
        }
    )
    ep_path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(episodes_table, ep_path)
    pq.write_table(_tasks_table(prov.task), out / "meta" / "tasks.parquet")
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": "her_ros_arm",
        "total_episodes": len(episodes),
        "total_frames": index,
        "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": prov.splits,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": None,
        "features": features,
        HER_KEY: prov.to_json(),
    }
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4), "utf-8")
    stats = _stats(pa.concat_tables(tables), features)
    (out / "meta" / "stats.json").write_text(json.dumps(stats, indent=4), "utf-8")


def read_info(path: Path) -> dict[str, Any]:
    """``meta/info.json`` of a LeRobot v3.0 dataset, checked."""
    where = path / "meta" / "info.json"
    try:
        info = json.loads(where.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{where} cannot be read ({exc}); export the bags again with `her export`") from None
    if not isinstance(info, dict) or info.get("codebase_version") != CODEBASE_VERSION:
        version = info.get("codebase_version") if isinstance(info, dict) else None
        raise DatasetError(
            f"{path}: LeRobot codebase_version {version!r}; HER-ROS reads {CODEBASE_VERSION} "
            "datasets it exported (`her export --format lerobot`)"
        )
    return info


def read(path: Path) -> tuple[list[Episode], Provenance]:
    """Every episode of a LeRobot v3.0 dataset that ``her export`` wrote, exactly as exported."""
    info = read_info(path)
    prov = Provenance.from_json(info.get(HER_KEY), path)
    features: dict[str, Any] = info["features"]
    try:
        episodes_table = pa.concat_tables(
            pq.read_table(p) for p in sorted((path / "meta" / "episodes").glob("*/*.parquet"))
        )
        data = pa.concat_tables(pq.read_table(p) for p in sorted((path / "data").glob("*/*.parquet")))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: its parquet files cannot be read ({exc}); export the bags again") from None
    columns = [*STEP_COLUMNS, TRUTH_COLUMN] if TRUTH_COLUMN[0] in data.column_names else list(STEP_COLUMNS)
    missing = [c for c, _, _ in columns if c not in data.column_names]
    if missing or data.num_rows != int(info.get("total_frames", -1)):
        raise DatasetError(
            f"{path}: the data files {'lack ' + ', '.join(missing) if missing else 'hold another frame count'} "
            f"than meta/info.json says; export the bags again with `her export`"
        )
    arrays = {attr: _numpy(data.column(name), features[name]) for name, attr, _ in columns}
    for attr in VECTORS & arrays.keys():
        arrays[attr] = arrays[attr].reshape(data.num_rows, -1)
    reasons = data.column("safety.reasons").to_pylist()
    ep = episodes_table.to_pydict()
    out: list[Episode] = []
    for i in range(episodes_table.num_rows):
        lo, hi = int(ep["dataset_from_index"][i]), int(ep["dataset_to_index"][i])
        fields = {attr: values[lo:hi] for attr, values in arrays.items()}
        fields["safety_reasons"] = reasons[lo:hi]
        meta = {k: ep[f"her/{k}"][i] for k in META_NAMES}
        out.append(rebuild_episode(path, prov, meta, fields))
    return out, prov
