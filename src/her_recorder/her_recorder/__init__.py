"""HER-ROS episodes as rosbag2 (MCAP): crash-safe recorder, recovery and validating reader.

Write with :class:`EpisodeRecorder`, repair a bag left by a killed recorder with
:func:`recover_bag`, read with :func:`read_episodes` (episodes as numpy arrays
plus a :class:`ValidationReport`).
"""

from her_recorder.bagmeta import BagMeta
from her_recorder.errors import (
    BagError,
    BagFormatError,
    BagMismatchError,
    RecorderError,
)
from her_recorder.interfaces import (
    EVENT_TYPE,
    GOAL_TYPE,
    STEP_TYPE,
    TOPIC_ACHIEVED_GOAL,
    TOPIC_DESIRED_GOAL,
    TOPIC_EPISODE,
    TOPIC_JOINT_STATES,
    TOPIC_OBJECT_POSE,
    TOPIC_STEP,
    TOPIC_TYPES,
    EventKind,
    SafetyFlag,
    typestore,
)
from her_recorder.reader import (
    BagInfo,
    BagReport,
    Episode,
    Problem,
    ReadResult,
    ValidationReport,
    bag_summary,
    find_bags,
    inspect_bag,
    read_episodes,
    read_events,
)
from her_recorder.recover import RecoveryReport, recover, recover_bag
from her_recorder.writer import EpisodeRecorder, RecordedEpisode

__all__ = [
    "EVENT_TYPE",
    "GOAL_TYPE",
    "STEP_TYPE",
    "TOPIC_ACHIEVED_GOAL",
    "TOPIC_DESIRED_GOAL",
    "TOPIC_EPISODE",
    "TOPIC_JOINT_STATES",
    "TOPIC_OBJECT_POSE",
    "TOPIC_STEP",
    "TOPIC_TYPES",
    "BagError",
    "BagFormatError",
    "BagInfo",
    "BagMeta",
    "BagMismatchError",
    "BagReport",
    "Episode",
    "EpisodeRecorder",
    "EventKind",
    "Problem",
    "ReadResult",
    "RecordedEpisode",
    "RecorderError",
    "RecoveryReport",
    "SafetyFlag",
    "ValidationReport",
    "bag_summary",
    "find_bags",
    "inspect_bag",
    "read_episodes",
    "read_events",
    "recover",
    "recover_bag",
    "typestore",
]
