"""Message types, topics and the rosbags typestore of HER-ROS bags.

The ``.msg`` files of ``her_interfaces`` are the single source of the message
definitions: ``her_recorder/msg/*.msg`` are symlinks to them (a wheel copies the
text), the ROS 2 build generates code from them, and :func:`typestore` registers
exactly that text with the rosbags ROS 2 Jazzy typestore. A bag's connections
carry the same text (plus the definitions it depends on, in the
``===\\nMSG: pkg/Type`` layout rosbag2 uses), so ROS 2 tools can decode it.
"""

from __future__ import annotations

import functools
from importlib import resources

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from her_goals.episode import EventKind
from her_goals.safety_flags import SafetyFlag
from her_recorder.errors import UnknownMessageError

__all__ = ["EventKind", "SafetyFlag"]  # one definition each, in her_goals; re-exported for bag readers

PACKAGE = "her_interfaces"
MSG_NAMES = ("Goal", "Step", "EpisodeEvent")

GOAL_TYPE = f"{PACKAGE}/msg/Goal"
STEP_TYPE = f"{PACKAGE}/msg/Step"
EVENT_TYPE = f"{PACKAGE}/msg/EpisodeEvent"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
POSE_STAMPED_TYPE = "geometry_msgs/msg/PoseStamped"

TOPIC_STEP = "/her/step"
TOPIC_EPISODE = "/her/episode"
TOPIC_DESIRED_GOAL = "/her/desired_goal"
TOPIC_ACHIEVED_GOAL = "/her/achieved_goal"
TOPIC_JOINT_STATES = "/joint_states"
TOPIC_OBJECT_POSE = "/object_pose"
TOPIC_TRUE_ACHIEVED_GOAL = "/her/true_achieved_goal"
"""Simulation only: the achieved goal of the true state after each step (Goal, per step),
beside the Step's measured one (honest sensing)."""
TOPIC_SIM_PARAMS = "/her/sim_params"
"""Simulation only: each episode's physics and sensing parameters (std_msgs/String, JSON
``{"episode_id": ..., "params": {...}}``), at its START."""
STRING_TYPE = "std_msgs/msg/String"

TOPIC_TYPES: dict[str, str] = {
    TOPIC_STEP: STEP_TYPE,
    TOPIC_EPISODE: EVENT_TYPE,
    TOPIC_DESIRED_GOAL: GOAL_TYPE,
    TOPIC_ACHIEVED_GOAL: GOAL_TYPE,
    TOPIC_JOINT_STATES: JOINT_STATE_TYPE,
    TOPIC_OBJECT_POSE: POSE_STAMPED_TYPE,
    TOPIC_TRUE_ACHIEVED_GOAL: GOAL_TYPE,
    TOPIC_SIM_PARAMS: STRING_TYPE,
}
"""Default topic names and their message types (README.md, "Nodes")."""

_SEPARATOR = "=" * 80


def msg_text(name: str) -> str:
    """The ``.msg`` text of ``her_interfaces/msg/<name>`` as shipped with this package."""
    if name not in MSG_NAMES:
        raise UnknownMessageError(
            f"no message {name!r} in {PACKAGE}; use one of {', '.join(MSG_NAMES)}"
        )
    return resources.files("her_recorder").joinpath("msg", f"{name}.msg").read_text("utf-8")


@functools.cache
def typestore() -> Typestore:
    """The ROS 2 Jazzy typestore with the ``her_interfaces`` messages registered."""
    store = get_typestore(Stores.ROS2_JAZZY)
    for name in MSG_NAMES:
        store.register(get_types_from_msg(msg_text(name), f"{PACKAGE}/msg/{name}"))
    return store


PROVENANCE_FIELDS: dict[str, tuple[str, ...]] = {
    EVENT_TYPE: ("split", "stream_index"),
    STEP_TYPE: ("policy",),
}
"""Fields added to record where an evaluation came from (her_goals.evaluation); a bag written
before them lacks them and is decoded with its own definition (:func:`typestore_for`)."""


def first_section(msgdef: str) -> str:
    """The message's own definition in a bag connection's text (before the dependencies)."""
    return msgdef.split(_SEPARATOR)[0]


@functools.lru_cache(maxsize=32)
def typestore_for(msgtype: str, msgdef: str) -> Typestore:
    """The typestore that decodes ``msgtype`` as a bag recorded it, given the connection's
    ``msgdef`` text: ours when the fields are ours, else a Jazzy typestore with the bag's own
    definition registered (a bag written by an older her_recorder stays readable; fields it
    lacks are absent from its decoded messages: read them with :func:`field_or`).

    Raises ``rosbags.typesys.TypesysError`` (or ``ValueError``) when the text does not parse.
    """
    ours = typestore()
    pkg = msgtype.split("/")[0]
    if pkg != PACKAGE or not msgdef.strip():
        return ours
    theirs = get_types_from_msg(first_section(msgdef), msgtype)
    if theirs[msgtype][1] == ours.fielddefs[msgtype][1]:
        return ours
    store = get_typestore(Stores.ROS2_JAZZY)
    for name in MSG_NAMES:  # our other types, for definitions that refer to them
        full = f"{PACKAGE}/msg/{name}"
        if full != msgtype:
            store.register(get_types_from_msg(msg_text(name), full))
    store.register(theirs)
    return store


def field_or(msg: object, name: str, default: object) -> object:
    """``msg.name``, or ``default`` for a message decoded with a definition that lacks it."""
    return getattr(msg, name, default)


def message_definition(msgtype: str, store: Typestore | None = None) -> tuple[str, str]:
    """Return ``(msgdef, rihs01)`` a bag connection of ``msgtype`` carries.

    For ``her_interfaces`` types the first section is the ``.msg`` file verbatim
    (comments included), as rosbag2 records it; dependencies follow in rosbags'
    generated form.
    """
    store = store or typestore()
    generated, _ = store.generate_msgdef(msgtype, ros_version=2)
    pkg, _, name = msgtype.split("/")
    if pkg == PACKAGE:
        text = msg_text(name)
        if not text.endswith("\n"):
            text += "\n"
        _, sep, deps = generated.partition(_SEPARATOR)
        generated = text + sep + deps
    return generated, store.hash_rihs01(msgtype)


def _qos(*, latched: bool) -> Qos:
    return Qos(
        QosHistory.KEEP_LAST,
        1 if latched else 100,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        QosTime(0, 0),
        QosTime(0, 0),
        QosLiveliness.AUTOMATIC,
        QosTime(0, 0),
        False,
    )


def offered_qos(topic: str) -> list[Qos]:
    """QoS recorded for ``topic``: the desired goal is latched, everything else reliable."""
    return [_qos(latched=topic == TOPIC_DESIRED_GOAL)]
