"""Bag benchmarks: write and read throughput, fsync cost, and the 1 kHz recorder drop test.

    .venv/bin/python bench/bench_bags.py                 # full: 200 episodes, 60 s drop test
    .venv/bin/python bench/bench_bags.py --seconds 5 --episodes 50   # quick

Write: episodes of ``--steps`` steps (obs 25, action 4, goal 3, plus /joint_states
and /object_pose per step) through :class:`EpisodeRecorder`, in messages/s and
steps/s, with per-episode fsync on and off and with zstd chunks. Read:
:func:`read_episodes` (decode + validation) into numpy episodes and concatenated
replay-buffer arrays, in steps/s and messages/s.

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
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader

from her_goals import get_goal_space
from her_recorder import EpisodeRecorder, find_bags, read_episodes, typestore
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


def write_session(path: Path, episodes: int, steps: int, **options: Any) -> dict[str, float]:
    """Record a session; return timings."""
    rng = np.random.default_rng(0)
    types = typestore().types
    obs = rng.normal(size=(steps + 1, OBS))
    act = rng.uniform(-1, 1, size=(steps, ACT))
    ag = rng.uniform(-0.5, 0.5, size=(steps + 1, 3))
    t = 1_700_000_000_000_000_000
    end_times: list[float] = []
    messages = 0
    start = time.perf_counter()
    with EpisodeRecorder(path, goal_space=SPACE, task="bench", **options) as rec:
        for _ in range(episodes):
            rec.start_episode(ag[-1], stamp_ns=t)
            messages += 2
            for s in range(steps):
                t += 20_000_000
                rec.record_step(
                    observation=obs[s],
                    next_observation=obs[s + 1],
                    action_raw=act[s],
                    achieved_goal=ag[s],
                    next_achieved_goal=ag[s + 1],
                    truncated=s == steps - 1,
                    stamp_ns=t,
                )
                js, pose = _raw(types, t)
                rec.record_raw("/joint_states", js, t)
                rec.record_raw("/object_pose", pose, t)
                messages += 3
            t += 20_000_000
            t0 = time.perf_counter()
            rec.end_episode(stamp_ns=t)
            end_times.append(time.perf_counter() - t0)
            messages += 1
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "messages": messages,
        "steps": episodes * steps,
        "end_ms_median": 1e3 * statistics.median(end_times),
        "end_ms_p95": 1e3 * float(np.percentile(end_times, 95)),
        "bytes": sum(f.stat().st_size for f in path.rglob("*.mcap")),
    }


def bench_write_read(root: Path, episodes: int, steps: int) -> None:
    print(
        f"== write: {episodes} episodes x {steps} steps (obs {OBS}, action {ACT}, goal 3; "
        "Step + /joint_states + /object_pose per step)"
    )
    variants = {
        "fsync per episode": {},
        "flush only (no fsync)": {"fsync": False},
        "zstd chunks + fsync": {"compression": "zstd"},
    }
    timings = {}
    for name, options in variants.items():
        path = root / name.replace(" ", "_").replace("(", "").replace(")", "")
        r = write_session(path, episodes, steps, **options)
        timings[name] = r
        print(
            f"  {name:<24} {r['messages'] / r['seconds']:>9.0f} msgs/s  "
            f"{r['steps'] / r['seconds']:>8.0f} steps/s  end_episode median "
            f"{r['end_ms_median']:.2f} ms (p95 {r['end_ms_p95']:.2f})  "
            f"{r['bytes'] / 1e6:.1f} MB"
        )
    cost = (
        timings["fsync per episode"]["end_ms_median"]
        - timings["flush only (no fsync)"]["end_ms_median"]
    )
    print(f"  fsync cost: {cost:.2f} ms per episode (median end_episode, fsync minus flush-only)")

    for name in ("fsync per episode", "zstd chunks + fsync"):
        path = root / name.replace(" ", "_").replace("(", "").replace(")", "")
        start = time.perf_counter()
        result = read_episodes(path, log_summary=False)
        arrays = {
            k: np.concatenate([getattr(e, k) for e in result.episodes])
            for k in ("observation", "next_observation", "action",
                      "achieved_goal", "next_achieved_goal", "desired_goal")
        }  # fmt: skip
        elapsed = time.perf_counter() - start
        n_steps = int(arrays["observation"].shape[0])
        n_msgs = n_steps + 2 * len(result.episodes)  # Step and EpisodeEvent messages decoded
        print(
            f"== read ({name}): {n_steps / elapsed:.0f} steps/s into numpy episodes + buffer "
            f"arrays ({n_msgs / elapsed:.0f} HER msgs/s decoded and validated); "
            f"{result.report.summary_line()}"
        )
        start = time.perf_counter()
        count = 0
        for bag in find_bags(path):
            with Reader(bag) as reader:
                for _ in reader.messages():
                    count += 1
        elapsed = time.perf_counter() - start
        print(f"   raw rosbags read (no decode): {count / elapsed:.0f} msgs/s")


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
    parser.add_argument(
        "--dir", type=Path, default=None, help="work directory (default: a temp dir)"
    )
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="her_bench_bags_"))
    try:
        bench_write_read(root, args.episodes, args.steps)
        drop_test(root, args.seconds)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
