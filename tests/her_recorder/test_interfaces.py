"""The .msg files of her_interfaces are the one source of the message definitions."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from her_recorder import EventKind, SafetyFlag, interfaces, typestore
from her_recorder.writer import header

REPO = Path(__file__).resolve().parents[2]
INTERFACES = REPO / "src" / "her_interfaces" / "msg"


@pytest.mark.parametrize("name", interfaces.MSG_NAMES)
def test_python_side_uses_exactly_the_her_interfaces_text(name: str) -> None:
    canonical = (INTERFACES / f"{name}.msg").read_bytes()
    shipped = resources.files("her_recorder").joinpath("msg", f"{name}.msg")
    assert shipped.read_bytes() == canonical
    assert interfaces.msg_text(name).encode() == canonical
    link = REPO / "src" / "her_recorder" / "her_recorder" / "msg" / f"{name}.msg"
    if link.is_symlink():  # the source tree: a link, not a copy that could drift
        assert Path(os.path.realpath(link)) == (INTERFACES / f"{name}.msg").resolve()
    # The typestore registered exactly this text, and a bag carries it verbatim.
    msgtype = f"her_interfaces/msg/{name}"
    assert (
        typestore().fielddefs[msgtype] == get_types_from_msg(canonical.decode(), msgtype)[msgtype]
    )
    msgdef, rihs01 = interfaces.message_definition(msgtype)
    assert msgdef.startswith(canonical.decode())
    assert rihs01 == typestore().hash_rihs01(msgtype)


def test_cmake_builds_every_message() -> None:
    cmake = (INTERFACES.parent / "CMakeLists.txt").read_text()
    for name in interfaces.MSG_NAMES:
        assert f'"msg/{name}.msg"' in cmake
    assert sorted(p.stem for p in INTERFACES.glob("*.msg")) == sorted(interfaces.MSG_NAMES)


def test_python_enums_equal_the_msg_constants() -> None:
    step_consts = {name: value for name, _, value in typestore().fielddefs[interfaces.STEP_TYPE][0]}
    assert step_consts == {f.name: f.value for f in SafetyFlag}
    event_consts = {
        name: value for name, _, value in typestore().fielddefs[interfaces.EVENT_TYPE][0]
    }
    assert event_consts == {k.name: k.value for k in EventKind}


def test_messages_round_trip_through_the_jazzy_typestore() -> None:
    store = typestore()
    types = store.types
    step = types[interfaces.STEP_TYPE](
        header=header(1_700_000_000_123_456_789, "base_link"),
        episode_id=7,
        step=3,
        observation=np.arange(5.0),
        next_observation=np.arange(5.0) + 1,
        action_raw=np.array([2.0, -3.0]),
        action_applied=np.array([1.0, -1.0]),
        achieved_goal=np.zeros(3),
        next_achieved_goal=np.ones(3),
        desired_goal=np.ones(3),
        reward=0.0,
        terminated=False,
        truncated=True,
        is_success=True,
        safety_flags=int(SafetyFlag.CLIPPED | SafetyFlag.WORKSPACE),
        safety_cost=1.5,
        safety_reasons=["clipped", "workspace"],
        policy="0123abcd",
    )
    event = types[interfaces.EVENT_TYPE](
        header=header(5, "base_link"),
        event=int(EventKind.END),
        episode_id=7,
        task="reach",
        goal_space="ee_position",
        desired_goal=np.ones(3),
        num_steps=4,
        success=True,
        reason="success",
        split="eval",
        stream_index=12,
    )
    goal = types[interfaces.GOAL_TYPE](
        header=header(5, "base_link"),
        goal_space="ee_position",
        value=np.ones(3),
        tolerance=0.05,
        episode_id=7,
    )
    for msg, msgtype in (
        (step, interfaces.STEP_TYPE),
        (event, interfaces.EVENT_TYPE),
        (goal, interfaces.GOAL_TYPE),
    ):
        back = store.deserialize_cdr(store.serialize_cdr(msg, msgtype), msgtype)
        for name in msg.__dataclass_fields__:
            a, b = getattr(msg, name), getattr(back, name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b, name
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (0, 5)


def test_a_tool_with_only_the_bag_definition_decodes_our_messages() -> None:
    """What a ROS 2 tool does: build the type from the definition text in the bag."""
    store = typestore()
    fresh = get_typestore(Stores.ROS2_JAZZY)
    msgdef, _ = interfaces.message_definition(interfaces.STEP_TYPE)
    fresh.register(get_types_from_msg(msgdef.split("=" * 80)[0], interfaces.STEP_TYPE))
    msg = store.types[interfaces.STEP_TYPE](
        header=header(1, "f"),
        episode_id=1,
        step=0,
        observation=np.ones(2),
        next_observation=np.ones(2),
        action_raw=np.ones(1),
        action_applied=np.ones(1),
        achieved_goal=np.ones(3),
        next_achieved_goal=np.ones(3),
        desired_goal=np.ones(3),
        reward=-1.0,
        terminated=False,
        truncated=False,
        is_success=False,
        safety_flags=0,
        safety_cost=0.0,
        safety_reasons=[],
        policy="scripted",
    )
    back = fresh.deserialize_cdr(
        store.serialize_cdr(msg, interfaces.STEP_TYPE), interfaces.STEP_TYPE
    )
    assert back.reward == -1.0 and back.step == 0 and back.policy == "scripted"
    assert fresh.hash_rihs01(interfaces.STEP_TYPE) == store.hash_rihs01(interfaces.STEP_TYPE)
