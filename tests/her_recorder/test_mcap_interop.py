"""foxglove's ``mcap`` reader, strict (CRCs validated), reads our clean and recovered files.

``mcap`` is a dependency (mcapscan reads torn files with its StreamReader); its
indexed reader, which mcapscan does not use, checks what we and rosbags write.
"""

from __future__ import annotations

from pathlib import Path

import mcap.reader as mcap_reader
import mcap.stream_reader as mcap_stream
import pytest
from her_recorder_testlib import record_session

from her_recorder import BagFormatError, read_episodes, recover_bag


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_clean_and_recovered_files_pass_a_strict_reader(tmp_path: Path, compression: str) -> None:
    record_session(tmp_path / "s", n_episodes=4, fsync=False, compression=compression)
    bag = tmp_path / "s" / "bag_0000"
    mcap = bag / "bag_0000.mcap"
    counts = []
    for recovered in (False, True):
        if recovered:
            data = mcap.read_bytes()
            (bag / "metadata.yaml").unlink()
            mcap.write_bytes(data[: len(data) // 2])
            recover_bag(bag)
        with mcap.open("rb") as fh:
            reader = mcap_reader.make_reader(fh, validate_crcs=True)
            summary = reader.get_summary()
            n = sum(1 for _ in reader.iter_messages())
            assert summary.statistics.message_count == n
            counts.append(n)
        with mcap.open("rb") as fh:
            assert sum(1 for _ in mcap_stream.StreamReader(fh, validate_crcs=True).records) > n
    assert 0 < counts[1] <= counts[0]


def test_a_missing_decompressor_is_an_error_not_a_lost_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mcap installed without its zstandard dependency must not read zstd chunks as corrupt."""
    record_session(tmp_path / "s", n_episodes=2, fsync=False, compression="zstd")
    bag = tmp_path / "s" / "bag_0000"
    (bag / "metadata.yaml").unlink()  # read by the tolerant scan
    monkeypatch.setattr(mcap_stream, "zstandard", None)
    with pytest.raises(BagFormatError, match="zstd-compressed .* pip install lz4 zstandard"):
        read_episodes(tmp_path / "s", log_summary=False)
