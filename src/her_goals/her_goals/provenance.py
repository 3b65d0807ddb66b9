"""Hashes that make every number traceable (ARCHITECTURE.md, rule 6).

The policy artefact writes them and the audit checks them; both call these, so
a report can only name an artefact whose metadata hashes the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from her_goals.errors import HerError


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metadata_hash(metadata: Mapping[str, Any], *, exclude: str = "artefact_hash") -> str:
    """Hex sha256 of the canonical JSON of ``metadata`` without its own hash field."""
    body = {k: v for k, v in metadata.items() if k != exclude}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


# -- the policy artefact's metadata: one set of field names for writer and readers ---------

ARTEFACT_FORMAT = "her-ros-policy/1"
"""``policy.json["format"]`` of a policy artefact."""
METADATA_FILE = "policy.json"
"""The artefact's metadata file; its ``artefact_hash`` covers everything else in it."""
ACTOR_FILE = "actor.npz"
"""The artefact's weights; ``policy.json["files"]`` holds its sha256."""


TRAINING_DATA_FILE = "training_data.npz"
"""The artefact's digest of what trained it: every training episode's requested goal, digest,
split and source (``her audit --artefact`` holds an evaluation against it)."""


def episode_digest(observation: Any, action: Any, desired_goal: Any) -> int:
    """A 63-bit digest of one episode's observations, actions and requested goal (float64
    bytes): the same episode read from the same bag has the same digest wherever it is read."""
    h = hashlib.sha256()
    for arr in (observation, action, desired_goal):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return int.from_bytes(h.digest()[:8], "little") >> 1


@dataclass(frozen=True)
class TrainingData:
    """What an artefact learned from, one row per episode (:data:`TRAINING_DATA_FILE`)."""

    goals: NDArray[np.float64]
    """(N, goal_dim): each episode's requested goal (never a relabelled one)."""
    digests: NDArray[np.int64]
    """(N,): :func:`episode_digest` of each episode."""
    splits: NDArray[np.str_]
    """(N,): the split each episode was recorded as (``train``; ``eval`` only when allowed)."""
    sources: NDArray[np.str_]
    """(N,): ``experience`` (the learner's own), ``demo`` (demonstrations) or ``bags`` (offline)."""

    def save(self, path: str | Path) -> None:
        np.savez(Path(path), goals=self.goals, digests=self.digests, splits=self.splits, sources=self.sources)

    @classmethod
    def load(cls, path: str | Path) -> TrainingData:
        """Read a training-data file; a damaged or foreign one is an error naming it."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                return cls(
                    goals=np.asarray(data["goals"], np.float64),
                    digests=np.asarray(data["digests"], np.int64),
                    splits=np.asarray(data["splits"]).astype(str),
                    sources=np.asarray(data["sources"]).astype(str),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise ArtefactMetadataError(
                f"{path} is not an artefact's training-data file ({exc}); use the artefact as her train wrote it"
            ) from None

    def summary(self) -> dict[str, Any]:
        """Counts by split and source, for the artefact's provenance."""
        return {
            "episodes": int(self.digests.size),
            "splits": {str(k): int(v) for k, v in zip(*np.unique(self.splits, return_counts=True))},
            "sources": {str(k): int(v) for k, v in zip(*np.unique(self.sources, return_counts=True))},
        }


class ArtefactMetadataError(HerError, ValueError):
    """A ``policy.json`` that is missing, not JSON, of another format, or edited after writing."""


def metadata_path(path: str | Path) -> Path:
    """``policy.json`` of an artefact directory (or the file itself)."""
    path = Path(path)
    return path if path.name == METADATA_FILE and not path.is_dir() else path / METADATA_FILE


def read_policy_metadata(path: str | Path) -> dict[str, Any]:
    """The verified ``policy.json`` of an artefact (directory or file): format and hash checked.

    The trainer writes it (``her_policy.artefact.store``); the loader, the policy node and the
    audit all read it through this one function, so a report can only name an artefact whose
    metadata hashes the way it was written.
    """
    meta_path = metadata_path(path)
    if not meta_path.is_file():
        raise ArtefactMetadataError(
            f"{path} is not a policy artefact: {METADATA_FILE} is missing; pass the directory "
            "her train wrote (her train --out DIR writes DIR/policy)"
        )
    try:
        metadata = json.loads(meta_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtefactMetadataError(
            f"{meta_path} cannot be read as JSON ({exc}); it is damaged: re-export the policy with her train"
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != ARTEFACT_FORMAT:
        got = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise ArtefactMetadataError(
            f"{meta_path}: unknown artefact format {got!r}; expected {ARTEFACT_FORMAT!r} "
            "(a policy artefact her train wrote)"
        )
    expected = metadata_hash(metadata)
    if metadata.get("artefact_hash") != expected:
        raise ArtefactMetadataError(
            f"{meta_path} was modified after it was written (artefact hash "
            f"{metadata.get('artefact_hash')} != {expected}); use the artefact as her train wrote it"
        )
    return metadata


def verify_artefact_files(path: str | Path, metadata: dict[str, Any]) -> None:
    """Check every file ``policy.json`` lists (``actor.npz``) against its recorded sha256."""
    root = metadata_path(path).parent
    files = metadata.get("files") or {}
    if not isinstance(files, dict):
        raise ArtefactMetadataError(f"{root / METADATA_FILE}: 'files' is malformed; not an artefact her train wrote")
    for name, digest in files.items():
        file = root / str(name)
        if not file.is_file():
            raise ArtefactMetadataError(f"artefact {root} lacks {name}; re-export the policy with her train")
        if sha256_file(file) != digest:
            raise ArtefactMetadataError(
                f"{file} does not match the hash recorded in {METADATA_FILE} (truncated or edited); "
                "use the artefact as her train wrote it"
            )
