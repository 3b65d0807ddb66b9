"""Bag benchmarks: write and read throughput beside rosbags and mcap, and the 1 kHz drop test.

    .venv/bin/python bench/bench_bags.py                 # full: 200 episodes, 60 s drop test
    .venv/bin/python bench/bench_bags.py --seconds 5 --episodes 50   # quick

Write: episodes of ``--steps`` steps (obs 25, action 4, goal 3, plus /joint_states
and /object_pose per step) through :class:`EpisodeRecorder` from prebuilt inputs (arrays
and message objects, as a control loop hands them over), timed per episode from START to
the return of ``end_episode``; p50/p99 per episode and msgs/s, with per-episode fsync on
and off and with zstd chunks. Beside it, in the same run and interleaved round by round,
rosbags' ``Writer`` and the ``mcap`` package's ``Writer`` write the very bytes our
recorder wrote (read back from its bag), under the same policy: chunk closed, file flushed
and fsynced at every episode end; and "fsync alone" writes each episode's bytes in one
call and fsyncs, the disk's own ceiling. Ratios are ours over each peer.

Read: :func:`read_episodes` (decode + validation + arrays) in steps/s, beside rosbags'
Reader with ``deserialize_cdr`` of the same HER topics and rosbags iterating every
message without decoding.

Drop test: a producer thread runs a 1 kHz loop that records 6 topics per tick
(/her/step through the episode API, and /her/achieved_goal, /her/desired_goal,
/joint_states, /object_pose, /her/command as serialised messages, the way a ROS
node receives them) into a recorder with a background writer
(``queue_size``); episodes of 1 s end with ``end_episode(wait=False)``, so
their fsync happens on the writer thread. It counts messages sent, written and
dropped (target 0) and checks sent == written + dropped by reading the bags back.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from her_goals import get_goal_space
from her_recorder import EpisodeRecorder, cdr, find_bags, read_episodes, typestore
from her_recorder.writer import header

SPACE = get_goal_space("ee_position")
OBS, ACT = 25, 4


def _raw(types: Any, t: int) -> tuple[Any, Any]:
    js = types["sensor_msgs/msg/JointState"](
        header=header(t, "base_link"),
        name=[f"joint{i}" for i in range(7)],
        position=np.zeros(7),
        velocity=np.zeros(7),
        effort=np.zeros(7),
    )
    pose = types["geometry_msgs/msg/PoseStamped"](
        header=header(t, "base_link"),
        pose=types["geometry_msgs/msg/Pose"](
            position=types["geometry_msgs/msg/Point"](x=0.1, y=0.2, z=0.3),
            orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
    )
    return js, pose


T0 = 1_700_000_000_000_000_000
DT = 20_000_000


class Inputs:
    """What a control loop hands the recorder, built before any clock starts: the step
    arrays of every episode and the /joint_states and /object_pose message objects."""

    def __init__(self, episodes: int, steps: int) -> None:
        rng = np.random.default_rng(0)
        types = typestore().types
        self.episodes, self.steps = episodes, steps
        self.obs = rng.normal(size=(episodes, steps + 1, OBS))
        self.act = rng.uniform(-1, 1, size=(episodes, steps, ACT))
        self.ag = rng.uniform(-0.5, 0.5, size=(episodes, steps + 1, 3))
        self.goal = rng.uniform(-0.5, 0.5, size=(episodes, 3))
        self.raw = [
            [_raw(types, T0 + (e * (steps + 2) + s + 1) * DT) for s in range(steps)]
            for e in range(episodes)
        ]

    def stamp(self, episode: int, step: int) -> int:
        return T0 + (episode * (self.steps + 2) + step + 1) * DT

    @property
    def messages_per_episode(self) -> int:
        return 2 + 3 * self.steps + 1  # START + desired goal, 3 per step, END


def _pct(values: list[float]) -> str:
    ms = 1e3 * np.asarray(values)
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"


def write_session(path: Path, inputs: Inputs, **options: Any) -> dict[str, Any]:
    """Record every episode of ``inputs`` through :class:`EpisodeRecorder`; time each episode
    from its START to the return of ``end_episode`` (durable then, with fsync on)."""
    per_episode: list[float] = []
    steps = inputs.steps
    with EpisodeRecorder(path, goal_space=SPACE, task="bench", **options) as rec:
        for e in range(inputs.episodes):
            obs, act, ag, raw = inputs.obs[e], inputs.act[e], inputs.ag[e], inputs.raw[e]
            t0 = time.perf_counter()
            rec.start_episode(inputs.goal[e], stamp_ns=inputs.stamp(e, -1))
            for s in range(steps):
                t = inputs.stamp(e, s)
                rec.record_step(
                    observation=obs[s],
                    next_observation=obs[s + 1],
                    action_raw=act[s],
                    achieved_goal=ag[s],
                    next_achieved_goal=ag[s + 1],
                    truncated=s == steps - 1,
                    stamp_ns=t,
                )
                js, pose = raw[s]
                rec.record_raw("/joint_states", js, t)
                rec.record_raw("/object_pose", pose, t)
            rec.end_episode(stamp_ns=inputs.stamp(e, steps))
            per_episode.append(time.perf_counter() - t0)
    return {
        "per_episode": per_episode,
        "messages": inputs.episodes * inputs.messages_per_episode,
        "bytes": sum(f.stat().st_size for f in path.rglob("*.mcap")),
    }


def _recorded(path: Path) -> tuple[list[Any], list[list[tuple[int, int, bytes]]]]:
    """The connections and, per episode, the (connection index, stamp, bytes) our recorder
    wrote: the peers write exactly these serialised messages."""
    (bag,) = find_bags(path)
    with Reader(bag) as reader:
        conns = list(reader.connections)
        index = {c.id: i for i, c in enumerate(conns)}
        episodes: list[list[tuple[int, int, bytes]]] = [[]]
        for conn, t, data in reader.messages():
            episodes[-1].append((index[conn.id], t, bytes(data)))
            if conn.topic == "/her/episode" and _event_kind(data) != 1:  # START is 1
                episodes.append([])
    return conns, [e for e in episodes if e]


def _event_kind(data: bytes) -> int:
    # EpisodeEvent: header (sec, nanosec, frame_id), then the uint8 event.
    n = int.from_bytes(data[12:16], "little")
    return data[16 + n]


def peer_rosbags(path: Path, conns: list[Any], episodes: list[Any], fsync: bool) -> list[float]:
    """rosbags' own Writer.write of the same bytes; at each episode end its chunk closed,
    the file flushed and (with ``fsync``) fsynced: our recorder's durability policy."""
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    ours = [
        writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest)
        for c in conns
    ]
    storage: Any = writer.storage
    per_episode = []
    for messages in episodes:
        t0 = time.perf_counter()
        for i, t, data in messages:
            writer.write(ours[i], t, data)
        storage.close_chunk()
        storage.bio.flush()
        if fsync:
            os.fsync(storage.bio.fileno())
        per_episode.append(time.perf_counter() - t0)
    writer.close()
    return per_episode


def peer_mcap(path: Path, conns: list[Any], episodes: list[Any], fsync: bool) -> list[float]:
    """The ``mcap`` package's Writer (uncompressed chunks, ros2 profile) of the same bytes;
    ``flush()`` (its chunk closed) and fsync at each episode end."""
    path.mkdir(parents=True)
    with (path / "peer.mcap").open("wb") as fh:
        writer = McapWriter(fh, compression=CompressionType.NONE)
        writer.start(profile="ros2")
        channels = []
        for c in conns:
            schema = writer.register_schema(c.msgtype, "ros2msg", c.msgdef.data.encode())
            channels.append(writer.register_channel(c.topic, "cdr", schema))
        per_episode = []
        for messages in episodes:
            t0 = time.perf_counter()
            for i, t, data in messages:
                writer.add_message(channels[i], t, data, t)
            writer.flush()
            if fsync:
                os.fsync(fh.fileno())
            per_episode.append(time.perf_counter() - t0)
        writer.finish()
    return per_episode


def fsync_only(path: Path, episodes: list[Any]) -> list[float]:
    """The disk's share alone: each episode's bytes in one write, then fsync."""
    per_episode = []
    with path.open("wb") as fh:
        for messages in episodes:
            blob = b"".join(data for _, _, data in messages)
            t0 = time.perf_counter()
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
            per_episode.append(time.perf_counter() - t0)
    return per_episode


def bench_write(root: Path, episodes: int, steps: int, rounds: int) -> Path:
    """The write figures; returns our fsync-per-episode session (for the read bench)."""
    inputs = Inputs(episodes, steps)
    n_msgs = episodes * inputs.messages_per_episode
    print(
        f"== write: {episodes} episodes x {steps} steps (obs {OBS}, action {ACT}, goal 3; "
        f"Step + /joint_states + /object_pose per step, {inputs.messages_per_episode} messages "
        f"per episode), {rounds} rounds interleaved, the median round shown"
    )
    ours = {
        "ours, fsync per episode": {},
        "ours, flush only (no fsync)": {"fsync": False},
        "ours, zstd chunks + fsync": {"compression": "zstd"},
    }
    write_session(root / "warmup", Inputs(2, steps))
    conns: list[Any] = []
    recorded: list[Any] = []
    results: dict[str, list[list[float]]] = {}
    for r in range(rounds):
        for i, (name, options) in enumerate(ours.items()):
            session = root / f"w{r}_{i}"
            results.setdefault(name, []).append(write_session(session, inputs, **options)["per_episode"])
            if not recorded:
                conns, recorded = _recorded(session)
                assert sum(len(e) for e in recorded) == n_msgs, "episodes split wrongly"
        for fsync in (True, False):
            policy = "fsync per episode" if fsync else "flush only"
            results.setdefault(f"rosbags Writer, {policy}", []).append(
                peer_rosbags(root / f"rb{r}_{fsync}", conns, recorded, fsync)
            )
            results.setdefault(f"mcap Writer, {policy}", []).append(
                peer_mcap(root / f"mc{r}_{fsync}", conns, recorded, fsync)
            )
        results.setdefault("fsync alone (bytes in one write)", []).append(
            fsync_only(root / f"fs{r}.bin", recorded)
        )
    rate: dict[str, float] = {}
    for name, runs in results.items():
        totals = [sum(run) for run in runs]
        median = runs[int(np.argsort(totals)[len(totals) // 2])]
        rate[name] = n_msgs / sum(median)
        print(f"  {name:<36} {rate[name]:>9.0f} msgs/s  per episode {_pct(median)}")
    for policy in ("fsync per episode", "flush only"):
        key = "ours, " + ("fsync per episode" if policy == "fsync per episode" else "flush only (no fsync)")
        print(
            f"  ratio, {policy}: ours / rosbags Writer {rate[key] / rate[f'rosbags Writer, {policy}']:.2f}x, "
            f"ours / mcap Writer {rate[key] / rate[f'mcap Writer, {policy}']:.2f}x"
        )
    return root / f"w{rounds // 2}_0"


def bench_encode(n: int = 20_000) -> None:
    """One Step of the push task through our precompiled encoder and decoder, beside rosbags'
    serialize_cdr and deserialize_cdr of the same message."""
    store = typestore()
    types: Any = store.types
    rng = np.random.default_rng(1)
    obs, act, ag = rng.normal(size=OBS), rng.normal(size=ACT), rng.normal(size=3)
    msg = types["her_interfaces/msg/Step"](
        header=header(T0, "base_link"), episode_id=1, step=2, observation=obs,
        next_observation=obs, action_raw=act, action_applied=act, achieved_goal=ag,
        next_achieved_goal=ag, desired_goal=ag, reward=-1.0, terminated=False, truncated=False,
        is_success=False, safety_flags=0, safety_cost=0.0, safety_reasons=[], policy="scripted",
    )  # fmt: skip
    step = cdr.Encoder(cdr.STEP)
    args = (1_700_000_000, 0, "base_link", 1, 2, obs, obs, act, act, ag, ag, ag,
            -1.0, False, False, False, 0, 0.0, [], "scripted")  # fmt: skip
    data = step.encode(*args)
    assert data == bytes(store.serialize_cdr(msg, "her_interfaces/msg/Step"))
    decoder = cdr.Decoder(store, "her_interfaces/msg/Step")
    decoder.decode(data)  # learns the layout
    timings: dict[str, float] = {}
    for _ in range(3):  # interleaved; the best of three each
        for name, fn in (
            ("ours", lambda: step.encode(*args)),
            ("serialize_cdr", lambda: store.serialize_cdr(msg, "her_interfaces/msg/Step")),
            ("ours decode", lambda: decoder.decode(data)),
            ("deserialize_cdr", lambda: store.deserialize_cdr(data, "her_interfaces/msg/Step")),
        ):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            timings[name] = min(timings.get(name, 1e9), (time.perf_counter() - start) / n)
    print(
        f"== encode one Step (obs {OBS}, action {ACT}, goal 3): ours {1e6 * timings['ours']:.2f} us, "
        f"rosbags serialize_cdr {1e6 * timings['serialize_cdr']:.2f} us "
        f"({timings['serialize_cdr'] / timings['ours']:.2f}x faster)"
    )
    print(
        f"== decode the same Step: ours {1e6 * timings['ours decode']:.2f} us, "
        f"rosbags deserialize_cdr {1e6 * timings['deserialize_cdr']:.2f} us "
        f"({timings['deserialize_cdr'] / timings['ours decode']:.2f}x faster)"
    )


def bench_read(session: Path, rounds: int) -> None:
    """Our reader into episodes beside rosbags iterating and decoding the same bag, the three
    interleaved for ``rounds`` rounds; the median of each shown."""
    (bag,) = find_bags(session)
    store = typestore()
    wanted = {"/her/step", "/her/episode", "/her/desired_goal"}

    def ours() -> int:
        result = read_episodes(session, log_summary=False)
        arrays = {
            k: np.concatenate([getattr(e, k) for e in result.episodes])
            for k in ("observation", "next_observation", "action",
                      "achieved_goal", "next_achieved_goal", "desired_goal")
        }  # fmt: skip
        return int(arrays["observation"].shape[0])

    def decode() -> int:
        decoded = 0
        with Reader(bag) as reader:
            conns = [c for c in reader.connections if c.topic in wanted]
            for conn, _, data in reader.messages(connections=conns):
                store.deserialize_cdr(data, conn.msgtype)
                decoded += conn.topic == "/her/step"
        return decoded

    def iterate() -> int:
        with Reader(bag) as reader:
            return sum(1 for _ in reader.messages())

    times: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("decode", decode), ("iterate", iterate)):
            start = time.perf_counter()
            counts[name] = fn()
            times.setdefault(name, []).append(time.perf_counter() - start)
    assert counts["ours"] == counts["decode"]
    rate = {name: counts[name] / float(np.median(t)) for name, t in times.items()}
    summary = read_episodes(session, log_summary=False).report.summary_line()
    print(f"== read: {counts['ours']} steps, {rounds} rounds interleaved, medians; {summary}")
    print(
        f"  ours, read_episodes (decode + validate + arrays) {rate['ours']:>9.0f} steps/s\n"
        f"  rosbags Reader + deserialize_cdr, HER topics     {rate['decode']:>9.0f} steps/s "
        f"(ours {rate['ours'] / rate['decode']:.2f}x)\n"
        f"  rosbags Reader, iterate every message, no decode {rate['iterate']:>9.0f} msgs/s"
    )


def drop_test(
    root: Path, seconds: float, rate_hz: float = 1000.0, queue_size: int = 20_000
) -> None:
    print(
        f"== drop test: {rate_hz:.0f} Hz x 6 topics for {seconds:g} s "
        f"(writer thread, queue {queue_size} messages, 1 s episodes, fsync per episode)"
    )
    store = typestore()
    types = store.types
    js, pose = _raw(types, 0)
    goal = types["her_interfaces/msg/Goal"](
        header=header(0, "base_link"),
        goal_space=SPACE.name,
        value=np.zeros(3),
        tolerance=SPACE.tolerance,
        episode_id=0,
    )
    command = types["std_msgs/msg/Float64MultiArray"](
        layout=types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0), data=np.zeros(7)
    )
    raw = {
        "/her/achieved_goal": (
            "her_interfaces/msg/Goal",
            bytes(store.serialize_cdr(goal, "her_interfaces/msg/Goal")),
        ),
        "/her/desired_goal": (
            "her_interfaces/msg/Goal",
            bytes(store.serialize_cdr(goal, "her_interfaces/msg/Goal")),
        ),
        "/joint_states": (
            "sensor_msgs/msg/JointState",
            bytes(store.serialize_cdr(js, "sensor_msgs/msg/JointState")),
        ),
        "/object_pose": (
            "geometry_msgs/msg/PoseStamped",
            bytes(store.serialize_cdr(pose, "geometry_msgs/msg/PoseStamped")),
        ),
        "/her/command": (
            "std_msgs/msg/Float64MultiArray",
            bytes(store.serialize_cdr(command, "std_msgs/msg/Float64MultiArray")),
        ),
    }
    path = root / "drop"
    rec = EpisodeRecorder(
        path, goal_space=SPACE, task="drop", queue_size=queue_size, max_bag_bytes=256 * 2**20
    )
    rec.open()
    obs = np.zeros(OBS)
    act = np.zeros(ACT)
    ag = np.zeros(3)
    ticks = int(seconds * rate_hz)
    period = 1.0 / rate_hz
    sent = 0
    late = 0
    worst_lag = 0.0
    steps_per_episode = int(rate_hz)

    def producer() -> None:
        nonlocal sent, late, worst_lag
        start = time.perf_counter()
        for tick in range(ticks):
            deadline = start + tick * period
            now = time.perf_counter()
            if deadline > now:
                time.sleep(deadline - now)
            else:
                lag = now - deadline
                worst_lag = max(worst_lag, lag)
                if lag > period:
                    late += 1
            t = time.time_ns()
            if tick % steps_per_episode == 0:
                if rec.episode_id is not None:
                    rec.end_episode(stamp_ns=t, wait=False)
                    sent += 1
                rec.start_episode(ag, stamp_ns=t + 1)
                sent += 2
            rec.record_step(
                observation=obs,
                next_observation=obs,
                action_raw=act,
                achieved_goal=ag,
                next_achieved_goal=ag,
                stamp_ns=t + 2,
            )
            for topic, (msgtype, data) in raw.items():
                rec.record_serialized(topic, msgtype, data, t + 2)
            sent += 6
        rec.end_episode(stamp_ns=time.time_ns(), wait=False)
        sent += 1

    start = time.perf_counter()
    thread = threading.Thread(target=producer)
    thread.start()
    thread.join()
    produced = time.perf_counter() - start
    rec.close()
    drained = time.perf_counter() - start
    written = 0
    for bag in find_bags(path):
        with Reader(bag) as reader:
            written += reader.message_count
    print(
        f"  sent {sent} messages in {produced:.2f} s ({sent / produced:.0f} msgs/s, "
        f"{ticks / produced:.0f} ticks/s achieved); closed after {drained:.2f} s"
    )
    print(
        f"  written {written}, dropped {rec.dropped_messages} "
        f"(sent == written + dropped: {sent == written + rec.dropped_messages}); "
        f"producer ticks late by > 1 period: {late}, worst lag {1e3 * worst_lag:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="drop test duration (s)")
    parser.add_argument("--episodes", type=int, default=200, help="episodes in the write bench")
    parser.add_argument("--steps", type=int, default=50, help="steps per episode")
    parser.add_argument("--rounds", type=int, default=3, help="write rounds (median shown)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="work directory (default: a temp dir)"
    )
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="her_bench_bags_"))
    try:
        bench_encode()
        session = bench_write(root, args.episodes, args.steps, args.rounds)
        bench_read(session, 2 * args.rounds + 1)
        drop_test(root, args.seconds)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
