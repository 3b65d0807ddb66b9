"""The one place ``her_recorder`` reaches into rosbags internals: durable MCAP writing.

rosbags' public :class:`~rosbags.rosbag2.Writer` keeps the current MCAP chunk in
memory (up to 1 MiB) and writes the summary and ``metadata.yaml`` only on
close, so a killed process would lose every message since the last full chunk.
The recorder makes each episode durable at its END by closing the chunk early
and flushing the file, and it writes its own MCAP Metadata record right after
the header so that a bag left by a crash still says what it holds. Neither is
public API; both need the MCAP storage object behind the writer:

* ``Writer.storage`` is a ``rosbags.rosbag2.storage_mcap.McapWriter``;
* ``McapWriter.close_chunk()`` writes the pending chunk and its message indexes;
* ``McapWriter.chunk.bio`` is the pending chunk's buffer (``tell()`` = its size);
* ``McapWriter.bio`` is the open MCAP file (``write``, ``flush``, ``tell``, ``fileno``);
* for :meth:`DurableMcap.write_message`, the bookkeeping ``McapWriter.write`` and
  ``Writer.write`` do per message: ``message_start_time``/``message_end_time`` and
  ``channel_stats`` of the storage, ``chunk.message_start_time``/``message_end_time`` and
  ``chunk.msgs`` (the chunk's message index) of the pending chunk, ``Writer.counts`` and
  ``Writer.min_timestamp``/``max_timestamp`` (metadata.yaml's starting time and duration).

These are pinned to the rosbags version range in ``pyproject.toml``
(``rosbags>=0.10,<0.12``), where they exist with exactly this meaning; a newer
rosbags may rename them, so widen the range only after
``tests/her_recorder/test_rosbags_adapter.py`` passes against it. :func:`open_mcap`
checks them on every open and raises :class:`RosbagsVersionError` (with the fix)
instead of failing half-way through a recording.
"""

from __future__ import annotations

import os
import struct
from importlib.metadata import version
from pathlib import Path

from rosbags.interfaces import Connection
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.storage_mcap import McapWriter

from her_recorder.errors import RecorderError, RosbagsVersionError

PINNED_RANGE = ">=0.10,<0.12"
"""The rosbags versions whose internals this module was checked against (as in pyproject.toml)."""

REQUIRED = ("close_chunk", "chunk", "bio", "channel_stats", "message_start_time", "message_end_time")
"""Attributes of rosbags' McapWriter that :class:`DurableMcap` uses."""
WRITER_REQUIRED = ("counts", "min_timestamp", "max_timestamp")
"""Attributes of rosbags' Writer that :meth:`DurableMcap.write_message` keeps up to date."""


_MESSAGE_HEAD = struct.Struct("<BQHIQQ")
"""An MCAP Message record's opcode (0x05), length, channel id, sequence, log and publish time."""
_CHUNK_LIMIT = 2**20
"""rosbags closes a chunk once its buffer passes 1 MiB (``McapWriter.write``)."""


class DurableMcap:
    """The MCAP storage of an open rosbags Writer, with what episode durability needs."""

    def __init__(self, writer: Writer) -> None:
        storage = writer.storage
        if (
            not isinstance(storage, McapWriter)
            or not all(hasattr(storage, n) for n in REQUIRED)
            or not all(hasattr(writer, n) for n in WRITER_REQUIRED)
        ):
            raise RosbagsVersionError(
                f"rosbags {version('rosbags')}'s MCAP writer has no "
                f"{'/'.join(REQUIRED)} (or its Writer no {'/'.join(WRITER_REQUIRED)}); "
                "her_recorder needs them to make each episode durable. "
                f"Install rosbags{PINNED_RANGE} (pip install 'rosbags{PINNED_RANGE}')."
            )
        self._writer = writer
        self._storage = storage

    def write_message(self, connection: Connection, timestamp: int, data: bytes | memoryview) -> None:
        """``Writer.write`` of an uncompressed-per-message bag, in one record write.

        The same Message record layout, chunk index, statistics and metadata.yaml as rosbags'
        own path, without its per-field ``BytesIO`` writes: the record is packed with one
        ``struct`` call. tests/her_recorder/test_mcap_interop.py records one session through
        this and through rosbags' ``Writer.write`` and compares the two MCAP files and
        metadata.yaml byte for byte.
        ``connection`` must be one this writer added (the recorder only writes its own).
        """
        storage = self._storage
        chunk = storage.chunk
        # The file's, the chunk's and the writer's time bounds as plain compares: min()/max() calls
        # for the six bounds cost 0.7 us per message against 0.07 us inline (timeit, Python 3.11).
        if timestamp < storage.message_start_time:
            storage.message_start_time = timestamp
        if timestamp > storage.message_end_time:
            storage.message_end_time = timestamp
        cid = connection.id
        storage.channel_stats[cid] += 1
        if timestamp < chunk.message_start_time:
            chunk.message_start_time = timestamp
        if timestamp > chunk.message_end_time:
            chunk.message_end_time = timestamp
        bio = chunk.bio
        chunk.msgs[cid].append((timestamp, bio.tell()))
        bio.write(_MESSAGE_HEAD.pack(0x05, 22 + len(data), cid, 0, timestamp, timestamp))
        bio.write(data)
        writer = self._writer
        writer.counts[cid] += 1
        if timestamp < writer.min_timestamp:
            writer.min_timestamp = timestamp
        if timestamp > writer.max_timestamp:
            writer.max_timestamp = timestamp
        if bio.tell() > _CHUNK_LIMIT:
            storage.close_chunk()

    def append_record(self, record: bytes) -> None:
        """Write a complete MCAP record to the file directly (outside any chunk)."""
        self._storage.bio.write(record)

    @property
    def pending_bytes(self) -> int:
        """Bytes of messages written to the chunk in memory, not yet to the file."""
        return int(self._storage.chunk.bio.tell())

    @property
    def size_bytes(self) -> int:
        """Bytes in the file plus the pending chunk."""
        return int(self._storage.bio.tell()) + self.pending_bytes

    def sync(self, *, fsync: bool) -> None:
        """Close the pending chunk (if any) and flush the file to the OS; ``fsync`` it too."""
        storage = self._storage
        if storage.chunk.bio.tell():
            storage.close_chunk()
        storage.bio.flush()
        if fsync:
            os.fsync(storage.bio.fileno())


    def abandon(self) -> None:
        """Close the file without writing the pending chunk or the summary (after a failed
        write): what reached the disk stays, for ``her bag recover``."""
        try:
            self._storage.bio.close()  # flushes what the OS buffer holds; may fail again
        except OSError:
            pass


def open_mcap(path: Path, *, zstd: bool) -> tuple[Writer, DurableMcap]:
    """Create and open a rosbag2 (version 9) MCAP bag at ``path``; return its writer and storage.

    Raises:
        RecorderError: ``path`` exists already or cannot be created.
        RosbagsVersionError: the installed rosbags lacks the internals above.
    """
    try:
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        if zstd:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        writer.open()
    except WriterError as exc:
        raise RecorderError(
            f"cannot create bag {path}: {exc}. Record into a new session directory, or "
            "pass resume=True to continue this one in a new bag."
        ) from None
    try:
        return writer, DurableMcap(writer)
    except RosbagsVersionError:
        writer.abort()
        raise
