"""The rosbags internals behind rosbags_adapter exist in the installed rosbags and do what we need."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.specifiers import SpecifierSet

from her_recorder import interfaces, typestore
from her_recorder.errors import RecorderError, RosbagsVersionError
from her_recorder.mcapscan import metadata_record, scan_mcap
from her_recorder.rosbags_adapter import PINNED_RANGE, DurableMcap, open_mcap

REPO = Path(__file__).resolve().parents[2]


def test_the_pinned_range_is_pyprojects_and_holds_the_installed_rosbags() -> None:
    (spec,) = re.findall(
        r'^\s*"rosbags([<>=!~][^"]*)"', (REPO / "pyproject.toml").read_text(), re.M
    )
    assert SpecifierSet(spec) == SpecifierSet(PINNED_RANGE)
    assert version("rosbags") in SpecifierSet(PINNED_RANGE)


@pytest.mark.parametrize("zstd", [False, True])
def test_sync_makes_the_pending_chunk_durable_without_closing(tmp_path: Path, zstd: bool) -> None:
    writer, storage = open_mcap(tmp_path / "bag", zstd=zstd)
    try:
        storage.append_record(metadata_record("her_recorder", {"her.task": "reach"}))
        conn = writer.add_connection(
            interfaces.TOPIC_EPISODE, interfaces.EVENT_TYPE, typestore=typestore()
        )
        assert storage.pending_bytes > 0  # the schema and channel records wait in the chunk
        before = storage.size_bytes
        writer.write(conn, 1, b"\x00\x01\x00\x00" + bytes(8))
        assert storage.size_bytes > before and storage.pending_bytes > 0
        storage.sync(fsync=True)
        assert storage.pending_bytes == 0
        # The file is not closed (no summary), yet every record written so far is on disk.
        scan = scan_mcap(tmp_path / "bag" / "bag.mcap")
        assert scan.message_count == 1 and len(scan.chunks) == 1 and not scan.has_footer
        assert scan.chunks[0].compression == ("zstd" if zstd else "")
        assert scan.metadata["her_recorder"] == {"her.task": "reach"}
        assert scan.stop_reason == ""
        assert storage.size_bytes == scan.size
    finally:
        writer.close()


def test_a_rosbags_without_the_internals_is_a_clear_error() -> None:
    with pytest.raises(RosbagsVersionError, match=re.escape(f"rosbags{PINNED_RANGE}")):
        DurableMcap(SimpleNamespace(storage=object()))  # type: ignore[arg-type]


def test_an_existing_bag_directory_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "bag").mkdir()
    with pytest.raises(RecorderError, match="resume=True"):
        open_mcap(tmp_path / "bag", zstd=False)
