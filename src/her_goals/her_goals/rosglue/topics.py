"""The names of every HER-ROS topic, declared once and without rclpy.

Names are **relative**: a node resolves them in its namespace, so ``joint_states`` is
``/joint_states`` for a stack launched without a namespace and ``/arm1/joint_states`` for
one launched with ``namespace:=arm1``; two complete stacks run side by side in one graph.
Where arm drivers and perception differ (the joint-state topic, the object pose, the
controllers' command topics), a node parameter names the topic (``joint_states_topic``,
``object_pose_topic``, ``command_topic``, ...); these defaults are what the MuJoCo bridge
and ros2_control's default controller names give.

Two names stay absolute on purpose: ``/diagnostics`` (the diagnostic aggregator's topic;
every status names its node's full name, namespace included) and ``/clock`` (what
``use_sim_time`` listens to; one simulated clock per graph). TF goes to ``/tf`` and
``/tf_static`` unless a launch remaps them (``her_bringup`` remaps them into the
namespace, as multi-robot setups do, so ``arm1``'s ``base_link`` is not ``arm2``'s).
"""

from __future__ import annotations

import re

from her_goals.errors import ConfigError

JOINT_STATES = "joint_states"
OBJECT_POSE = "object_pose"
EPISODE = "her/episode"
STEP = "her/step"
DESIRED_GOAL = "her/desired_goal"
ACHIEVED_GOAL = "her/achieved_goal"
ESTOP = "her/estop"
FORWARD_COMMANDS = "forward_position_controller/commands"
TRAJECTORY_COMMANDS = "joint_trajectory_controller/joint_trajectory"
GRIPPER_COMMANDS = "gripper_controller/commands"
DIAGNOSTICS = "/diagnostics"
CLOCK = "/clock"

# rcl's topic name rules (rcl_validate_topic_name), enough to refuse a typo before rclpy raises.
_TOKEN = r"(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})"
_NAME = re.compile(rf"^(?:~|~/{_TOKEN}(?:/{_TOKEN})*|/?{_TOKEN}(?:/{_TOKEN})*)$")


def check_topic(name: str, where: str) -> str:
    """``name`` if it is a valid ROS topic name, else a :class:`ConfigError` naming ``where``."""
    if not isinstance(name, str) or not _NAME.match(name) or "__" in name:
        raise ConfigError(
            f"{where}: {name!r} is not a valid topic name (letters, digits and _ between '/', "
            "not starting with a digit; relative names like 'joint_states' resolve in the node's namespace)"
        )
    return name
