"""An independent MCAP reader (foxglove's ``mcap``, if installed) reads our files.

Not a dependency: the test is skipped where ``mcap`` is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from her_recorder_testlib import record_session

from her_recorder import recover_bag

mcap_reader = pytest.importorskip("mcap.reader")
mcap_stream = pytest.importorskip("mcap.stream_reader")


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
