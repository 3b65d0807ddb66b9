"""Numbered artefact versions: what a continuous learner publishes and a running arm follows.

Layout of a versions directory (``her learn --out RUN`` writes ``RUN/versions``)::

    versions/
      v0001/            a policy artefact (policy.json, actor.npz) ...
        episodes.json   ... and the episodes that trained it: [[session, bag, episode_id], ...]
      v0002/
      LATEST            the newest complete version's name, replaced atomically

A version directory is written under a temporary name and renamed into place, then
``LATEST`` is replaced (write + rename), so a reader never sees a half-written version.
:class:`VersionFollower` is what the control loop and the policy node use: it reports a
newer version than the one running, and the caller checks it fits before swapping it in
(between episodes, never mid-episode).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from her_policy.errors import ArtefactError

LATEST_FILE = "LATEST"
EPISODES_FILE = "episodes.json"
_NAME = re.compile(r"^v(\d{4,})$")

EpisodeKey = tuple[str, str, int]
"""(recording session id, bag directory name, episode id): one recorded episode."""


def version_name(number: int) -> str:
    return f"v{number:04d}"


def version_number(name: str) -> int | None:
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_version(
    versions: Path, number: int, artefact: Path, episodes: Sequence[EpisodeKey]
) -> Path:
    """Move the artefact directory ``artefact`` into place as version ``number``.

    ``episodes`` are the episodes that trained it (all of them, not only the new ones);
    they are written beside the artefact before it becomes visible.
    """
    versions.mkdir(parents=True, exist_ok=True)
    final = versions / version_name(number)
    if final.exists():
        raise ArtefactError(f"{final} already exists: versions are never overwritten")
    (artefact / EPISODES_FILE).write_text(json.dumps([list(e) for e in episodes]) + "\n")
    staging = versions / f".{final.name}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.move(str(artefact), staging)
    os.replace(staging, final)
    latest_tmp = versions / f".{LATEST_FILE}.tmp"
    latest_tmp.write_text(final.name + "\n")
    os.replace(latest_tmp, versions / LATEST_FILE)
    _fsync_dir(versions)
    return final


VERSIONS_DIR = "versions"
"""Where a continuous learner's run directory (``her learn --out RUN``) keeps its versions."""


def versions_dir(path: Path) -> Path:
    """The versions directory of a learner's run ``path`` (``RUN/versions``), or ``path`` itself
    when it is one already (it holds versions, or a ``LATEST`` pointer, or is named so)."""
    path = Path(path)
    if path.name == VERSIONS_DIR or (path / LATEST_FILE).exists() or published(path):
        return path
    return path / VERSIONS_DIR


def published(versions: Path) -> list[int]:
    """Numbers of the complete versions in ``versions``, ascending."""
    if not versions.is_dir():
        return []
    numbers = (version_number(p.name) for p in versions.iterdir() if p.is_dir())
    return sorted(n for n in numbers if n is not None)


def latest_version(versions: Path) -> Path | None:
    """The newest complete version (``LATEST``), or None before the first one."""
    pointer = versions / LATEST_FILE
    try:
        name = pointer.read_text().strip()
    except OSError:
        numbers = published(versions)
        return versions / version_name(numbers[-1]) if numbers else None
    path = versions / name
    return path if version_number(name) is not None and path.is_dir() else None


def trained_on(version: Path) -> list[EpisodeKey]:
    """The episodes a version names as its training data."""
    try:
        data = json.loads((version / EPISODES_FILE).read_text())
        return [(str(s), str(b), int(e)) for s, b, e in data]
    except (OSError, ValueError, TypeError) as exc:
        raise ArtefactError(f"{version}: {EPISODES_FILE} missing or malformed ({exc})") from None


@dataclass
class VersionFollower:
    """Tells a running policy when a newer version than its own has been published."""

    versions: Path
    current: int = 0
    """The version running now (0: none from this directory)."""
    refused: int = 0
    """The newest version found unfit; not offered again."""

    def newer(self) -> Path | None:
        """The newest published version after the current (and not refused) one, or None."""
        path = latest_version(self.versions)
        if path is None:
            return None
        number = version_number(path.name) or 0
        if number <= max(self.current, self.refused):
            return None
        return path

    def accept(self, version: Path) -> None:
        self.current = version_number(version.name) or self.current

    def refuse(self, version: Path) -> None:
        self.refused = version_number(version.name) or self.refused
