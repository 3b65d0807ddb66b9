"""Hashes that make every number traceable (ARCHITECTURE.md, rule 6).

The policy artefact writes them and the audit checks them; both call these, so
a report can only name an artefact whose metadata hashes the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


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
