"""Minari datasets (HDF5), written and read through Minari's own storage (the ``export`` extra).

``DIR/data/main_data.hdf5`` and ``DIR/data/metadata.json``, as ``minari.MinariStorage`` writes
them: ``minari.MinariDataset("DIR/data")`` opens the dataset, and a ``DIR`` placed at
``$MINARI_DATASETS_PATH/her_ros/NAME-v0`` is ``minari.load_dataset("her_ros/NAME-v0")``.

An episode of ``T`` steps, in Minari's (and Gymnasium-Robotics') goal-conditioned shape:

* ``observations``: a Dict of ``observation``, ``achieved_goal``, ``desired_goal``, each
  ``T + 1`` rows (the last is the observation after the last step);
* ``actions`` (``T``, executed: after limits and safety), ``rewards``, ``terminations``,
  ``truncations`` (``T``);
* ``infos``, ``T + 1`` rows like every Minari info (row 0 is the reset, the row ``t + 1`` the
  step ``t``): ``success`` (requested-goal success), ``action_raw``, ``safety_flags``,
  ``safety_cost``, ``safety_reasons`` (JSON lists), ``stamp_ns``; row 0 holds zeros / False /
  ``[]`` (no step yet) and ``stamp_ns`` of the first step. ``true_achieved_goal`` (simulation,
  row 0 NaN) when the bag has the truth; ``next_observation`` and ``next_achieved_goal`` only in
  an episode whose steps do not chain (the reader's discontinuity warning), so nothing is lost.

Each episode's HDF5 attributes hold ``her_ros/split``, ``her_ros/bag``, ``her_ros/episode_id``,
``her_ros/end_reason``, ... (``storage.get_episode_metadata``); ``metadata.json`` holds the
``her_ros`` provenance beside Minari's ``dataset_id``, ``minari_version`` and spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari import MinariDataset
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage

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

DATA_DIR = "data"
_VERSIONED = re.compile(r".*-v\d+$")


def dataset_id(out: Path) -> str:
    """``her_ros/<out name>`` (``-v0`` added when the name has no version), Minari's id form."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(out).name) or "export"
    return f"her_ros/{name if _VERSIONED.fullmatch(name) else name + '-v0'}"


def _box(dim: int) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (dim,), np.float64)


def _infos(e: Episode) -> dict[str, Any]:
    def padded(values: Any, first: Any) -> np.ndarray:
        values = np.asarray(values)
        return np.concatenate([np.asarray([first], values.dtype).reshape(1, *values.shape[1:]), values])

    infos: dict[str, Any] = {
        "success": padded(e.is_success, False),
        "action_raw": padded(e.action_raw, np.zeros(e.action_raw.shape[1])),
        "safety_flags": padded(e.safety_flags, 0),
        "safety_cost": padded(e.safety_cost, 0.0),
        "safety_reasons": ["[]", *(reasons_to_text(r) for r in e.safety_reasons)],
        "stamp_ns": padded(e.stamp_ns, e.stamp_ns[0]),
    }
    if e.true_next_achieved_goal is not None:
        infos["true_achieved_goal"] = padded(e.true_next_achieved_goal, np.full(e.goal_space.dim, np.nan))
    chained = np.array_equal(e.observation[1:], e.next_observation[:-1]) and np.array_equal(
        e.achieved_goal[1:], e.next_achieved_goal[:-1]
    )
    if not chained:
        infos["next_observation"] = padded(e.next_observation, e.observation[0])
        infos["next_achieved_goal"] = padded(e.next_achieved_goal, e.achieved_goal[0])
    return infos


def _buffer(e: Episode) -> EpisodeBuffer:
    return EpisodeBuffer(
        observations={
            "observation": np.concatenate([e.observation, e.next_observation[-1:]]),
            "achieved_goal": np.concatenate([e.achieved_goal, e.next_achieved_goal[-1:]]),
            "desired_goal": np.concatenate([e.desired_goal, e.desired_goal[-1:]]),
        },
        actions=np.asarray(e.action),
        rewards=np.asarray(e.reward),
        terminations=np.asarray(e.terminated),
        truncations=np.asarray(e.truncated),
        infos=_infos(e),
    )


def write(out: Path, episodes: Sequence[Episode], prov: Provenance, *, final: Path) -> None:
    """Write ``episodes`` (already grouped by split) as a Minari dataset into ``out`` (a staging
    directory renamed to ``final``, whose name gives the dataset id)."""
    first = episodes[0]
    space = gym.spaces.Dict(
        {
            "observation": _box(first.observation.shape[1]),
            "achieved_goal": _box(first.goal_space.dim),
            "desired_goal": _box(first.goal_space.dim),
        }
    )
    storage = MinariStorage.new(
        out / DATA_DIR, observation_space=space, action_space=_box(first.action.shape[1]), data_format="hdf5"
    )
    storage.update_episodes([_buffer(e) for e in episodes])
    storage.update_episode_metadata(
        [{f"{HER_KEY}/{k}": v for k, v in episode_meta(e).items()} for e in episodes]
    )
    storage.update_metadata(
        {
            "dataset_id": dataset_id(final),
            "minari_version": minari.__version__,
            "description": (
                f"HER-ROS {prov.task} episodes ({prov.goal_space.name} goals in "
                f"{prov.goal_space.units}, tolerance {prov.goal_space.tolerance}) exported from "
                f"{len(prov.bags)} rosbag2 bag(s) by `her export`; splits {prov.splits}"
            ),
            "algorithm_name": "recorded episodes (see her_ros.bags)",
            HER_KEY: prov.to_json(),
        }
    )


def data_path(path: Path) -> Path:
    """The Minari data directory of ``path`` (the dataset directory or its ``data``)."""
    return path if (path / "metadata.json").is_file() else path / DATA_DIR


def read(path: Path) -> tuple[list[Episode], Provenance]:
    """Every episode of a Minari dataset that ``her export`` wrote, through ``MinariDataset``."""
    try:
        return _read(path)
    except (OSError, ValueError, KeyError, AssertionError) as exc:
        # h5py opens the HDF5 file only when episodes are read: a cut-off file fails there.
        raise DatasetError(
            f"{path}: Minari cannot read it ({type(exc).__name__}: {exc}); export the bags again with `her export`"
        ) from None


def _read(path: Path) -> tuple[list[Episode], Provenance]:
    dataset = MinariDataset(data_path(path))
    prov = Provenance.from_json(dataset.storage.metadata.get(HER_KEY), path)
    indices = list(dataset.episode_indices)
    metas = list(dataset.storage.get_episode_metadata(indices))
    out: list[Episode] = []
    for data, meta in zip(dataset.iterate_episodes(indices), metas, strict=True):
        ours = meta.get(HER_KEY)
        if not isinstance(ours, dict) or any(k not in ours for k in META_NAMES):
            raise DatasetError(f"{path}: episode {data.id} has no {HER_KEY} attributes; export the bags again")
        obs, infos = data.observations, data.infos
        fields = {
            "observation": obs["observation"][:-1],
            "next_observation": infos["next_observation"][1:] if "next_observation" in infos else obs["observation"][1:],
            "achieved_goal": obs["achieved_goal"][:-1],
            "next_achieved_goal": (
                infos["next_achieved_goal"][1:] if "next_achieved_goal" in infos else obs["achieved_goal"][1:]
            ),
            "desired_goal": obs["desired_goal"][:-1],
            "action": data.actions,
            "action_raw": infos["action_raw"][1:],
            "reward": data.rewards,
            "terminated": data.terminations,
            "truncated": data.truncations,
            "is_success": infos["success"][1:],
            "safety_flags": infos["safety_flags"][1:],
            "safety_cost": infos["safety_cost"][1:],
            "safety_reasons": list(infos["safety_reasons"][1:]),
            "stamp_ns": infos["stamp_ns"][1:],
            "true_next_achieved_goal": infos["true_achieved_goal"][1:] if "true_achieved_goal" in infos else None,
        }
        out.append(rebuild_episode(path, prov, {k: _plain(v) for k, v in ours.items()}, fields))
    return out, prov


def _plain(value: Any) -> Any:
    """HDF5 attributes come back as numpy scalars or bytes."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value


