"""Reading HER bags into validated episodes (numpy arrays ready for a HER replay buffer).

:func:`read_episodes` reads bags (or session directories) through a
:class:`~her_recorder.reader.source.BagSource`, groups each bag's Step and
EpisodeEvent messages by episode (:func:`collect_episode_messages`), checks every
episode (:mod:`her_recorder.reader.validation`) and returns the ones that pass
with a report of the rest. A bad episode is reported by bag, episode and step
and left out; one summary line is logged whenever anything was left out.
Nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rosbags.serde import SerdeError
from rosbags.typesys import TypesysError

from her_goals import GoalSpace, get_goal_space
from her_recorder import cdr
from her_recorder import interfaces as ifc
from her_recorder.errors import BagFormatError
from her_recorder.reader.discovery import BagInfo, find_bags, inspect_bag
from her_recorder.reader.model import (
    BagReport,
    Episode,
    EpisodeMessages,
    Problem,
    ReadResult,
    ValidationReport,
)
from her_recorder.reader.plain import goal_space_from_messages, without_cut_at_start
from her_recorder.reader.source import BagSource, RawMessage, decode_events
from her_recorder.reader.validation import (
    EpisodeChecker,
    check_counts,
    check_schema,
    resolve_goal_space,
)

log = logging.getLogger("her_recorder")

MAX_UNDECODABLE_LISTED = 3
"""Undecodable messages listed one by one per bag; the rest are counted in one problem."""


def collect_episode_messages(
    source: BagSource, problems: list[Problem] | None = None
) -> dict[int, EpisodeMessages]:
    """Decode the Step, EpisodeEvent and desired-goal messages of one bag, grouped by episode id.

    Messages that do not decode are skipped and reported in ``problems``.
    """
    bag = source.info.path
    undecodable: list[Problem] = []
    ours = ifc.typestore()
    # Our fixed-size messages through precompiled layouts (her_recorder/cdr.py), learnt per bag.
    decoders = {t: cdr.Decoder(ours, t) for t in (ifc.STEP_TYPE, ifc.EVENT_TYPE, ifc.GOAL_TYPE)}

    def consume(messages: Iterator[RawMessage]) -> dict[int, EpisodeMessages]:
        undecodable.clear()
        grouped: dict[int, EpisodeMessages] = {}
        for topic, msgtype, t, data in messages:
            if (topic, msgtype) not in (
                (ifc.TOPIC_STEP, ifc.STEP_TYPE),
                (ifc.TOPIC_EPISODE, ifc.EVENT_TYPE),
                (ifc.TOPIC_DESIRED_GOAL, ifc.GOAL_TYPE),
                (ifc.TOPIC_TRUE_ACHIEVED_GOAL, ifc.GOAL_TYPE),
                (ifc.TOPIC_SIM_PARAMS, ifc.STRING_TYPE),
            ):
                continue
            try:
                store = ifc.typestore_for(msgtype, source.msgdefs.get(topic, ""))
                decoder = decoders.get(msgtype) if store is ours else None
                msg: Any = (
                    decoder.decode(data) if decoder is not None
                    else store.deserialize_cdr(data, msgtype)
                )  # fmt: skip
            except (SerdeError, TypesysError, ValueError, IndexError) as exc:
                undecodable.append(
                    Problem(
                        bag,
                        None,
                        None,
                        "undecodable",
                        f"{topic} message at {t} ns does not decode: {exc}",
                    )
                )
                continue
            if topic == ifc.TOPIC_SIM_PARAMS:
                try:
                    record = json.loads(msg.data)
                    grouped.setdefault(int(record["episode_id"]), EpisodeMessages()).sim_params = dict(
                        record["params"]
                    )
                except (ValueError, KeyError, TypeError):
                    undecodable.append(
                        Problem(bag, None, None, "undecodable", f"{topic} at {t} ns is not an episode record")
                    )
                continue
            episode = grouped.setdefault(int(msg.episode_id), EpisodeMessages())
            if topic == ifc.TOPIC_TRUE_ACHIEVED_GOAL:
                episode.truths.append(msg)
            elif msgtype == ifc.STEP_TYPE:
                episode.steps.append(msg)
            elif msgtype == ifc.EVENT_TYPE:
                episode.events.append(msg)
            else:
                episode.goals.append(msg)
        return grouped

    grouped = source.collect(
        consume,
        only_topics={
            ifc.TOPIC_STEP, ifc.TOPIC_EPISODE, ifc.TOPIC_DESIRED_GOAL,
            ifc.TOPIC_TRUE_ACHIEVED_GOAL, ifc.TOPIC_SIM_PARAMS,
        },
    )
    if problems is not None and undecodable:
        problems.extend(undecodable[:MAX_UNDECODABLE_LISTED])
        if len(undecodable) > MAX_UNDECODABLE_LISTED:
            more = len(undecodable) - MAX_UNDECODABLE_LISTED
            problems.append(
                Problem(bag, None, None, "undecodable", f"... {more} more undecodable messages")
            )
    return grouped


def read_events(path: str | Path) -> list[Any]:
    """Decoded EpisodeEvent messages of one bag (for tools and audits)."""
    return decode_events(BagSource(inspect_bag(path)))


class _Reading:
    """One :func:`read_episodes` call: the goal space and dimensions every bag must share."""

    def __init__(self, wanted: GoalSpace | None, include_aborted: bool) -> None:
        self.wanted = wanted
        self.include_aborted = include_aborted
        self.dims: tuple[int, int] | None = None
        self.report = ValidationReport()
        self.episodes: list[Episode] = []

    def read_bag(self, bag: Path) -> None:
        info = inspect_bag(bag)
        src = BagSource(info)
        bag_report = BagReport(bag, "rosbags", info.needs_recovery)
        bag_problems: list[Problem] = []
        grouped = collect_episode_messages(src, bag_problems)
        bag_report.source = "tolerant scan" if src.tolerant else "rosbags"
        bag_report.notes.extend(src.notes)
        if info.needs_recovery:
            bag_report.notes.insert(0, "; ".join(info.reasons))
        if self._holds_episodes(bag, src, bag_problems):
            self._check_bag(bag, info, src, grouped, bag_report, bag_problems)
        self.report.problems.extend(bag_problems)
        self.report.bags.append(bag_report)
        self.report.episodes_read += bag_report.episodes_read
        self.report.steps_read += bag_report.steps_read

    @staticmethod
    def _holds_episodes(bag: Path, src: BagSource, problems: list[Problem]) -> bool:
        """False for an empty bag (a warning); a foreign bag is an error."""
        topics, meta = src.all_topics, src.meta
        if not topics and meta is None:
            problems.append(
                Problem(
                    bag,
                    None,
                    None,
                    "empty",
                    "holds no messages and no HER metadata "
                    "(created just before the recorder was killed?); nothing to read",
                    "warning",
                )
            )
            return False
        if ifc.TOPIC_STEP not in topics and meta is None:
            raise BagFormatError(
                f"{bag} has no {ifc.TOPIC_STEP} messages (topics: {sorted(topics) or 'none'}) "
                "and no HER metadata: not a HER episode bag"
            )
        return True

    def _check_bag(
        self,
        bag: Path,
        info: BagInfo,
        src: BagSource,
        grouped: dict[int, EpisodeMessages],
        bag_report: BagReport,
        bag_problems: list[Problem],
    ) -> None:
        check_schema(src, bag, bag_problems)
        if src.meta is None:  # a plain `ros2 bag record` (reader/plain.py)
            grouped, cut = without_cut_at_start(bag, grouped, bag_problems)
            if cut:
                self.report.left_out["cut_by_recording"] += cut
                bag_report.episodes_left_out += cut
        hint = self.wanted or (goal_space_from_messages(bag, grouped, bag_problems) if src.meta is None else None)
        space = resolve_goal_space(bag, src.meta, hint, bag_problems)
        self.wanted = self.wanted or space
        task = src.meta.task if src.meta is not None else ""
        if info.metadata is not None and not info.needs_recovery:
            check_counts(info, src, bag, bag_problems)
        checker = EpisodeChecker(bag, space, task, self.include_aborted)
        for episode_id in sorted(grouped):
            episode, problems, why = checker.check(episode_id, grouped[episode_id])
            if episode is not None and not self._same_dims(episode, problems):
                episode, why = None, "invalid"
            bag_problems.extend(problems)
            if episode is None:
                self.report.left_out[why] += 1
                bag_report.episodes_left_out += 1
            else:
                self.episodes.append(episode)
                bag_report.episodes_read += 1
                bag_report.steps_read += len(episode)

    def _same_dims(self, episode: Episode, problems: list[Problem]) -> bool:
        """Every episode has the first one's observation and action sizes."""
        shape = (episode.observation.shape[1], episode.action.shape[1])
        if self.dims is None:
            self.dims = shape
        elif shape != self.dims:
            problems.append(
                Problem(
                    episode.bag,
                    episode.episode_id,
                    None,
                    "shape",
                    f"(obs, action) dims {shape} differ from the first episode's {self.dims}",
                )
            )
            return False
        return True


def read_episodes(
    paths: str | Path | Iterable[str | Path],
    *,
    goal_space: GoalSpace | str | None = None,
    include_aborted: bool = False,
    strict: bool = False,
    log_summary: bool = True,
) -> ReadResult:
    """Read bags (or session directories of bags) into validated episodes.

    Args:
        paths: Bag directories, session directories, or a list of them.
        goal_space: The goal space the episodes must be in (a name or a
            GoalSpace); by default the first bag's, and every other bag must match.
        include_aborted: Keep aborted episodes (their last step marked truncated).
        strict: Raise :class:`BagFormatError` instead of leaving episodes out.
        log_summary: Log the summary line (WARNING when something was left out).

    Raises:
        BagFormatError: a path that is not a bag, a foreign or unreadable bag.
        BagMismatchError: a bag of another goal space or message schema.
    """
    wanted = get_goal_space(goal_space) if isinstance(goal_space, str) else goal_space
    reading = _Reading(wanted, include_aborted)
    for bag in find_bags(paths):
        reading.read_bag(bag)
    report = reading.report
    if strict and (report.left_out or not report.ok):
        raise BagFormatError(report.format())
    if log_summary:
        level = logging.WARNING if (report.left_out or not report.ok) else logging.INFO
        log.log(level, "%s", report.summary_line())
    return ReadResult(reading.episodes, report)
