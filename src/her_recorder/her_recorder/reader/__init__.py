"""Read HER bags into validated episodes (numpy arrays ready for a HER replay buffer).

A bag that was closed cleanly is read through the rosbags reader. A bag whose
recorder was killed (no ``metadata.yaml``, or an MCAP file without its summary)
is read through the tolerant scanner up to its last intact record, without
modifying it; the report says so and names the command that repairs it
(``her bag recover PATH``).

The package, in the order a read goes through it:

* :mod:`~her_recorder.reader.discovery`: :func:`find_bags`, :func:`inspect_bag`,
  :func:`bag_summary`, :class:`BagInfo`;
* :mod:`~her_recorder.reader.source`: :class:`BagSource`, the messages of one bag;
* :mod:`~her_recorder.reader.validation`: the checks of a bag and an episode;
* :mod:`~her_recorder.reader.reading`: :func:`read_episodes`, :func:`read_events`,
  :func:`collect_episode_messages`;
* :mod:`~her_recorder.reader.model`: :class:`Episode`, :class:`Problem`,
  :class:`ValidationReport` and the other results.
"""

from her_recorder.reader.discovery import (
    BagInfo,
    bag_summary,
    episode_counts,
    find_bags,
    inspect_bag,
)
from her_recorder.reader.model import (
    BagReport,
    Episode,
    Problem,
    ReadResult,
    Severity,
    ValidationReport,
)
from her_recorder.reader.reading import (
    EpisodeMessages,
    collect_episode_messages,
    read_episodes,
    read_events,
)
from her_recorder.reader.source import BagSource, RawMessage, decode_events
from her_recorder.reader.validation import EpisodeChecker

__all__ = [
    "BagInfo",
    "BagReport",
    "BagSource",
    "Episode",
    "EpisodeChecker",
    "EpisodeMessages",
    "Problem",
    "RawMessage",
    "ReadResult",
    "Severity",
    "ValidationReport",
    "bag_summary",
    "collect_episode_messages",
    "decode_events",
    "episode_counts",
    "find_bags",
    "inspect_bag",
    "read_episodes",
    "read_events",
]
