"""Reading a torn MCAP file up to its last intact record, and writing the summary recovery appends.

The rosbags MCAP reader needs the summary that a writer only writes on close,
so it refuses the file a killed recorder leaves behind. :class:`McapScanner`
reads such a file from the start with the ``mcap`` library's
:class:`mcap.stream_reader.StreamReader` and stops at the first record that is
cut off or malformed: that is where the crash happened, and everything before
it is intact and usable. Two things are ours around the library's reader:

* the file it reads through (:class:`_GuardedFile`) raises on a read past the
  end of the file, so a torn record stops the scan instead of being read short,
  refuses an opcode MCAP does not define (a zero-filled tail), and gives each
  record's file offset, which recovery needs to cut the file and to index its
  chunks;
* each chunk is validated whole (decompression, size, CRC when set, every inner
  record) before any of its messages is yielded, and a complete but corrupt
  chunk is skipped rather than ending the scan.

Measured against the hand-written record scanner this replaced (same
``ScanResult``; both swapped into ``read_episodes`` and ``recover_bag``):

* files truncated at 1436 offsets (a session of 6 episodes x 8 steps with
  /joint_states, uncompressed 48640 bytes and zstd 27121 bytes, cut at every
  END chunk boundary -1/0/+1 byte and at 700 random offsets each): both read
  4713 of the 4713 complete episodes before the cut, unrecovered and after
  ``her bag recover``, with no error, and rosbags read all 1436 recovered files;
* the same files with the cut-off tail zero-filled (640 files, as after a power
  loss): both read 2009 of 2009 unrecovered and 1998 after recovery; the same
  52 files end in an error with both (a record complete by length but zeroed:
  the HER metadata record no longer parses, or recovery keeps a zeroed chunk
  that rosbags then refuses), a weakness of recovery, not of the reader;
* SIGKILL at random moments (the harness of tests/her_recorder/test_crash.py,
  48 kills, 166 episodes reported ended, 37 bags left unclosed): both lost 0
  and flagged the same 16 in-progress episodes incomplete;
* the price is speed: 64 000 messages/s against 185 000 (a 5.8 MB file of
  20 600 messages in 400 chunks: 322 ms against 112 ms), paid only by bags
  that were not closed cleanly and by their recovery.

test_recover.py (its slow cases cut at every END boundary) and test_crash.py
keep these properties tested.

The second half of the module writes what a clean close would have written
(schemas, channels, chunk and metadata indexes, statistics, footer) after the
last intact record; :mod:`her_recorder.recover` uses it.

Records (MCAP spec, little-endian) this module reads or writes::

    0x01 Header        profile str, library str
    0x03 Schema        id u16, name str, encoding str, data bytes(u32)
    0x04 Channel       id u16, schema_id u16, topic str, message_encoding str, metadata map
    0x05 Message       channel_id u16, sequence u32, log_time u64, publish_time u64, data
    0x06 Chunk         start u64, end u64, uncompressed_size u64, crc u32, compression str,
                       records bytes(u64)
    0x07 MessageIndex  channel_id u16, array<(log_time u64, offset u64)>
    0x0C Metadata      name str, map<str, str>
    0x0F DataEnd       crc u32        (the summary section follows)
    0x02 Footer        summary_start u64, summary_offset_start u64, summary_crc u32

Strings are ``u32 length + UTF-8``; maps and arrays are ``u32 byte length + items``.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from mcap import records as mcap_records
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError, UnsupportedCompressionError
from mcap.stream_reader import StreamReader, get_chunk_data_stream

from her_recorder.errors import BagFormatError

MAGIC = b"\x89MCAP0\r\n"
FOOTER_SIZE = 1 + 8 + 20 + len(MAGIC)

OP_HEADER = 0x01
OP_FOOTER = 0x02
OP_SCHEMA = 0x03
OP_CHANNEL = 0x04
OP_MESSAGE = 0x05
OP_CHUNK = 0x06
OP_MESSAGE_INDEX = 0x07
OP_CHUNK_INDEX = 0x08
OP_STATISTICS = 0x0B
OP_METADATA = 0x0C
OP_METADATA_INDEX = 0x0D
OP_SUMMARY_OFFSET = 0x0E
OP_DATA_END = 0x0F
_KNOWN_OPS = frozenset(range(0x01, 0x10))

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_REC = struct.Struct("<BQ")
_MSG_HEAD = 2 + 4 + 8 + 8
"""Bytes of a Message record before its data."""


class McapCorrupt(BagFormatError):
    """A record whose content does not parse (caught by the scanner, never raised out of it)."""


class _Torn(Exception):
    """A read past the end of the file: the record was cut off."""


@dataclass(frozen=True)
class Schema:
    """An MCAP schema record: one message type and its definition text."""

    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(frozen=True)
class Channel:
    """An MCAP channel record: one topic."""

    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str]
    """The channel's metadata (``offered_qos_profiles`` for rosbag2)."""

    def metadata_map(self) -> dict[str, str]:
        """The channel's metadata as a dict (``offered_qos_profiles`` for rosbag2)."""
        return dict(self.metadata)

    @classmethod
    def of(cls, record: mcap_records.Channel) -> Channel:
        return cls(
            record.id,
            record.schema_id,
            record.topic,
            record.message_encoding,
            dict(record.metadata),
        )


@dataclass
class ChunkInfo:
    """One intact chunk: where it is and which messages it holds."""

    start: int
    """File offset of the chunk record's opcode."""
    end: int
    """File offset just after the chunk record."""
    message_start_time: int
    message_end_time: int
    compression: str
    compressed_size: int
    uncompressed_size: int
    message_index: dict[int, list[tuple[int, int]]]
    """Channel id -> [(log_time_ns, offset in the uncompressed records)], in record order."""
    index_offsets: dict[int, int] = field(default_factory=dict)
    """Channel id -> file offset of its MessageIndex record, for those found intact."""
    index_end: int = 0
    """File offset just after the last intact MessageIndex record of this chunk."""

    @property
    def indexes_complete(self) -> bool:
        """True when a MessageIndex record was found for every channel in the chunk."""
        return set(self.index_offsets) == set(self.message_index)


@dataclass
class ScanResult:
    """What a scan found in one MCAP file, and where and why it stopped."""

    path: Path
    size: int
    profile: str = ""
    library: str = ""
    schemas: dict[int, Schema] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    chunks: list[ChunkInfo] = field(default_factory=list)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    channel_counts: dict[int, int] = field(default_factory=dict)
    message_start_time: int = 2**63 - 1
    message_end_time: int = 0
    data_end: int = 0
    """Offset just after the last intact record of the data section."""
    has_data_end: bool = False
    """A DataEnd record was found (the writer got as far as closing)."""
    has_footer: bool = False
    """The file ends with a valid footer and magic (it was closed cleanly)."""
    stop_reason: str = ""
    """Why the scan stopped before the end of the data section; empty if it did not."""
    skipped: list[str] = field(default_factory=list)
    """Complete records whose content was corrupt and that were skipped."""

    @property
    def message_count(self) -> int:
        """Number of intact messages."""
        return sum(self.channel_counts.values())

    @property
    def truncated_bytes(self) -> int:
        """Bytes after the last intact record that are not a valid summary."""
        return 0 if self.has_footer else self.size - self.data_end


def has_valid_footer(path: Path) -> bool:
    """True when ``path`` ends with an MCAP footer record and the closing magic."""
    try:
        with path.open("rb") as bio:
            size = bio.seek(0, 2)
            if size < len(MAGIC) + FOOTER_SIZE:
                return False
            bio.seek(0)
            if bio.read(len(MAGIC)) != MAGIC:
                return False
            bio.seek(size - FOOTER_SIZE)
            tail = bio.read(FOOTER_SIZE)
    except OSError:
        return False
    return tail[:9] == b"\x02\x14\x00\x00\x00\x00\x00\x00\x00" and tail[-8:] == MAGIC


class _GuardedFile:
    """The file as StreamReader reads it: one record at a time, never short.

    Call :meth:`begin_record` at each record boundary. The one-byte read there
    (the opcode) refuses an opcode MCAP does not define; the eight-byte read
    after it (the length) refuses a record that runs past the end of the file
    (:class:`_Torn`) before its body is read; any later read past the record's
    declared end is refused as malformed. So a torn or malformed record stops
    the scan where it starts instead of being read short or misaligned.
    """

    def __init__(self, bio: BinaryIO, size: int) -> None:
        self._bio = bio
        self.size = size
        self.record_start = bio.tell()
        self.op: int | None = None
        self.record_end: int | None = None

    def begin_record(self) -> int:
        """Mark the current offset as a record's start; return it."""
        self.record_start = self._bio.tell()
        self.op = self.record_end = None
        return self.record_start

    def tell(self) -> int:
        return self._bio.tell()

    def read(self, n: int = -1) -> bytes:
        at = self._bio.tell()
        if n < 0 or n > self.size - at:
            raise _Torn(f"{n} bytes asked at offset {at}, {self.size - at} left")
        if self.record_end is not None and at + n > self.record_end:
            raise McapCorrupt("record content runs past its declared length")
        data = self._bio.read(n)
        if at == self.record_start and n == 1:
            self.op = data[0]
            if self.op not in _KNOWN_OPS:
                raise McapCorrupt(f"invalid record opcode 0x{self.op:02x}")
        elif at == self.record_start + 1 and n == 8 and self.op is not None:
            self.record_end = at + 8 + _U64.unpack(data)[0]
            if self.record_end > self.size:
                raise _Torn("record runs past the end of the file")
        return data


def _stop_reason(bio: BinaryIO, pos: int, size: int, exc: BaseException) -> str:
    """Why the record at ``pos`` ended the scan, from its header."""
    bio.seek(pos)
    head = bio.read(_REC.size)
    if len(head) < _REC.size:
        return f"record header cut off at offset {pos}"
    op, length = _REC.unpack(head)
    if op not in _KNOWN_OPS:
        return f"invalid record opcode 0x{op:02x} at offset {pos}"
    if pos + _REC.size + length > size:
        return (
            f"record 0x{op:02x} at offset {pos} is cut off "
            f"({length} bytes declared, {size - pos - _REC.size} present)"
        )
    return f"record 0x{op:02x} at offset {pos} is malformed: {exc}"


@dataclass
class _ChunkRecords:
    """The inner records of one chunk, read one by one and checked against their lengths."""

    known: set[int]
    """Channel ids defined so far (in the file before the chunk, or in it)."""
    index: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    schemas: list[Schema] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    messages: list[tuple[int, int, bytes]] = field(default_factory=list)
    """(channel id, log time, data) in record order."""

    def read(self, stream: ReadDataStream, usize: int) -> None:
        """Read the record at ``stream``'s position in the ``usize`` bytes of records."""
        offset = stream.count
        if offset + _REC.size > usize:
            raise McapCorrupt("inner record header runs past the chunk")
        op, length = stream.read1(), stream.read8()
        body_end = stream.count + length
        if body_end > usize:
            raise McapCorrupt("inner record runs past the chunk")
        if op == OP_MESSAGE:
            if length < _MSG_HEAD:
                raise McapCorrupt(f"message record of {length} bytes")
            message = mcap_records.Message.read(stream, length)
            if message.channel_id not in self.known:
                raise McapCorrupt(f"message on unknown channel {message.channel_id}")
            self.index.setdefault(message.channel_id, []).append((message.log_time, offset))
            self.messages.append((message.channel_id, message.log_time, message.data))
        elif op == OP_SCHEMA:
            s = mcap_records.Schema.read(stream)
            self.schemas.append(Schema(s.id, s.name, s.encoding, s.data))
        elif op == OP_CHANNEL:
            channel = Channel.of(mcap_records.Channel.read(stream))
            self.channels.append(channel)
            self.known.add(channel.id)
        elif op in _KNOWN_OPS:
            stream.read(length)
        else:
            raise McapCorrupt(f"invalid inner opcode 0x{op:02x}")
        if stream.count != body_end:
            raise McapCorrupt(f"inner record 0x{op:02x} does not fill its declared length")


_SCAN_ERRORS = (_Torn, McapError, McapCorrupt, struct.error, UnicodeDecodeError, ValueError)
"""What reading a torn or malformed record raises (mcap's parsers have no error type of their own)."""


class McapScanner:
    """Scan one MCAP file from the start, tolerating a missing summary or a cut-off end.

    Iterating :meth:`messages` yields ``(channel, log_time_ns, data)`` in file order;
    :attr:`result` is complete once the iteration ends. :func:`scan_mcap` runs a
    scan without keeping message data.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.result = ScanResult(self.path, 0)

    def messages(self, *, keep_data: bool = True) -> Iterator[tuple[Channel, int, bytes]]:
        """Yield every intact message; fill :attr:`result` as a side effect."""
        res = self.result
        with self.path.open("rb") as bio:
            res.size = bio.seek(0, 2)
            bio.seek(0)
            if res.size == 0:
                res.stop_reason = "the file is empty (0 bytes)"
                return
            if bio.read(len(MAGIC)) != MAGIC:
                res.stop_reason = "the file does not start with the MCAP magic"
                return
            res.data_end = len(MAGIC)
            yield from self._records(bio, keep_data)
        res.has_footer = res.has_data_end and has_valid_footer(self.path)

    @staticmethod
    def _stream(guarded: _GuardedFile) -> Iterator[mcap_records.McapRecord]:
        """mcap's reader from the guarded file's position: each record whole, chunks unopened."""
        reader = StreamReader(
            cast(IO[bytes], guarded), skip_magic=True, emit_chunks=True, record_size_limit=None
        )
        return iter(reader.records)

    def _records(self, bio: BinaryIO, keep_data: bool) -> Iterator[tuple[Channel, int, bytes]]:
        res = self.result
        guarded = _GuardedFile(bio, res.size)
        records = self._stream(guarded)
        last_chunk: ChunkInfo | None = None
        while True:
            pos = guarded.begin_record()
            try:
                record = next(records)
            except StopIteration:  # pragma: no cover - the scan stops at DataEnd, before a footer
                return
            except _SCAN_ERRORS as exc:
                end = guarded.record_end
                if pos == res.size:  # a file that ends at a record boundary just ends
                    return
                if guarded.op == OP_CHUNK and end is not None and end <= res.size:
                    # A complete but unreadable chunk: skip it, keep what follows.
                    res.skipped.append(f"chunk at offset {pos}: {exc}")
                    bio.seek(end)
                    records = self._stream(guarded)
                    last_chunk = None
                    res.data_end = end
                    continue
                res.stop_reason = _stop_reason(bio, pos, res.size, exc)
                return
            end = guarded.tell()
            if isinstance(record, mcap_records.DataEnd):
                res.has_data_end = True
                return
            if isinstance(record, mcap_records.MessageIndex):
                self._message_index(record, pos, end, last_chunk)
            elif isinstance(record, mcap_records.Chunk):
                last_chunk = yield from self._chunk(record, pos, end, keep_data)
            else:
                last_chunk = None
                try:
                    yield from self._record(record, pos, keep_data)
                except McapCorrupt as exc:
                    res.stop_reason = (
                        f"record 0x{guarded.op or 0:02x} at offset {pos} is malformed: {exc}"
                    )
                    return
            res.data_end = end

    def _record(
        self, record: mcap_records.McapRecord, pos: int, keep_data: bool
    ) -> Iterator[tuple[Channel, int, bytes]]:
        res = self.result
        if isinstance(record, mcap_records.Header) and pos == len(MAGIC):
            res.profile, res.library = record.profile, record.library
        elif isinstance(record, mcap_records.Schema):
            res.schemas[record.id] = Schema(record.id, record.name, record.encoding, record.data)
        elif isinstance(record, mcap_records.Channel):
            res.channels[record.id] = Channel.of(record)
        elif isinstance(record, mcap_records.Message):
            channel = res.channels.get(record.channel_id)
            if channel is None:
                raise McapCorrupt(f"message on unknown channel {record.channel_id}")
            self._count(record.channel_id, record.log_time)
            yield channel, record.log_time, record.data if keep_data else b""
        elif isinstance(record, mcap_records.Metadata):
            res.metadata[record.name] = dict(record.metadata)

    def _count(self, cid: int, log_time: int) -> None:
        res = self.result
        res.channel_counts[cid] = res.channel_counts.get(cid, 0) + 1
        res.message_start_time = min(res.message_start_time, log_time)
        res.message_end_time = max(res.message_end_time, log_time)

    def _chunk(
        self, chunk: mcap_records.Chunk, pos: int, end: int, keep_data: bool
    ) -> Generator[tuple[Channel, int, bytes], None, ChunkInfo | None]:
        """Yield the messages of a chunk that validates whole; skip a corrupt one."""
        res = self.result
        try:
            info, messages = self._validate_chunk(chunk, pos, end)
        except UnsupportedCompressionError as exc:  # the data is fine, this installation is not
            raise BagFormatError(
                f"{self.path}: the chunk at offset {pos} is {chunk.compression}-compressed and "
                f"cannot be read here ({exc}): pip install lz4 zstandard (mcap's own dependencies)"
            ) from None
        except Exception as exc:  # every decompressor has its own error type
            res.skipped.append(f"chunk at offset {pos}: {exc}")
            return None
        res.chunks.append(info)
        for cid, log_time, data in messages:
            self._count(cid, log_time)
            yield res.channels[cid], log_time, data if keep_data else b""
        return info

    def _validate_chunk(
        self, chunk: mcap_records.Chunk, pos: int, end: int
    ) -> tuple[ChunkInfo, list[tuple[int, int, bytes]]]:
        """Decompress and parse every inner record; register its schemas and channels."""
        res = self.result
        stream, usize = get_chunk_data_stream(chunk, validate_crc=True)
        if usize != chunk.uncompressed_size:
            raise McapCorrupt(
                f"chunk holds {usize} bytes, its header says {chunk.uncompressed_size}"
            )
        inner = _ChunkRecords(set(res.channels))
        while stream.count < usize:
            inner.read(stream, usize)
        for schema in inner.schemas:
            res.schemas[schema.id] = schema
        for channel in inner.channels:
            res.channels[channel.id] = channel
        info = ChunkInfo(
            pos,
            end,
            chunk.message_start_time,
            chunk.message_end_time,
            chunk.compression,
            len(chunk.data),
            chunk.uncompressed_size,
            inner.index,
        )
        info.index_end = end
        return info, inner.messages

    @staticmethod
    def _message_index(
        record: mcap_records.MessageIndex, pos: int, end: int, chunk: ChunkInfo | None
    ) -> None:
        if chunk is None or chunk.index_end != pos:
            return  # not directly after a chunk we indexed: ignore it
        if sorted(record.records) == sorted(chunk.message_index.get(record.channel_id, [])):
            chunk.index_offsets[record.channel_id] = pos
            chunk.index_end = end


def scan_mcap(path: Path) -> ScanResult:
    """Scan ``path`` without keeping message data; see :class:`ScanResult`."""
    scanner = McapScanner(path)
    for _ in scanner.messages(keep_data=False):
        pass
    return scanner.result


# -- writing a summary (used by recovery) -----------------------------------


def _w_str(out: bytearray, text: str) -> None:
    data = text.encode("utf-8")
    out += _U32.pack(len(data)) + data


def _w_bytes(out: bytearray, data: bytes) -> None:
    out += _U32.pack(len(data)) + data


def _record(op: int, body: bytes | bytearray) -> bytes:
    return _REC.pack(op, len(body)) + bytes(body)


def _map(items: dict[str, str]) -> bytes:
    out = bytearray()
    for key, value in items.items():
        _w_str(out, key)
        _w_str(out, value)
    return bytes(out)


def header_record(profile: str, library: str) -> bytes:
    """Serialise a Header record (the first record of every MCAP file)."""
    out = bytearray()
    _w_str(out, profile)
    _w_str(out, library)
    return _record(OP_HEADER, out)


def schema_record(schema: Schema) -> bytes:
    """Serialise a Schema record."""
    out = bytearray(_U16.pack(schema.id))
    _w_str(out, schema.name)
    _w_str(out, schema.encoding)
    _w_bytes(out, schema.data)
    return _record(OP_SCHEMA, out)


def channel_record(channel: Channel) -> bytes:
    """Serialise a Channel record."""
    out = bytearray(struct.pack("<HH", channel.id, channel.schema_id))
    _w_str(out, channel.topic)
    _w_str(out, channel.message_encoding)
    _w_bytes(out, _map(channel.metadata))
    return _record(OP_CHANNEL, out)


def metadata_record(name: str, items: dict[str, str]) -> bytes:
    """Serialise a Metadata record (``name`` and a string map)."""
    out = bytearray()
    _w_str(out, name)
    _w_bytes(out, _map(items))
    return _record(OP_METADATA, out)


def message_index_records(chunk: ChunkInfo, at: int) -> bytes:
    """MessageIndex records for ``chunk`` written at file offset ``at``; updates its offsets."""
    out = bytearray()
    chunk.index_offsets = {}
    for cid, entries in chunk.message_index.items():
        chunk.index_offsets[cid] = at + len(out)
        body = bytearray(_U16.pack(cid))
        body += _U32.pack(16 * len(entries))
        for log_time, offset in entries:
            body += struct.pack("<QQ", log_time, offset)
        out += _record(OP_MESSAGE_INDEX, body)
    chunk.index_end = at + len(out)
    return bytes(out)


def write_summary(bio: BinaryIO, scan: ScanResult, *, rosbag2_metadata: str | None) -> None:
    """Append metadata, DataEnd, summary and footer at ``bio``'s position (end of data)."""
    out = bytearray()
    base = bio.tell()
    metadata_offsets: list[tuple[int, int, str]] = []
    if rosbag2_metadata is not None:
        rec = metadata_record("rosbag2", {"serialized_metadata": rosbag2_metadata})
        metadata_offsets.append((base, len(rec), "rosbag2"))
        out += rec
    out += _record(OP_DATA_END, _U32.pack(0))
    summary_start = base + len(out)
    groups: list[tuple[int, int, int]] = []

    def group(op: int, records: list[bytes]) -> None:
        nonlocal out
        if records:
            start = base + len(out)
            for rec in records:
                out += rec
            groups.append((op, start, base + len(out) - start))

    group(OP_SCHEMA, [schema_record(s) for _, s in sorted(scan.schemas.items())])
    group(OP_CHANNEL, [channel_record(c) for _, c in sorted(scan.channels.items())])
    chunk_indexes = []
    for chunk in scan.chunks:
        body = bytearray(
            struct.pack(
                "<QQQQ",
                chunk.message_start_time,
                chunk.message_end_time,
                chunk.start,
                chunk.end - chunk.start,
            )
        )
        offsets = b"".join(struct.pack("<HQ", c, o) for c, o in chunk.index_offsets.items())
        body += _U32.pack(len(offsets)) + offsets
        body += _U64.pack(chunk.index_end - chunk.end)
        _w_str(body, chunk.compression)
        body += struct.pack("<QQ", chunk.compressed_size, chunk.uncompressed_size)
        chunk_indexes.append(_record(OP_CHUNK_INDEX, body))
    group(OP_CHUNK_INDEX, chunk_indexes)
    meta_index = []
    for offset, length, name in metadata_offsets:
        body = bytearray(struct.pack("<QQ", offset, length))
        _w_str(body, name)
        meta_index.append(_record(OP_METADATA_INDEX, body))
    group(OP_METADATA_INDEX, meta_index)
    counts = b"".join(struct.pack("<HQ", c, n) for c, n in sorted(scan.channel_counts.items()))
    stats = struct.pack(
        "<QHIIIIQQ",
        scan.message_count,
        len(scan.schemas),
        len(scan.channels),
        0,
        len(metadata_offsets),
        len(scan.chunks),
        scan.message_start_time if scan.message_count else 0,
        scan.message_end_time,
    )
    group(OP_STATISTICS, [_record(OP_STATISTICS, stats + _U32.pack(len(counts)) + counts)])
    summary_offset_start = base + len(out)
    for op, start, length in groups:
        out += _record(OP_SUMMARY_OFFSET, struct.pack("<BQQ", op, start, length))
    out += _record(OP_FOOTER, struct.pack("<QQI", summary_start, summary_offset_start, 0))
    out += MAGIC
    bio.write(out)
