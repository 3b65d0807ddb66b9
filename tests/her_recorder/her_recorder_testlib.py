"""Shared helpers of the her_recorder tests: record small sessions with known content."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from her_goals import GoalSpace, get_goal_space
from her_recorder import EpisodeRecorder, typestore
from her_recorder.writer import header

SPACE: GoalSpace = get_goal_space("ee_position")


@dataclass
class Recorded:
    """What a test recorded, step by step, to compare with what is read back."""

    episodes: dict[int, dict[str, Any]] = field(default_factory=dict)


def record_session(
    path: Path,
    *,
    n_episodes: int = 4,
    n_steps: int = 10,
    seed: int = 0,
    raw: bool = True,
    succeed_every: int = 2,
    **options: Any,
) -> Recorded:
    """Record ``n_episodes`` episodes of ``n_steps`` steps with random but known data."""
    rng = np.random.default_rng(seed)
    out = Recorded()
    types = typestore().types
    t = 1_700_000_000_000_000_000
    with EpisodeRecorder(
        path, goal_space=SPACE, task="reach", config={"lr": 1e-3}, seeds={"train": seed}, **options
    ) as rec:
        for e in range(n_episodes):
            desired = rng.uniform(-0.5, 0.5, 3)
            episode_id = rec.start_episode(desired, stamp_ns=t)
            obs = rng.normal(size=6)
            ag = rng.uniform(-0.5, 0.5, 3)
            rows: dict[str, list[Any]] = {
                k: []
                for k in (
                    "observation",
                    "next_observation",
                    "action_raw",
                    "action_applied",
                    "achieved_goal",
                    "next_achieved_goal",
                    "stamp_ns",
                    "safety_flags",
                )
            }
            for s in range(n_steps):
                t += 10_000_000
                obs2 = rng.normal(size=6)
                last = s == n_steps - 1
                ag2 = (
                    desired + 0.001
                    if (last and e % succeed_every == 0)
                    else rng.uniform(-0.5, 0.5, 3)
                )
                act = rng.uniform(-2, 2, 4)
                applied = np.clip(act, -1, 1)
                flags = 1 if (np.abs(act) > 1).any() else 0
                rec.record_step(
                    observation=obs,
                    next_observation=obs2,
                    action_raw=act,
                    action_applied=applied,
                    achieved_goal=ag,
                    next_achieved_goal=ag2,
                    truncated=last,
                    safety_flags=flags,
                    safety_cost=float(flags),
                    safety_reasons=["clipped"] if flags else [],
                    stamp_ns=t,
                )
                for k, v in (
                    ("observation", obs),
                    ("next_observation", obs2),
                    ("action_raw", act),
                    ("action_applied", applied),
                    ("achieved_goal", ag),
                    ("next_achieved_goal", ag2),
                    ("stamp_ns", t),
                    ("safety_flags", flags),
                ):
                    rows[k].append(v)
                if raw:
                    js = types["sensor_msgs/msg/JointState"](
                        header=header(t, ""),
                        name=["a", "b"],
                        position=obs[:2],
                        velocity=np.zeros(2),
                        effort=np.zeros(2),
                    )
                    rec.record_raw("/joint_states", js, t)
                obs, ag = obs2, ag2
            t += 10_000_000
            ended = rec.end_episode(stamp_ns=t)
            out.episodes[episode_id] = {
                **{k: np.array(v) for k, v in rows.items()},
                "desired_goal": desired,
                "success": ended.success,
            }
            t += 10_000_000
    return out


# -- editing bags the way a reviewer would: read every message, change some, write a new bag --

OLD_MSG_DIR = Path(__file__).parent / "old_msgs"
"""The her_interfaces .msg text of bags written before provenance (no split, stream_index, policy)."""


def old_typestore() -> Any:
    """A Jazzy typestore with the her_interfaces messages as they were before provenance."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from her_recorder.interfaces import MSG_NAMES, msg_text

    store = get_typestore(Stores.ROS2_JAZZY)
    for name in MSG_NAMES:
        old = OLD_MSG_DIR / f"{name}.msg"
        text = old.read_text() if old.exists() else msg_text(name)
        store.register(get_types_from_msg(text, f"her_interfaces/msg/{name}"))
    return store


def _msgdef(msgtype: str, store: Any, *, old_schema: bool) -> tuple[str, str]:
    """The connection text a recorder writes: her_interfaces .msg verbatim (the old text with
    ``old_schema``), then the dependencies."""
    from her_recorder import interfaces as ifc

    old = OLD_MSG_DIR / f"{msgtype.split('/')[-1]}.msg"
    if not msgtype.startswith("her_interfaces/"):
        return store.generate_msgdef(msgtype, ros_version=2)[0], store.hash_rihs01(msgtype)
    if not (old_schema and old.exists()):
        return ifc.message_definition(msgtype, store)  # type: ignore[no-any-return]
    generated, _ = store.generate_msgdef(msgtype, ros_version=2)
    _, mark, deps = generated.partition("=" * 80)
    return old.read_text() + mark + deps, store.hash_rihs01(msgtype)


def bag_strings(bag: Path) -> dict[str, str]:
    """The HER key/values a closed bag's metadata.yaml holds (custom_data)."""
    import yaml

    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return {str(k): str(v) for k, v in (info.get("custom_data") or {}).items()}


def rewrite_bag(
    src: Path,
    dst: Path,
    edit: Callable[[list[tuple[str, Any, int]]], list[tuple[str, Any, int]]] | None = None,
    *,
    meta: Callable[[dict[str, str]], dict[str, str]] | None = None,
    recount: bool = True,
    old_schema: bool = False,
) -> Path:
    """Write ``dst``: the bag ``src`` with its HER messages decoded, passed through ``edit``
    (a list of ``(topic, message, log_time_ns)`` in bag order, raw topics as bytes) and
    written again, with ``meta`` applied to its HER metadata (both metadata.yaml and the
    MCAP metadata record, as the recorder writes them). ``recount`` rewrites the episode
    counts the recorder writes on close to match the edited events, as a careful editor
    would; ``old_schema`` writes the her_interfaces messages with the definitions of bags
    recorded before provenance (fields they lack are dropped)."""
    import dataclasses as dc
    import json

    from rosbags.rosbag2 import Reader

    from her_recorder import interfaces as ifc
    from her_recorder.bagmeta import KEY_EPISODES, MCAP_METADATA_NAME
    from her_recorder.mcapscan import metadata_record
    from her_recorder.rosbags_adapter import open_mcap

    her_topics = {ifc.TOPIC_STEP, ifc.TOPIC_EPISODE, ifc.TOPIC_DESIRED_GOAL}
    items: list[tuple[str, Any, int]] = []
    types: dict[str, str] = {}
    with Reader(src) as reader:
        for conn, t, data in reader.messages():
            types[conn.topic] = conn.msgtype
            if conn.topic in her_topics:
                store = ifc.typestore_for(conn.msgtype, conn.msgdef.data)
                items.append((conn.topic, store.deserialize_cdr(bytes(data), conn.msgtype), t))
            else:
                items.append((conn.topic, bytes(data), t))
    if edit is not None:
        items = edit(items)
    strings = bag_strings(src)
    if meta is not None:
        strings = meta(dict(strings))
    if recount and KEY_EPISODES in strings:
        ended: dict[str, list[int]] = {"ended": [], "aborted": [], "discarded": []}
        names = {1: "ended", 2: "aborted", 3: "discarded"}
        for topic, msg, _ in items:
            if topic == ifc.TOPIC_EPISODE and int(msg.event) in names:
                ended[names[int(msg.event)]].append(int(msg.episode_id))
        counts: dict[str, Any] = {k: len(v) for k, v in ended.items()}
        ids = [i for v in ended.values() for i in v]
        if ids:
            counts.update(first_id=min(ids), last_id=max(ids))
        strings[KEY_EPISODES] = json.dumps(counts, sort_keys=True, separators=(",", ":"))
    store = old_typestore() if old_schema else ifc.typestore()
    writer, storage = open_mcap(dst, zstd=False)
    storage.append_record(metadata_record(MCAP_METADATA_NAME, strings))
    conns: dict[str, Any] = {}
    for topic, msg, t in items:
        msgtype = types.get(topic) or str(msg.__msgtype__)
        if topic not in conns:
            msgdef, rihs01 = _msgdef(msgtype, store, old_schema=old_schema)
            conns[topic] = writer.add_connection(
                topic, msgtype, msgdef=msgdef, rihs01=rihs01, offered_qos_profiles=ifc.offered_qos(topic)
            )
        if isinstance(msg, bytes):
            data = msg
        else:
            if old_schema:
                cls = store.types[msgtype]
                fields = {f.name: getattr(msg, f.name) for f in dc.fields(cls)}
                msg = cls(**fields)
            data = store.serialize_cdr(msg, msgtype)
        writer.write(conns[topic], t, data)
    for key, value in strings.items():
        writer.set_custom_data(key, value)
    writer.close()
    return dst
