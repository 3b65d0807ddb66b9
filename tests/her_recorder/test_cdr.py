"""The precompiled CDR encoders give rosbags' serialize_cdr bytes, and their bags read back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rosbags.serde import SerdeError

from her_recorder import interfaces as ifc
from her_recorder import typestore
from her_recorder.cdr import (
    EVENT,
    GOAL,
    JOINT_STATE,
    POSE_STAMPED,
    STEP,
    STEP_IS_SUCCESS,
    STEP_REWARD,
    Decoder,
    Encoder,
)


def _text(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("abcé✓ x"), size=int(rng.integers(0, 9))))


def test_random_messages_encode_to_rosbags_bytes() -> None:
    store = typestore()
    types: Any = store.types
    rng = np.random.default_rng(0)
    step, goal, event, joints = Encoder(STEP), Encoder(GOAL), Encoder(EVENT), Encoder(JOINT_STATE)
    pose = Encoder(POSE_STAMPED)
    for _ in range(500):
        sec, nsec, frame = int(rng.integers(0, 2**31)), int(rng.integers(0, 10**9)), _text(rng)
        h = types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame
        )
        arrs = [rng.normal(size=int(rng.integers(0, 6))) for _ in range(7)]
        reasons = [_text(rng) for _ in range(int(rng.integers(0, 3)))]
        m = types[ifc.STEP_TYPE](
            header=h, episode_id=int(rng.integers(0, 2**32)), step=int(rng.integers(0, 2**32)),
            observation=arrs[0], next_observation=arrs[1], action_raw=arrs[2],
            action_applied=arrs[3], achieved_goal=arrs[4], next_achieved_goal=arrs[5],
            desired_goal=arrs[6], reward=float(rng.normal()), terminated=bool(rng.integers(2)),
            truncated=bool(rng.integers(2)), is_success=bool(rng.integers(2)),
            safety_flags=int(rng.integers(0, 1024)), safety_cost=float(rng.normal()),
            safety_reasons=reasons, policy=_text(rng),
        )  # fmt: skip
        assert bytes(store.serialize_cdr(m, ifc.STEP_TYPE)) == step.encode(
            sec, nsec, frame, m.episode_id, m.step, *arrs, m.reward, m.terminated, m.truncated,
            m.is_success, m.safety_flags, m.safety_cost, reasons, m.policy,
        )  # fmt: skip
        g = types[ifc.GOAL_TYPE](
            header=h, goal_space=_text(rng), value=arrs[0], tolerance=float(rng.normal()),
            episode_id=int(rng.integers(0, 2**32)),
        )  # fmt: skip
        assert bytes(store.serialize_cdr(g, ifc.GOAL_TYPE)) == goal.encode(
            sec, nsec, frame, g.goal_space, g.value, g.tolerance, g.episode_id
        )
        e = types[ifc.EVENT_TYPE](
            header=h, event=int(rng.integers(0, 4)), episode_id=3, task=_text(rng),
            goal_space=_text(rng), desired_goal=arrs[1], num_steps=5, success=True,
            reason=_text(rng), split=_text(rng), stream_index=int(rng.integers(-5, 2**40)),
        )  # fmt: skip
        assert bytes(store.serialize_cdr(e, ifc.EVENT_TYPE)) == event.encode(
            sec, nsec, frame, e.event, e.episode_id, e.task, e.goal_space, e.desired_goal,
            e.num_steps, e.success, e.reason, e.split, e.stream_index,
        )  # fmt: skip
        names = [_text(rng) for _ in range(int(rng.integers(0, 4)))]
        j = types["sensor_msgs/msg/JointState"](
            header=h, name=names, position=arrs[2], velocity=arrs[3], effort=arrs[4]
        )
        assert bytes(store.serialize_cdr(j, "sensor_msgs/msg/JointState")) == joints.encode(
            sec, nsec, frame, names, arrs[2], arrs[3], arrs[4]
        )
        xyz, quat = rng.normal(size=3), rng.normal(size=4)
        p = types["geometry_msgs/msg/PoseStamped"](
            header=h,
            pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=xyz[0], y=xyz[1], z=xyz[2]),
                orientation=types["geometry_msgs/msg/Quaternion"](
                    x=quat[0], y=quat[1], z=quat[2], w=quat[3]
                ),
            ),
        )
        assert bytes(store.serialize_cdr(p, "geometry_msgs/msg/PoseStamped")) == pose.encode(
            sec, nsec, frame, *xyz, *quat
        )


def test_step_offsets_point_at_reward_and_success() -> None:
    """The recorder fills reward and is_success in at these offsets after encoding."""
    store = typestore()
    step = Encoder(STEP)
    rng = np.random.default_rng(1)
    for frame in ("", "base_link", "é"):
        arrs = [rng.normal(size=n) for n in (25, 25, 4, 4, 3, 3, 3)]
        data = step.encode(1, 2, frame, 3, 4, *arrs, 0.0, True, False, False, 9, 0.5, ["x"], "p")
        buf = bytearray(data)
        buf[step.last_offsets[STEP_REWARD] : step.last_offsets[STEP_REWARD] + 4] = np.float32(
            -1.0
        ).tobytes()
        buf[step.last_offsets[STEP_IS_SUCCESS]] = 1
        msg = store.deserialize_cdr(bytes(buf), ifc.STEP_TYPE)
        assert (msg.reward, msg.is_success, msg.terminated, msg.truncated) == (-1.0, True, True, False)
        assert msg.safety_flags == 9 and msg.safety_reasons == ["x"] and msg.policy == "p"


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same types, arrays bit for bit (NaN included), fields recursively."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(
            _same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__
        )
    return type(a) is type(b) and a == b


def test_decoders_give_deserialize_cdr_values_on_random_messages() -> None:
    """Each decoder is fed a stream of random messages whose lengths sometimes repeat (the
    precompiled fast path) and sometimes change (rosbags' decode, then a new layout)."""
    store = typestore()
    rng = np.random.default_rng(2)
    encoders = {
        ifc.STEP_TYPE: Encoder(STEP), ifc.GOAL_TYPE: Encoder(GOAL),
        ifc.EVENT_TYPE: Encoder(EVENT), "sensor_msgs/msg/JointState": Encoder(JOINT_STATE),
        "geometry_msgs/msg/PoseStamped": Encoder(POSE_STAMPED),
    }  # fmt: skip
    fast = 0
    for msgtype, encoder in encoders.items():
        decoder = Decoder(store, msgtype)
        assert decoder.kinds == encoder.kinds  # the hand-written layouts are the typestore's
        lengths = None
        for _ in range(400):
            if lengths is None or rng.random() < 0.3:  # new lengths
                lengths = [int(rng.integers(0, 6)) for _ in encoder.kinds]
            values: list[Any] = []
            for kind, n in zip(encoder.kinds, lengths, strict=True):
                if kind == "str":
                    values.append("é" + "".join(rng.choice(list("ab c"), size=n)))
                elif kind == "f64[]":
                    arr = rng.normal(size=n)
                    if n and rng.random() < 0.2:
                        arr[0] = np.nan
                    values.append(arr)
                elif kind == "str[]":
                    values.append(["✓" * int(i) for i in range(n)])
                elif kind in ("f32", "f64"):
                    values.append(float(np.float32(rng.normal())))
                elif kind == "bool":
                    values.append(bool(rng.integers(2)))
                else:
                    values.append(int(rng.integers(0, 200)))
            data = encoder.encode(*values)
            fast += decoder._last is not None and decoder._last(data) is not None
            assert _same(decoder.decode(data), store.deserialize_cdr(data, msgtype)), msgtype
    assert fast > 1000  # most messages took the precompiled path


def test_a_malformed_message_is_rosbags_error() -> None:
    store = typestore()
    decoder = Decoder(store, ifc.GOAL_TYPE)
    data = Encoder(GOAL).encode(1, 2, "base_link", "ee_position", np.zeros(3), 0.05, 7)
    assert decoder.decode(data).episode_id == 7
    n = len("base_link")
    no_terminator = data[: 16 + n] + b"x" + data[17 + n :]
    not_utf8 = data[:16] + b"\xff" + data[17:]
    for bad in (data[:-9], data[:20], data + b"\x00" * 8, no_terminator, not_utf8):
        with pytest.raises(SerdeError):
            decoder.decode(bad)
    assert decoder.decode(data + b"\x00" * 3).episode_id == 7  # trailing pad, as rosbags allows
