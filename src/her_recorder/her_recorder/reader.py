"""Read HER bags into validated episodes (numpy arrays ready for a HER replay buffer).

A bag that was closed cleanly is read through the rosbags reader. A bag whose
recorder was killed (no ``metadata.yaml``, or an MCAP file without its summary)
is read through the tolerant scanner up to its last intact record, without
modifying it; the report says so and names the command that repairs it
(``her bag recover PATH``).

Every episode is checked against the goal space and the schema; a bad one is
reported by bag, episode and step and left out, and :func:`read_episodes` logs
one summary line whenever anything was left out. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from numpy.typing import NDArray
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import TypesysError, get_types_from_msg

from her_goals import GoalSpace, get_goal_space
from her_recorder import interfaces as ifc
from her_recorder.bagmeta import MCAP_METADATA_NAME, BagMeta
from her_recorder.errors import BagFormatError, BagMismatchError
from her_recorder.mcapscan import McapScanner, has_valid_footer

log = logging.getLogger("her_recorder")

Severity = Literal["error", "excluded", "warning"]
"""``error``: invalid data, episode left out. ``excluded``: not a complete episode
(incomplete, aborted, discarded), left out. ``warning``: kept, but look at it."""

_EVENT_NAMES = {int(k): k.name for k in ifc.EventKind}


# -- finding bags and telling their state -------------------------------------------


def _is_bag_dir(path: Path) -> bool:
    return path.is_dir() and (
        (path / "metadata.yaml").exists() or any(path.glob("*.mcap")) or any(path.glob("*.db3"))
    )


def find_bags(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand bag and session directories into a sorted list of bag directories."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    bags: list[Path] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise BagFormatError(f"{path} does not exist")
        if path.is_file():
            raise BagFormatError(
                f"{path} is a file; HER bags are rosbag2 directories: pass {path.parent}"
                if path.suffix in (".mcap", ".db3", ".yaml")
                else f"{path} is a file, not a rosbag2 bag directory"
            )
        if _is_bag_dir(path):
            bags.append(path)
            continue
        inner = sorted(p for p in path.iterdir() if _is_bag_dir(p))
        if not inner:
            raise BagFormatError(
                f"{path} is not a rosbag2 bag (no metadata.yaml and no .mcap file) "
                "and holds no bags"
            )
        bags.extend(inner)
    return bags


@dataclass
class BagInfo:
    """What a bag directory holds and whether it was closed cleanly."""

    path: Path
    files: list[Path]
    """Storage files the bag consists of (listed in metadata.yaml or found on disk)."""
    needs_recovery: bool
    reasons: list[str]
    """Why the bag needs recovery (empty when it does not)."""
    metadata: dict[str, Any] | None
    """``rosbag2_bagfile_information`` from metadata.yaml, if it could be read."""
    meta: BagMeta | None = None
    """The HER description (goal space, task, config, seeds), if the bag has one."""
    topics: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Topic -> (message type, message count)."""
    episodes: dict[str, Any] = field(default_factory=dict)
    last_episode_id: int | None = None
    size_bytes: int = 0

    @property
    def message_count(self) -> int:
        return sum(count for _, count in self.topics.values())

    @property
    def state(self) -> str:
        """``clean``, ``recovered`` (repaired by ``her bag recover``) or ``unclosed``."""
        if self.needs_recovery:
            return "unclosed"
        return "recovered" if self.meta is not None and self.meta.recovered else "clean"


def _load_metadata(path: Path) -> tuple[dict[str, Any] | None, str]:
    yml = path / "metadata.yaml"
    if not yml.exists():
        return None, "metadata.yaml is missing (the recorder did not close the bag)"
    try:
        data = yaml.safe_load(yml.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, f"metadata.yaml cannot be read: {exc}"
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        return None, "metadata.yaml has no rosbag2_bagfile_information (empty or not rosbag2)"
    return info, ""


def inspect_bag(path: str | Path) -> BagInfo:
    """Tell whether ``path`` is a readable bag, from metadata and file tails only (fast)."""
    path = Path(path)
    if not path.is_dir():
        raise BagFormatError(f"{path} is not a bag directory")
    metadata, why = _load_metadata(path)
    reasons = [why] if why else []
    on_disk = sorted(path.glob("*.mcap"))
    files = on_disk
    if metadata is not None:
        try:
            listed = [path / Path(str(p)).name for p in metadata["relative_file_paths"]]
            storage = str(metadata["storage_identifier"])
        except (KeyError, TypeError) as exc:
            listed, storage = [], ""
            reasons.append(f"metadata.yaml lacks {exc}")
        if storage not in ("mcap", "sqlite3"):
            reasons.append(f"metadata.yaml names storage {storage!r}, not mcap or sqlite3")
        missing = [p.name for p in listed if not p.exists()]
        if missing:
            reasons.append(f"metadata.yaml lists missing file(s) {missing}")
        unlisted = [p.name for p in on_disk if p not in listed]
        if unlisted:
            reasons.append(f"file(s) {unlisted} are not listed in metadata.yaml")
        if storage == "sqlite3" and not missing:
            files = listed
    if not files and metadata is None:
        raise BagFormatError(f"{path} is not a rosbag2 bag (no metadata.yaml and no .mcap file)")
    for mcap in on_disk:
        if mcap.stat().st_size == 0:
            reasons.append(f"{mcap.name} is empty (0 bytes)")
        elif not has_valid_footer(mcap):
            reasons.append(f"{mcap.name} has no MCAP footer (cut off or never closed)")
    info = BagInfo(path, files, bool(reasons), reasons, metadata)
    info.size_bytes = sum(p.stat().st_size for p in files if p.exists())
    if metadata is not None and not reasons:
        custom = metadata.get("custom_data") or {}
        if isinstance(custom, dict):
            info.meta = _meta_or_none(custom, path)
        for item in metadata.get("topics_with_message_count") or []:
            try:
                tm = item["topic_metadata"]
                info.topics[str(tm["name"])] = (str(tm["type"]), int(item["message_count"]))
            except (KeyError, TypeError, ValueError):
                continue
        if info.meta is not None and info.meta.episodes:
            info.episodes = dict(info.meta.episodes)
            last = info.episodes.get("last_id")
            info.last_episode_id = int(last) if last is not None else None
    return info


def _meta_or_none(data: dict[str, Any], path: Path) -> BagMeta | None:
    from her_recorder.bagmeta import KEY_GOAL_SPACE

    if KEY_GOAL_SPACE not in data:
        return None
    return BagMeta.from_strings({str(k): str(v) for k, v in data.items()}, where=str(path))


def bag_summary(path: str | Path) -> BagInfo:
    """:func:`inspect_bag`, plus topics and episodes from a scan when the bag needs recovery."""
    info = inspect_bag(path)
    if not info.needs_recovery and (info.last_episode_id is not None or info.meta is None):
        return info
    src = _BagSource(info)
    events = _events(src)
    if info.needs_recovery:
        info.topics = {t: (m, n) for (t, m), n in src.topic_counts.items()}
        info.meta = src.meta
    info.episodes = episode_counts(events)
    last = info.episodes.get("last_id")
    info.last_episode_id = int(last) if last is not None else None
    return info


def episode_counts(events: Iterable[Any]) -> dict[str, Any]:
    """Count episodes by how they ended, from decoded EpisodeEvent messages."""
    started: set[int] = set()
    ended: dict[int, str] = {}
    for ev in events:
        if ev.event == ifc.EventKind.START:
            started.add(int(ev.episode_id))
        else:
            ended[int(ev.episode_id)] = _EVENT_NAMES.get(int(ev.event), "?")
    counts: dict[str, Any] = {
        "ended": sum(1 for v in ended.values() if v == "END"),
        "aborted": sum(1 for v in ended.values() if v == "ABORT"),
        "discarded": sum(1 for v in ended.values() if v == "DISCARD"),
        "incomplete": sorted(started - set(ended)),
    }
    ids = started | set(ended)
    if ids:
        counts.update(first_id=min(ids), last_id=max(ids))
    return counts


# -- message sources ----------------------------------------------------------------------


class _Restart(Exception):
    """The clean read failed part-way: start the bag again with the tolerant scan."""


class _BagSource:
    """Messages of one bag, via rosbags when it is clean, else via the tolerant scanner."""

    def __init__(self, info: BagInfo) -> None:
        self.info = info
        self.tolerant = info.needs_recovery
        self.notes: list[str] = []
        self.msgdefs: dict[str, str] = {}
        self.topic_counts: Counter[tuple[str, str]] = Counter()
        """Messages read, by (topic, type), for the topics asked for."""
        self.all_topics: set[str] = set()
        """Every topic the bag has a connection for, asked for or not."""
        self.meta: BagMeta | None = info.meta

    def messages(
        self, *, only_topics: set[str] | None = None
    ) -> Iterator[tuple[str, str, int, bytes]]:
        """Yield ``(topic, msgtype, log_time_ns, data)``; counts go to :attr:`topic_counts`."""
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

    def _rosbags(self, only_topics: set[str] | None) -> Iterator[tuple[str, str, int, bytes]]:
        with Reader(self.info.path) as reader:
            conns = [c for c in reader.connections if only_topics is None or c.topic in only_topics]
            for conn in reader.connections:
                self.all_topics.add(conn.topic)
                if conn.msgdef.data:
                    self.msgdefs.setdefault(conn.topic, conn.msgdef.data)
            # Materialise per chunk order first so a read error surfaces before yielding.
            for conn, t, data in reader.messages(connections=conns) if conns else ():
                self.topic_counts[conn.topic, conn.msgtype] += 1
                yield conn.topic, conn.msgtype, t, bytes(data)

    def _scan(self, only_topics: set[str] | None) -> Iterator[tuple[str, str, int, bytes]]:
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
                yield channel.topic, msgtype, t, data
            res = scanner.result
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


# -- episodes and the report ------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bag, an episode or a step."""

    bag: Path
    episode_id: int | None
    step: int | None
    kind: str
    message: str
    severity: Severity = "error"

    def where(self) -> str:
        """``bag_0003 episode 12 step 4`` (as much as is known)."""
        out = self.bag.name
        if self.episode_id is not None:
            out += f" episode {self.episode_id}"
        if self.step is not None:
            out += f" step {self.step}"
        return out

    def __str__(self) -> str:
        return f"{self.severity}: {self.where()}: {self.message}"


@dataclass(frozen=True)
class Episode:
    """One complete, validated episode; arrays have one row per step (length T)."""

    bag: Path
    episode_id: int
    task: str
    goal_space: GoalSpace
    observation: NDArray[np.float64]
    """(T, obs_dim)"""
    next_observation: NDArray[np.float64]
    action_raw: NDArray[np.float64]
    """(T, act_dim): policy output before limits and safety."""
    action_applied: NDArray[np.float64]
    """(T, act_dim): what was sent to the arm; the action a replay buffer learns from."""
    achieved_goal: NDArray[np.float64]
    """(T, goal_dim): before each step."""
    next_achieved_goal: NDArray[np.float64]
    desired_goal: NDArray[np.float64]
    """(T, goal_dim): the requested goal, repeated."""
    reward: NDArray[np.float32]
    terminated: NDArray[np.bool_]
    truncated: NDArray[np.bool_]
    is_success: NDArray[np.bool_]
    safety_flags: NDArray[np.uint32]
    safety_cost: NDArray[np.float32]
    safety_reasons: tuple[tuple[str, ...], ...]
    stamp_ns: NDArray[np.int64]
    success: bool
    """Requested-goal success at the END event (never hindsight success)."""
    end_reason: str
    status: Literal["complete", "aborted"] = "complete"

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    def buffer_args(self) -> dict[str, NDArray[Any]]:
        """Keyword arguments for a HER replay buffer's ``add_episode``.

        ``actions`` are the applied actions (what the arm executed).
        """
        return {
            "obs": self.observation,
            "next_obs": self.next_observation,
            "actions": self.action_applied,
            "achieved_goal": self.achieved_goal,
            "next_achieved_goal": self.next_achieved_goal,
            "desired_goal": self.desired_goal,
            "terminated": self.terminated,
            "truncated": self.truncated,
        }


@dataclass
class BagReport:
    """How one bag was read."""

    path: Path
    source: Literal["rosbags", "tolerant scan"]
    needs_recovery: bool
    notes: list[str] = field(default_factory=list)
    episodes_read: int = 0
    steps_read: int = 0
    episodes_left_out: int = 0


@dataclass
class ValidationReport:
    """Everything :func:`read_episodes` found: per bag, per episode, per step."""

    bags: list[BagReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    episodes_read: int = 0
    steps_read: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    """Episodes left out, by reason (incomplete, aborted, discarded, invalid)."""

    @property
    def ok(self) -> bool:
        """True when no episode was invalid and every bag was closed cleanly."""
        return not any(p.severity == "error" for p in self.problems) and not any(
            b.needs_recovery for b in self.bags
        )

    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def summary_line(self) -> str:
        """One line: what was read, what was left out and why, what to run next."""
        n_bags = len(self.bags)
        line = (
            f"read {n_bags} bag{'s' if n_bags != 1 else ''}: {self.episodes_read} episode"
            f"{'s' if self.episodes_read != 1 else ''} ({self.steps_read} steps) usable"
        )
        total = sum(self.left_out.values())
        if total:
            parts = ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items()))
            line += f"; left out {total}: {parts}"
            first = next((p for p in self.problems if p.severity == "error"), None)
            first = first or next((p for p in self.problems if p.severity == "excluded"), None)
            if first is not None:
                line += f" (first: {first.where()}: {first.message})"
        warnings = sum(1 for p in self.problems if p.severity == "warning")
        if warnings:
            line += f"; {warnings} warning{'s' if warnings != 1 else ''}"
        unclosed = [b.path for b in self.bags if b.needs_recovery]
        if unclosed:
            line += (
                f"; {len(unclosed)} bag(s) not closed cleanly, read up to their last intact "
                f"record: run `her bag recover {' '.join(str(p) for p in unclosed)}`"
            )
        return line

    def format(self, *, max_problems: int = 50) -> str:
        """The full report: one line per bag, one per problem, then the summary line."""
        lines = []
        for bag in self.bags:
            state = "NOT CLOSED (tolerant scan)" if bag.needs_recovery else "ok"
            lines.append(
                f"{bag.path}: {state}; {bag.episodes_read} episodes, {bag.steps_read} steps read, "
                f"{bag.episodes_left_out} left out"
            )
            lines.extend(f"  note: {note}" for note in bag.notes)
        for problem in self.problems[:max_problems]:
            lines.append(f"  {problem}")
        if len(self.problems) > max_problems:
            lines.append(f"  ... and {len(self.problems) - max_problems} more problems")
        lines.append(self.summary_line())
        return "\n".join(lines)


@dataclass
class ReadResult:
    """Episodes read from bags, and the report of what was checked and left out."""

    episodes: list[Episode]
    report: ValidationReport

    def buffer_arrays(self) -> dict[str, NDArray[Any]]:
        """All episodes' :meth:`Episode.buffer_args` concatenated along the step axis."""
        if not self.episodes:
            return {}
        keys = self.episodes[0].buffer_args().keys()
        parts = [ep.buffer_args() for ep in self.episodes]
        return {k: np.concatenate([p[k] for p in parts]) for k in keys}


# -- validation ------------------------------------------------------------------------------


def _fielddefs_of(msgdef: str, msgtype: str) -> Any:
    first = msgdef.split("=" * 80)[0]
    return get_types_from_msg(first, msgtype)[msgtype]


def _check_schema(src: _BagSource, bag: Path, problems: list[Problem]) -> None:
    store = ifc.typestore()
    seen = {topic: msgtype for topic, msgtype in src.topic_counts}
    for topic, expected in (
        (ifc.TOPIC_STEP, ifc.STEP_TYPE),
        (ifc.TOPIC_EPISODE, ifc.EVENT_TYPE),
        (ifc.TOPIC_DESIRED_GOAL, ifc.GOAL_TYPE),
    ):
        msgtype = seen.get(topic)
        if msgtype is None:
            continue
        if msgtype != expected:
            raise BagMismatchError(
                f"{bag}: topic {topic} carries {msgtype}, expected {expected}: "
                "not a HER-ROS bag of this version"
            )
        text = src.msgdefs.get(topic, "")
        if not text:
            problems.append(
                Problem(
                    bag,
                    None,
                    None,
                    "schema",
                    f"{topic} has no message definition; assuming the current one",
                    "warning",
                )
            )
            continue
        try:
            theirs = _fielddefs_of(text, expected)
        except (TypesysError, KeyError, ValueError) as exc:
            raise BagMismatchError(
                f"{bag}: the {expected} definition in the bag does not parse: {exc}"
            ) from None
        ours = store.fielddefs[expected]
        if [f[0] for f in theirs[1]] != [f[0] for f in ours[1]] or theirs[1] != ours[1]:
            raise BagMismatchError(
                f"{bag}: {expected} was recorded with another definition "
                f"(fields {[f[0] for f in theirs[1]]}; this version has {[f[0] for f in ours[1]]}). "
                "Read it with the her_recorder version that wrote it, or convert it."
            )


@dataclass
class _Acc:
    """Decoded messages of one episode, as they came."""

    events: list[Any] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)
    step_stamps: list[int] = field(default_factory=list)


def _stack(rows: list[Any], what: str) -> tuple[NDArray[np.float64] | None, int | None]:
    """Stack 1-D rows into (T, n); on a length change return (None, first bad step index)."""
    n = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != n:
            return None, i
    if n == 0:
        return np.zeros((len(rows), 0)), None
    return np.asarray(np.stack(rows), dtype=np.float64), None


class _EpisodeChecker:
    """All checks of one episode; collects problems, builds the Episode if it passes."""

    def __init__(self, bag: Path, goal_space: GoalSpace, task: str, include_aborted: bool) -> None:
        self.bag = bag
        self.goal_space = goal_space
        self.task = task
        self.include_aborted = include_aborted

    def check(self, episode_id: int, acc: _Acc) -> tuple[Episode | None, list[Problem], str]:
        """Return (episode or None, problems, why left out or '')."""
        problems: list[Problem] = []

        def add(kind: str, msg: str, step: int | None = None, sev: Severity = "error") -> None:
            problems.append(Problem(self.bag, episode_id, step, kind, msg, sev))

        starts = [e for e in acc.events if e.event == ifc.EventKind.START]
        ends = [e for e in acc.events if e.event != ifc.EventKind.START]
        if len(starts) > 1 or len(ends) > 1:
            add(
                "duplicate_episode", f"{len(starts)} START and {len(ends)} end events share this id"
            )
            return None, problems, "invalid"
        if not starts:
            add("no_start", f"{len(acc.steps)} steps and no START event")
            return None, problems, "invalid"
        start = starts[0]
        end = ends[0] if ends else None
        if end is None:
            add(
                "incomplete",
                f"no END event after {len(acc.steps)} steps: the recording stopped "
                "mid-episode (crash?); never used as a complete episode",
                sev="excluded",
            )
            return None, problems, "incomplete"
        kind = int(end.event)
        if kind == ifc.EventKind.DISCARD:
            add("discarded", f"discarded ({end.reason or 'no reason'})", sev="excluded")
            return None, problems, "discarded"
        if kind == ifc.EventKind.ABORT and not self.include_aborted:
            add("aborted", f"aborted ({end.reason or 'no reason'})", sev="excluded")
            return None, problems, "aborted"
        if kind not in (ifc.EventKind.END, ifc.EventKind.ABORT):
            add("bad_event", f"unknown end event {kind}")
            return None, problems, "invalid"
        if start.goal_space != self.goal_space.name:
            add(
                "goal_space",
                f"START names goal space {start.goal_space!r}, the bag {self.goal_space.name!r}",
            )
        if not acc.steps:
            add("empty", "no steps")
            return None, problems, "invalid"

        order = sorted(range(len(acc.steps)), key=lambda i: acc.steps[i].step)
        steps = [acc.steps[i] for i in order]
        index = np.array([s.step for s in steps], dtype=np.int64)
        if len(np.unique(index)) != len(index):
            dup = index[np.flatnonzero(np.diff(index) == 0)[0]]
            add("duplicate_steps", f"step index {int(dup)} recorded more than once", int(dup))
        # Steps 0..n-1 must all be there, n = what the end event counted (or more
        # if more arrived): a gap and a missing tail are both missing steps.
        n_expected = max(int(end.num_steps), int(index.max()) + 1)
        missing = sorted(set(range(n_expected)) - set(index.tolist()))
        if missing:
            add(
                "missing_steps",
                f"missing step(s) {missing[:10]}{'...' if len(missing) > 10 else ''} "
                f"of {n_expected}",
                missing[0],
            )
        elif int(end.num_steps) != len(steps):
            add(
                "step_count",
                f"the end event says {int(end.num_steps)} steps, the bag holds {len(steps)}",
            )
        stamps = np.array(
            [s.header.stamp.sec * 1_000_000_000 + s.header.stamp.nanosec for s in steps],
            dtype=np.int64,
        )
        back = np.flatnonzero(np.diff(stamps) <= 0)
        if back.size:
            i = int(back[0]) + 1
            add(
                "non_monotonic_stamp",
                f"stamp {stamps[i]} ns is not after the previous step's {stamps[i - 1]} ns",
                int(index[i]),
            )

        arrays: dict[str, NDArray[np.float64]] = {}
        for name in (
            "observation",
            "next_observation",
            "action_raw",
            "action_applied",
            "achieved_goal",
            "next_achieved_goal",
            "desired_goal",
        ):
            stacked, first_bad = _stack([getattr(s, name) for s in steps], name)
            if stacked is None:
                row = first_bad or 0
                add(
                    "shape",
                    f"{name} changes length from {len(getattr(steps[0], name))} to "
                    f"{len(getattr(steps[row], name))}",
                    int(index[row]),
                )
                continue
            arrays[name] = stacked
        dim = self.goal_space.dim
        for name in ("achieved_goal", "next_achieved_goal", "desired_goal"):
            if name in arrays and arrays[name].shape[1] != dim:
                add(
                    "shape",
                    f"{name} has {arrays[name].shape[1]} components; goal space "
                    f"{self.goal_space.name!r} has {dim}",
                )
                arrays.pop(name)
        reward = np.array([s.reward for s in steps], dtype=np.float32)
        safety_cost = np.array([s.safety_cost for s in steps], dtype=np.float32)
        checked: list[tuple[str, NDArray[Any]]] = [
            *arrays.items(),
            ("reward", reward),
            ("safety_cost", safety_cost),
        ]
        for name, arr in checked:
            bad_mask = ~np.isfinite(arr)
            if bad_mask.any():
                row = int(np.argwhere(bad_mask)[0][0])
                col = np.argwhere(bad_mask)[0][1:] if arr.ndim > 1 else []
                at = f"[{int(col[0])}]" if len(col) else ""
                value = arr[bad_mask][0]
                add("non_finite", f"{name}{at} is {value}", int(index[row]))
        if problems and any(p.severity == "error" for p in problems):
            return None, problems, "invalid"

        desired = arrays["desired_goal"]
        start_goal = np.asarray(start.desired_goal, dtype=np.float64)
        if start_goal.shape != (dim,) or not np.array_equal(
            desired, np.broadcast_to(start_goal, desired.shape)
        ):
            row = (
                int(np.flatnonzero(~np.all(desired == start_goal, axis=-1))[0])
                if start_goal.shape == (dim,)
                else 0
            )
            add(
                "desired_goal_changed",
                "desired_goal differs from the START event's "
                "(a relabelled goal must never be recorded as the requested one)",
                int(index[row]),
            )
        gs = self.goal_space
        next_ag = arrays["next_achieved_goal"]
        expected_reward = gs.compute_reward(next_ag, desired)
        bad = np.flatnonzero(reward != expected_reward)
        if bad.size:
            i = int(bad[0])
            add(
                "reward_mismatch",
                f"reward {reward[i]} but compute_reward(next_achieved_goal, "
                f"desired_goal) = {expected_reward[i]} ({bad.size} step(s) differ)",
                int(index[i]),
            )
        success = np.array([s.is_success for s in steps], dtype=bool)
        expected_success = gs.is_success(next_ag, desired)
        bad = np.flatnonzero(success != expected_success)
        if bad.size:
            i = int(bad[0])
            add(
                "success_mismatch",
                f"is_success {bool(success[i])} but the goal space says "
                f"{bool(expected_success[i])} ({bad.size} step(s) differ)",
                int(index[i]),
            )
        if kind == ifc.EventKind.END and bool(end.success) != bool(expected_success[-1]):
            distance = float(gs.distance(next_ag[-1], desired[-1]))
            add(
                "requested_success_mismatch",
                f"END says success={bool(end.success)} but the final achieved goal is "
                f"{distance:.4g} {gs.units} from the requested goal (tolerance {gs.tolerance} "
                f"{gs.units}); requested-goal success must come from the requested goal",
            )
        if len(steps) > 1:
            jump = np.flatnonzero(~np.all(arrays["achieved_goal"][1:] == next_ag[:-1], axis=-1))
            if jump.size:
                i = int(jump[0]) + 1
                add(
                    "discontinuity",
                    "achieved_goal differs from the previous step's next_achieved_goal",
                    int(index[i]),
                    "warning",
                )
            jump = np.flatnonzero(
                ~np.all(arrays["observation"][1:] == arrays["next_observation"][:-1], axis=-1)
            )
            if jump.size:
                i = int(jump[0]) + 1
                add(
                    "discontinuity",
                    "observation differs from the previous step's next_observation",
                    int(index[i]),
                    "warning",
                )
        terminated = np.array([s.terminated for s in steps], dtype=bool)
        truncated = np.array([s.truncated for s in steps], dtype=bool)
        early = np.flatnonzero((terminated | truncated)[:-1])
        if early.size:
            add(
                "early_done",
                "terminated or truncated before the last step",
                int(index[int(early[0])]),
                "warning",
            )
        if any(p.severity == "error" for p in problems):
            return None, problems, "invalid"
        if kind == ifc.EventKind.ABORT and not (terminated[-1] or truncated[-1]):
            truncated = truncated.copy()
            truncated[-1] = True  # cut short: a time-limit-like end, not a terminal state
        episode = Episode(
            bag=self.bag,
            episode_id=episode_id,
            task=start.task or self.task,
            goal_space=gs,
            observation=arrays["observation"],
            next_observation=arrays["next_observation"],
            action_raw=arrays["action_raw"],
            action_applied=arrays["action_applied"],
            achieved_goal=arrays["achieved_goal"],
            next_achieved_goal=next_ag,
            desired_goal=desired,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            is_success=success,
            safety_flags=np.array([s.safety_flags for s in steps], dtype=np.uint32),
            safety_cost=safety_cost,
            safety_reasons=tuple(tuple(s.safety_reasons) for s in steps),
            stamp_ns=stamps,
            success=bool(end.success) if kind == ifc.EventKind.END else False,
            end_reason=str(end.reason),
            status="complete" if kind == ifc.EventKind.END else "aborted",
        )
        return episode, problems, ""


def _resolve_goal_space(
    bag: Path, meta: BagMeta | None, wanted: GoalSpace | None, problems: list[Problem]
) -> GoalSpace:
    if meta is None:
        if wanted is None:
            raise BagFormatError(
                f"{bag}: no HER metadata (goal space, task); it was not written by her_recorder. "
                "Pass the goal space (goal_space=... or --goal-space NAME) to read it."
            )
        problems.append(
            Problem(
                bag,
                None,
                None,
                "no_metadata",
                f"no HER metadata; assuming goal space {wanted.name!r}",
                "warning",
            )
        )
        return wanted
    if wanted is not None and not meta.goal_space.same_as(wanted):
        raise BagMismatchError(
            f"{bag} was recorded in goal space {meta.goal_space.spec()}, but "
            f"{wanted.spec()} was asked for: rewards would not agree. Read it separately "
            "or relabel it deliberately."
        )
    return meta.goal_space


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
    report = ValidationReport()
    episodes: list[Episode] = []
    dims: tuple[int, int] | None = None
    for bag in find_bags(paths):
        info = inspect_bag(bag)
        src = _BagSource(info)
        bag_report = BagReport(bag, "rosbags", info.needs_recovery)
        bag_problems: list[Problem] = []
        accs = _collect(bag, src, bag_problems)
        bag_report.source = "tolerant scan" if src.tolerant else "rosbags"
        bag_report.notes.extend(src.notes)
        if info.needs_recovery:
            bag_report.notes.insert(0, "; ".join(info.reasons))
        topics = src.all_topics
        meta = src.meta
        if not topics and meta is None:
            bag_problems.append(
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
            report.problems.extend(bag_problems)
            report.bags.append(bag_report)
            continue
        if ifc.TOPIC_STEP not in topics and meta is None:
            raise BagFormatError(
                f"{bag} has no {ifc.TOPIC_STEP} messages (topics: {sorted(topics) or 'none'}) "
                "and no HER metadata: not a HER episode bag"
            )
        _check_schema(src, bag, bag_problems)
        gs = _resolve_goal_space(bag, meta, wanted, bag_problems)
        wanted = wanted or gs
        task = meta.task if meta is not None else ""
        if info.metadata is not None and not info.needs_recovery:
            _check_counts(info, src, bag, bag_problems)
        checker = _EpisodeChecker(bag, gs, task, include_aborted)
        for episode_id in sorted(accs):
            episode, problems, why = checker.check(episode_id, accs[episode_id])
            if episode is not None:
                shape = (episode.observation.shape[1], episode.action_applied.shape[1])
                if dims is None:
                    dims = shape
                elif shape != dims:
                    problems.append(
                        Problem(
                            bag,
                            episode_id,
                            None,
                            "shape",
                            f"(obs, action) dims {shape} differ from the first episode's {dims}",
                        )
                    )
                    episode, why = None, "invalid"
            bag_problems.extend(problems)
            if episode is None:
                report.left_out[why] += 1
                bag_report.episodes_left_out += 1
            else:
                episodes.append(episode)
                bag_report.episodes_read += 1
                bag_report.steps_read += len(episode)
        report.problems.extend(bag_problems)
        report.bags.append(bag_report)
        report.episodes_read += bag_report.episodes_read
        report.steps_read += bag_report.steps_read
    if strict and (report.left_out or not report.ok):
        raise BagFormatError(report.format())
    if log_summary:
        level = logging.WARNING if (report.left_out or not report.ok) else logging.INFO
        log.log(level, "%s", report.summary_line())
    return ReadResult(episodes, report)


def _collect(bag: Path, src: _BagSource, problems: list[Problem]) -> dict[int, _Acc]:
    """Decode the Step and EpisodeEvent messages of one bag, grouped by episode id."""
    store = ifc.typestore()
    for _attempt in range(2):
        accs: dict[int, _Acc] = {}
        undecodable: list[Problem] = []
        try:
            for topic, msgtype, t, data in src.messages(
                only_topics={ifc.TOPIC_STEP, ifc.TOPIC_EPISODE, ifc.TOPIC_DESIRED_GOAL}
            ):
                if (topic, msgtype) not in (
                    (ifc.TOPIC_STEP, ifc.STEP_TYPE),
                    (ifc.TOPIC_EPISODE, ifc.EVENT_TYPE),
                ):
                    continue
                try:
                    msg: Any = store.deserialize_cdr(data, msgtype)
                except (SerdeError, ValueError, IndexError) as exc:
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
                acc = accs.setdefault(int(msg.episode_id), _Acc())
                (acc.steps if msgtype == ifc.STEP_TYPE else acc.events).append(msg)
        except _Restart:
            continue
        if undecodable:
            problems.extend(undecodable[:3])
            if len(undecodable) > 3:
                problems.append(
                    Problem(
                        bag,
                        None,
                        None,
                        "undecodable",
                        f"... {len(undecodable) - 3} more undecodable messages",
                    )
                )
        return accs
    raise BagFormatError(f"{bag}: could not be read")  # pragma: no cover - scan never restarts


def _check_counts(info: BagInfo, src: _BagSource, bag: Path, problems: list[Problem]) -> None:
    """Compare metadata.yaml's per-topic counts with what the files hold."""
    got: Counter[str] = Counter()
    for (topic, _), n in src.topic_counts.items():
        got[topic] += n
    for topic, (_, n) in info.topics.items():
        if topic in (ifc.TOPIC_STEP, ifc.TOPIC_EPISODE) and got.get(topic, 0) != n:
            problems.append(
                Problem(
                    bag,
                    None,
                    None,
                    "metadata_mismatch",
                    f"metadata.yaml says {n} {topic} messages, the files hold {got.get(topic, 0)}; "
                    f"run `her bag recover {bag}` to rebuild metadata.yaml",
                    "warning",
                )
            )


def _events(src: _BagSource) -> list[Any]:
    store = ifc.typestore()
    for _attempt in range(2):
        events: list[Any] = []
        try:
            for _, msgtype, _, data in src.messages(only_topics={ifc.TOPIC_EPISODE}):
                if msgtype == ifc.EVENT_TYPE:
                    try:
                        events.append(store.deserialize_cdr(data, msgtype))
                    except SerdeError:
                        continue
        except _Restart:
            continue
        return events
    return []  # pragma: no cover - the tolerant scan never restarts


def read_events(path: str | Path) -> list[Any]:
    """Decoded EpisodeEvent messages of one bag (for tools and audits)."""
    return _events(_BagSource(inspect_bag(path)))


__all__ = [
    "BagInfo",
    "BagReport",
    "Episode",
    "Problem",
    "ReadResult",
    "ValidationReport",
    "bag_summary",
    "episode_counts",
    "find_bags",
    "inspect_bag",
    "read_episodes",
    "read_events",
]
