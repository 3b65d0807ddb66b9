"""The messages of one bag: through rosbags when it was closed, else a tolerant MCAP scan.

:class:`BagSource` yields ``(topic, msgtype, log_time_ns, data)`` of a bag. A bag
closed cleanly is read by the rosbags reader; a bag left by a killed recorder
(no ``metadata.yaml``, or an MCAP file without its summary) is read by the
tolerant scan of :mod:`her_recorder.mcapscan` up to its last intact record,
without modifying it. If rosbags fails part-way through a bag that looked
clean, :meth:`BagSource.collect` starts the bag again with the scan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from rosbags.rosbag2 import Reader, ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import TypesysError

from her_recorder import interfaces as ifc
from her_recorder.bagmeta import MCAP_METADATA_NAME, BagMeta
from her_recorder.errors import BagFormatError
from her_recorder.mcapscan import McapScanner
from her_recorder.reader.model import BagInfo

T = TypeVar("T")


class RawMessage(NamedTuple):
    """One serialised message of a bag."""

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


class _Restart(Exception):
    """The clean read failed part-way: start the bag again with the tolerant scan."""


class BagSource:
    """Messages of one bag, via rosbags when it is clean, else via the tolerant scanner."""

    def __init__(self, info: BagInfo) -> None:
        self.info = info
        self.tolerant = info.needs_recovery
        """True once the bag is read by the tolerant scan (from the start, or after a failure)."""
        self.notes: list[str] = []
        self.msgdefs: dict[str, str] = {}
        """Topic -> message definition text the bag carries."""
        self.topic_counts: Counter[tuple[str, str]] = Counter()
        """Messages read, by (topic, type), for the topics asked for."""
        self.all_topics: set[str] = set()
        """Every topic the bag has a connection for, asked for or not."""
        self.meta: BagMeta | None = info.meta

    def collect(
        self, consume: Callable[[Iterator[RawMessage]], T], *, only_topics: set[str] | None = None
    ) -> T:
        """``consume(messages)``; run again on the tolerant scan if rosbags fails part-way.

        ``consume`` must build its result from the iterator alone, so that a
        restarted read does not count a message twice.
        """
        for _attempt in range(2):
            try:
                return consume(self.messages(only_topics=only_topics))
            except _Restart:
                continue
        raise BagFormatError(  # pragma: no cover - the tolerant scan never restarts
            f"{self.info.path}: could not be read; run `her bag recover {self.info.path}`"
        )

    def messages(self, *, only_topics: set[str] | None = None) -> Iterator[RawMessage]:
        """Yield the bag's messages; counts go to :attr:`topic_counts`.

        Raises ``_Restart`` (caught by :meth:`collect`) when rosbags fails after
        having yielded messages: use :meth:`collect` rather than this directly.
        """
        if not self.tolerant:
            yielded = 0
            try:
                for item in self._rosbags(only_topics):
                    yielded += 1
                    yield item
                return
            except (ReaderError, OSError, KeyError, ValueError, AssertionError) as exc:
                self.notes.append(f"rosbags could not read it ({exc}); used the tolerant scan")
                self.tolerant = True
                self.topic_counts.clear()
                if yielded:
                    raise _Restart from None
        yield from self._scan(only_topics)

    def _rosbags(self, only_topics: set[str] | None) -> Iterator[RawMessage]:
        with Reader(self.info.path) as reader:
            conns = [c for c in reader.connections if only_topics is None or c.topic in only_topics]
            for conn in reader.connections:
                self.all_topics.add(conn.topic)
                if conn.msgdef.data:
                    self.msgdefs.setdefault(conn.topic, conn.msgdef.data)
            for conn, t, data in reader.messages(connections=conns) if conns else ():
                self.topic_counts[conn.topic, conn.msgtype] += 1
                yield RawMessage(conn.topic, conn.msgtype, t, bytes(data))

    def _scan(self, only_topics: set[str] | None) -> Iterator[RawMessage]:
        mcaps = sorted(self.info.path.glob("*.mcap"))
        if not mcaps:
            raise BagFormatError(
                f"{self.info.path}: {'; '.join(self.info.reasons) or 'unreadable'}, and it holds "
                "no .mcap file to recover from"
            )
        for mcap in mcaps:
            scanner = McapScanner(mcap)
            for channel, t, data in scanner.messages():
                schema = scanner.result.schemas.get(channel.schema_id)
                msgtype = schema.name if schema else ""
                if schema and schema.data:
                    self.msgdefs.setdefault(channel.topic, schema.data.decode("utf-8", "replace"))
                if only_topics is not None and channel.topic not in only_topics:
                    continue
                self.topic_counts[channel.topic, msgtype] += 1
                yield RawMessage(channel.topic, msgtype, t, data)
            self._scanned(scanner)

    def _scanned(self, scanner: McapScanner) -> None:
        """Topics, notes and HER metadata of one scanned file; refuse a file that is not ours."""
        res, mcap = scanner.result, scanner.path
        if res.size and not res.data_end:
            raise BagFormatError(f"{mcap}: {res.stop_reason}: not an MCAP file")
        self.all_topics.update(c.topic for c in res.channels.values())
        if res.profile and res.profile != "ros2":
            raise BagFormatError(
                f"{mcap}: MCAP profile {res.profile!r}, not ros2: not a rosbag2 file"
            )
        if res.stop_reason:
            self.notes.append(
                f"{mcap.name}: read up to byte {res.data_end} of {res.size}: {res.stop_reason}"
            )
        for skipped in res.skipped:
            self.notes.append(f"{mcap.name}: skipped corrupt {skipped}")
        if self.meta is None and MCAP_METADATA_NAME in res.metadata:
            self.meta = BagMeta.from_strings(res.metadata[MCAP_METADATA_NAME], where=str(mcap))


def decode_events(source: BagSource) -> list[Any]:
    """The bag's decoded EpisodeEvent messages (undecodable ones skipped), in bag order."""

    def consume(messages: Iterator[RawMessage]) -> list[Any]:
        events: list[Any] = []
        for msg in messages:
            if msg.msgtype == ifc.EVENT_TYPE:
                try:
                    store = ifc.typestore_for(msg.msgtype, source.msgdefs.get(msg.topic, ""))
                    events.append(store.deserialize_cdr(msg.data, msg.msgtype))
                except (SerdeError, TypesysError, ValueError, IndexError):
                    continue
        return events

    return source.collect(consume, only_topics={ifc.TOPIC_EPISODE})
