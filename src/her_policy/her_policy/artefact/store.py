"""Policy artefact: one directory that is everything needed to run and trace a policy.

Layout::

    ARTEFACT/
      policy.json   metadata: format, algorithm, observation layout, goal-space spec,
                    action scaling, normaliser statistics, provenance (config and its
                    hash, seeds, versions, data hashes), file hashes, artefact hash
      actor.npz     deterministic actor weights and normaliser arrays
                    (``her_policy.artefact.weights.ActorWeights``, format her_policy.actor/1)

Loading needs numpy and her_goals only: no torch, no training code. The artefact
hash is the sha256 of ``policy.json``'s canonical JSON without the hash itself;
it covers the weights through their file hash, so any edit is detected on load.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.config import config_hash, to_plain
from her_goals.errors import HerError
from her_goals.provenance import (
    ACTOR_FILE,
    ARTEFACT_FORMAT,
    METADATA_FILE,
    TRAINING_DATA_FILE,
    ArtefactMetadataError,
    TrainingData,
    metadata_hash,
    read_policy_metadata,
    sha256_file,
)
from her_goals.spaces import GoalSpace
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.numpy_actor import DeterministicPolicy
from her_policy.artefact.weights import ActorWeights
from her_policy.errors import ActorLoadError, ArtefactError, GoalSpaceMismatchError

_VERSIONED = (
    "her-ros",
    "numpy",
    "torch",
    "gymnasium",
    "gymnasium-robotics",
    "mujoco",
    "stable-baselines3",
)


def versions() -> dict[str, str]:
    """Versions of Python and the packages a policy's numbers depend on."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def save_artefact(
    path: str | Path,
    *,
    snapshot: ActorWeights,
    layout: PolicyLayout,
    goal_space: GoalSpace,
    algorithm: str,
    config: Any,
    seeds: Mapping[str, Any],
    data_hashes: Mapping[str, str],
    provenance: Mapping[str, Any] | None = None,
    training_data: TrainingData | None = None,
) -> Path:
    """Write a policy artefact directory at ``path``; returns the directory.

    The directory is written beside ``path`` under a temporary name and renamed into place,
    so a crash or a full disk never leaves a partial artefact where a good one was (the old
    one stays until the new one is complete). ``training_data`` (what trained the policy,
    episode by episode) goes into :data:`TRAINING_DATA_FILE` for the audit.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    out = final.with_name(f".{final.name}.writing-{os.getpid()}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    try:
        _write_artefact(out, snapshot, layout, goal_space, algorithm, config, seeds, data_hashes, provenance, training_data)
        for f in out.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(out, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_artefact(
    out: Path,
    snapshot: ActorWeights,
    layout: PolicyLayout,
    goal_space: GoalSpace,
    algorithm: str,
    config: Any,
    seeds: Mapping[str, Any],
    data_hashes: Mapping[str, str],
    provenance: Mapping[str, Any] | None,
    training_data: TrainingData | None,
) -> None:
    det = snapshot.deterministic()
    low, high = np.asarray(layout.action_low), np.asarray(layout.action_high)
    symmetric = bool(np.allclose(low, -high) and np.allclose(high, high[0]))
    # A bare actor.npz acts in env units by itself when the range is symmetric.
    max_action = float(high[0]) if symmetric else 1.0
    actor_path = out / ACTOR_FILE
    dataclasses.replace(det, goal_space=goal_space.name, max_action=max_action).save(actor_path)
    plain_config = to_plain(config)
    metadata: dict[str, Any] = {
        "format": ARTEFACT_FORMAT,
        "algorithm": algorithm,
        "goal_space": goal_space.spec(),
        "observation_layout": layout.spec(),
        "action": {
            "low": list(layout.action_low),
            "high": list(layout.action_high),
            "scaling": "env_action = low + (tanh_output + 1) / 2 * (high - low)",
            "symmetric_max_action": max_action if symmetric else None,
        },
        "actor": {
            "hidden": [int(w.shape[1]) for w in det.weights[:-1]],
            "activation": det.hidden_activation,
            "output": "tanh",
            "trained_head": snapshot.head,
        },
        "normaliser": {
            "obs_mean": det.obs_mean.tolist(),
            "obs_std": det.obs_std.tolist(),
            "goal_mean": det.goal_mean.tolist(),
            "goal_std": det.goal_std.tolist(),
            "clip_obs": det.clip_obs,
            "norm_clip": det.norm_clip,
            "formula": "clip((clip(x, +-clip_obs) - mean) / std, +-norm_clip), obs and goal separately",
        },
        "provenance": {
            "config": plain_config,
            "config_hash": config_hash(plain_config),
            "seeds": to_plain(dict(seeds)),
            "versions": versions(),
            "data_hashes": dict(data_hashes),
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **to_plain(dict(provenance or {})),
        },
        "files": {ACTOR_FILE: sha256_file(actor_path)},
    }
    if training_data is not None:
        training_data.save(out / TRAINING_DATA_FILE)
        metadata["files"][TRAINING_DATA_FILE] = sha256_file(out / TRAINING_DATA_FILE)
        metadata["provenance"]["training_data"] = training_data.summary()
    metadata["artefact_hash"] = metadata_hash(metadata)
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")


@dataclass(frozen=True)
class PolicyArtefact:
    """A loaded policy: acts deterministically and says where it came from."""

    path: Path
    metadata: dict[str, Any]
    weights: ActorWeights
    """The deterministic actor in network units (max_action 1; the layout maps to env units)."""
    layout: PolicyLayout
    goal_space: GoalSpace

    @property
    def artefact_hash(self) -> str:
        return str(self.metadata["artefact_hash"])

    @property
    def algorithm(self) -> str:
        return str(self.metadata["algorithm"])

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.metadata["provenance"])

    def policy(self) -> DeterministicPolicy:
        return DeterministicPolicy(self.weights, self.layout, self.goal_space)

    def training_data(self) -> TrainingData | None:
        """What trained this policy, episode by episode (None: an artefact written before
        training data was recorded)."""
        digest = self.metadata.get("files", {}).get(TRAINING_DATA_FILE)
        if digest is None:
            return None
        path = self.path / TRAINING_DATA_FILE
        if not path.is_file() or sha256_file(path) != digest:
            raise ArtefactError(f"{path} is missing or does not match the hash in {METADATA_FILE}")
        return TrainingData.load(path)

    def act_batch(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        """(N, action_dim) env actions for (N, obs) observations and (N, goal) goals."""
        return self.policy().act_batch(observation, desired_goal)

    def act(self, observation: ArrayLike, desired_goal: ArrayLike) -> NDArray[np.float64]:
        """One env action for one observation and desired goal."""
        return self.policy().act(observation, desired_goal)


def _check_goal_space(found: GoalSpace, expect: GoalSpace | str | None, where: Path) -> None:
    if expect is None:
        return
    if isinstance(expect, str):
        if found.name != expect:
            raise GoalSpaceMismatchError(
                f"artefact {where} was trained for goal space {found.name!r} "
                f"({found.spec()}), but goal space {expect!r} was expected"
            )
        return
    if not found.same_as(expect):
        raise GoalSpaceMismatchError(
            f"artefact {where} was trained for goal space {found.spec()}, but it is being "
            f"used with goal space {expect.spec()}; rewards and success differ between them"
        )


def load_artefact(
    path: str | Path, *, expect_goal_space: GoalSpace | str | None = None
) -> PolicyArtefact:
    """Load and verify an artefact directory (or its policy.json) written by :func:`save_artefact`.

    Raises :class:`ArtefactError` for a missing, edited or unknown artefact, and
    :class:`GoalSpaceMismatchError` (naming both spaces) when ``expect_goal_space`` differs.
    """
    root = Path(path)
    if root.is_file() and root.name == METADATA_FILE:
        root = root.parent
    meta_path = root / METADATA_FILE
    try:
        metadata = read_policy_metadata(root)
    except ArtefactMetadataError as exc:
        raise ArtefactError(str(exc)) from None
    try:
        goal_space = GoalSpace.from_spec(metadata["goal_space"])
    except (HerError, KeyError) as exc:
        raise ArtefactError(f"{meta_path}: bad goal-space spec: {exc}") from exc
    _check_goal_space(goal_space, expect_goal_space, root)
    files = metadata.get("files", {})
    actor_path = root / ACTOR_FILE
    if not actor_path.is_file():
        raise ArtefactError(f"artefact {root} lacks {ACTOR_FILE}")
    if files.get(ACTOR_FILE) != sha256_file(actor_path):
        raise ArtefactError(f"{actor_path} does not match the hash recorded in {METADATA_FILE}")
    layout = PolicyLayout.from_spec(metadata["observation_layout"])
    try:
        weights = dataclasses.replace(ActorWeights.load(actor_path), max_action=1.0)
    except ActorLoadError as exc:
        raise ArtefactError(f"artefact {root}: {exc}") from exc
    if weights.obs_dim != layout.observation_dim or weights.action_dim != layout.action_dim:
        raise ArtefactError(
            f"artefact {root}: actor sizes (obs {weights.obs_dim}, action "
            f"{weights.action_dim}) disagree with its layout ({layout.observation_dim}, {layout.action_dim})"
        )
    return PolicyArtefact(root, metadata, weights, layout, goal_space)
