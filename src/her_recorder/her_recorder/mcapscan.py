"""A tolerant, record-level MCAP scanner and the summary writer used by recovery.

The rosbags MCAP reader needs the footer that a writer only writes on close, so
it refuses the file a killed recorder leaves behind. This module reads such a
file record by record from the start (magic, then ``opcode u8 | length u64 |
body``), validates every chunk (decompression, size, CRC when set, inner
records), and stops at the first record that is cut off or malformed: that is
where the crash happened. Everything before it is intact and usable.

Records (MCAP spec, little-endian) this module understands::

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
import sys
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lz4.frame import decompress as _lz4_decompress

if sys.version_info >= (3, 14):  # pragma: no cover - zstd joined the stdlib in 3.14
    from compression import zstd
else:  # the backport rosbags itself depends on
    from backports import zstd

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
_MSG = struct.Struct("<HIQQ")
_CHUNK_HEAD = struct.Struct("<QQQI")

_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    "lz4": _lz4_decompress,
    "zstd": zstd.decompress,
}


class McapCorrupt(Exception):
    """Internal: a record whose content does not parse (caught by the scanner)."""


@dataclass(frozen=True)
class Schema:
    """An MCAP schema record: one message type and its definition text."""

    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(frozen=True)
class Channel:
    """An MCAP channel record: one topic; ``metadata`` is the raw serialised map."""

    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: bytes

    def metadata_map(self) -> dict[str, str]:
        """The channel's metadata as a dict (``offered_qos_profiles`` for rosbag2)."""
        return _parse_map(self.metadata)


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


def _read_str(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = _U32.unpack_from(buf, pos)
    pos += 4
    if pos + n > len(buf):
        raise McapCorrupt("string runs past its record")
    return bytes(buf[pos : pos + n]).decode("utf-8"), pos + n


def _read_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    (n,) = _U32.unpack_from(buf, pos)
    pos += 4
    if pos + n > len(buf):
        raise McapCorrupt("byte field runs past its record")
    return bytes(buf[pos : pos + n]), pos + n


def _parse_map(raw: bytes) -> dict[str, str]:
    buf = memoryview(raw)
    out: dict[str, str] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _read_str(buf, pos)
        value, pos = _read_str(buf, pos)
        out[key] = value
    return out


def _parse_schema(body: memoryview) -> Schema:
    (sid,) = _U16.unpack_from(body, 0)
    name, pos = _read_str(body, 2)
    encoding, pos = _read_str(body, pos)
    data, _ = _read_bytes(body, pos)
    return Schema(sid, name, encoding, data)


def _parse_channel(body: memoryview) -> Channel:
    cid, sid = struct.unpack_from("<HH", body, 0)
    topic, pos = _read_str(body, 4)
    encoding, pos = _read_str(body, pos)
    metadata, _ = _read_bytes(body, pos)
    return Channel(cid, sid, topic, encoding, metadata)


def _decode_chunk(body: memoryview) -> tuple[int, int, str, int, int, bytes]:
    """Return (start, end, compression, compressed_size, uncompressed_size, records)."""
    start, end, usize, crc = _CHUNK_HEAD.unpack_from(body, 0)
    compression, pos = _read_str(body, _CHUNK_HEAD.size)
    (csize,) = _U64.unpack_from(body, pos)
    pos += 8
    if pos + csize != len(body):
        raise McapCorrupt("chunk records do not fill the chunk record")
    if compression not in _DECOMPRESSORS:
        raise McapCorrupt(f"unsupported chunk compression {compression!r}")
    try:
        records = _DECOMPRESSORS[compression](bytes(body[pos:]))
    except Exception as exc:  # every decompressor has its own error type
        raise McapCorrupt(f"chunk does not decompress ({compression}): {exc}") from None
    if len(records) != usize:
        raise McapCorrupt(f"chunk holds {len(records)} bytes, its header says {usize}")
    if crc and zlib.crc32(records) != crc:
        raise McapCorrupt("chunk CRC mismatch")
    return start, end, compression, csize, usize, records


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

    def _records(self, bio: BinaryIO, keep_data: bool) -> Iterator[tuple[Channel, int, bytes]]:
        res = self.result
        pos = len(MAGIC)
        last_chunk: ChunkInfo | None = None
        while True:
            head = bio.read(_REC.size)
            if not head:
                return
            if len(head) < _REC.size:
                res.stop_reason = f"record header cut off at offset {pos}"
                return
            op, length = _REC.unpack(head)
            if op not in _KNOWN_OPS:
                res.stop_reason = f"invalid record opcode 0x{op:02x} at offset {pos}"
                return
            if pos + _REC.size + length > res.size:
                res.stop_reason = (
                    f"record 0x{op:02x} at offset {pos} is cut off "
                    f"({length} bytes declared, {res.size - pos - _REC.size} present)"
                )
                return
            if op == OP_DATA_END:
                res.has_data_end = True
                return
            body = memoryview(bio.read(length))
            end = pos + _REC.size + length
            try:
                if op == OP_HEADER and pos == len(MAGIC):
                    res.profile, p = _read_str(body, 0)
                    res.library, _ = _read_str(body, p)
                elif op == OP_MESSAGE_INDEX:
                    self._message_index(body, pos, end, last_chunk)
                else:
                    last_chunk = None
                    if op == OP_CHUNK:
                        last_chunk = yield from self._chunk(body, pos, end, keep_data)
                    else:
                        yield from self._record(op, body, keep_data)
            except (McapCorrupt, struct.error, UnicodeDecodeError) as exc:
                if op == OP_CHUNK:
                    # A complete but unreadable chunk: skip it, keep what follows.
                    res.skipped.append(f"chunk at offset {pos}: {exc}")
                    last_chunk = None
                else:
                    res.stop_reason = f"record 0x{op:02x} at offset {pos} is malformed: {exc}"
                    return
            pos = end
            res.data_end = end

    def _record(
        self, op: int, body: memoryview, keep_data: bool
    ) -> Iterator[tuple[Channel, int, bytes]]:
        res = self.result
        if op == OP_SCHEMA:
            schema = _parse_schema(body)
            res.schemas[schema.id] = schema
        elif op == OP_CHANNEL:
            channel = _parse_channel(body)
            res.channels[channel.id] = channel
        elif op == OP_MESSAGE:
            if len(body) < _MSG.size:
                raise McapCorrupt(f"message record of {len(body)} bytes")
            cid, _, log_time, _ = _MSG.unpack_from(body, 0)
            on = res.channels.get(cid)
            if on is None:
                raise McapCorrupt(f"message on unknown channel {cid}")
            self._count(cid, log_time)
            yield on, log_time, bytes(body[_MSG.size :]) if keep_data else b""
        elif op == OP_METADATA:
            name, p = _read_str(body, 0)
            raw, _ = _read_bytes(body, p)
            res.metadata[name] = _parse_map(raw)

    def _count(self, cid: int, log_time: int) -> None:
        res = self.result
        res.channel_counts[cid] = res.channel_counts.get(cid, 0) + 1
        res.message_start_time = min(res.message_start_time, log_time)
        res.message_end_time = max(res.message_end_time, log_time)

    def _chunk(
        self, body: memoryview, pos: int, end: int, keep_data: bool
    ) -> Generator[tuple[Channel, int, bytes], None, ChunkInfo]:
        res = self.result
        start_time, end_time, compression, csize, usize, records = _decode_chunk(body)
        buf = memoryview(records)
        # First pass: validate every inner record before yielding anything, so a
        # corrupt chunk is skipped whole instead of half-read.
        index: dict[int, list[tuple[int, int]]] = {}
        schemas: list[Schema] = []
        channels: list[Channel] = []
        messages: list[tuple[int, int, int, int]] = []  # cid, log_time, data start, data end
        known = set(res.channels)
        p = 0
        while p < usize:
            if p + _REC.size > usize:
                raise McapCorrupt("inner record header runs past the chunk")
            op, length = _REC.unpack_from(buf, p)
            body_start = p + _REC.size
            body_end = body_start + length
            if body_end > usize:
                raise McapCorrupt("inner record runs past the chunk")
            inner = buf[body_start:body_end]
            if op == OP_MESSAGE:
                if length < _MSG.size:
                    raise McapCorrupt(f"message record of {length} bytes")
                cid, _, log_time, _ = _MSG.unpack_from(inner, 0)
                if cid not in known:
                    raise McapCorrupt(f"message on unknown channel {cid}")
                index.setdefault(cid, []).append((log_time, p))
                messages.append((cid, log_time, body_start + _MSG.size, body_end))
            elif op == OP_SCHEMA:
                schemas.append(_parse_schema(inner))
            elif op == OP_CHANNEL:
                channel = _parse_channel(inner)
                channels.append(channel)
                known.add(channel.id)
            elif op not in _KNOWN_OPS:
                raise McapCorrupt(f"invalid inner opcode 0x{op:02x}")
            p = body_end
        for schema in schemas:
            res.schemas[schema.id] = schema
        for channel in channels:
            res.channels[channel.id] = channel
        chunk = ChunkInfo(pos, end, start_time, end_time, compression, csize, usize, index)
        chunk.index_end = end
        res.chunks.append(chunk)
        for cid, log_time, a, b in messages:
            self._count(cid, log_time)
            yield res.channels[cid], log_time, bytes(buf[a:b]) if keep_data else b""
        return chunk

    def _message_index(self, body: memoryview, pos: int, end: int, chunk: ChunkInfo | None) -> None:
        (cid,) = _U16.unpack_from(body, 0)
        (nbytes,) = _U32.unpack_from(body, 2)
        if 6 + nbytes != len(body) or nbytes % 16:
            raise McapCorrupt("message index length mismatch")
        if chunk is None or chunk.index_end != pos:
            return  # not directly after a chunk we indexed: ignore it
        entries = list(struct.iter_unpack("<QQ", body[6:]))
        if sorted(entries) == sorted(chunk.message_index.get(cid, [])):
            chunk.index_offsets[cid] = pos
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
    _w_bytes(out, channel.metadata)
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
