"""HER-ROS on a physical arm: goals, policy (managed) and recorder nodes.

Expects the robot's driver (publishing joint_states) and a ros2_control controller taking
the policy's commands (forward_command_controller on forward_position_controller/commands,
or joint_trajectory_controller with command_interface:=trajectory), plus object_pose from
perception for object tasks (in any frame tf2 can transform to base_link). Topic names are
relative: with namespace:=arm1 every topic, service and TF tree is under /arm1.

    ros2 launch her_bringup arm.launch.py task:=reach artefact:=runs/reach/policy bag_dir:=bags/robot
    ros2 launch her_bringup arm.launch.py --show-args        # every argument, with its default

policy_node is a lifecycle node: with autostart:=true (default) the launch configures it
(artefact and joint names checked) and then activates it; with autostart:=false drive it
with `ros2 lifecycle set /policy_node configure` and `... activate`.
"""

from typing import Any

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    RegisterEventHandler,
    Shutdown,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node, PushROSNamespace, SetRemap
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

ARGS = (
    ("task", "reach", "reach | push | pick_and_place"),
    ("artefact", "", "policy artefact directory (her train --out DIR gives DIR/policy); empty = fallback"),
    ("follow", "", "a continuous learner's run (her learn --out RUN): its newest fitting version acts, "
     "swapped in when an episode starts; instead of artefact"),
    ("fallback", "hold", "without an artefact (or before the first followed version): hold | scripted | random"),
    ("bag_dir", "her_bags", "session directory of the episode bags"),
    ("record", "true", "run the recorder node"),
    ("namespace", "", "namespace of the whole stack (topics, services, TF), e.g. arm1; empty = none"),
    ("autostart", "true", "configure and activate policy_node at launch; false: ros2 lifecycle set ..."),
    ("config", "her_ros.yaml", "node parameter YAML (default: her_bringup's config/her_ros.yaml)"),
    ("safety_config", "", "safety stack YAML (e.g. a copy of the repository's config/safety.yaml); "
     "empty = built-in defaults, equal to that file"),
    ("arm_config", "", "arm config YAML; empty = the packaged arm"),
    ("command_interface", "forward", "forward (Float64MultiArray) | trajectory (JointTrajectory)"),
    ("command_topic", "", "controller command topic; empty = the interface's default (relative)"),
    ("gripper_topic", "gripper_controller/commands", "gripper opening command topic; empty = none"),
    ("joint_states_topic", "joint_states", "the driver's joint states (relative: in the namespace)"),
    ("object_pose_topic", "object_pose", "the object pose from perception (any frame tf2 can transform)"),
    ("random_eps", "0.0", "exploration: chance of a random action per tick"),
    ("noise_std", "0.0", "exploration: Gaussian action noise (action units)"),
    ("split", "train", "goal stream: train | heldout"),
    ("num_episodes", "0", "episodes to run; 0 = until stopped (with record:=true the launch ends once they are in the bag)"),
    ("reset_service", "", "service resetting the scene before each episode (sim: bridge_node/reset)"),
    ("use_sim_time", "false", "use /clock (bridge publish_clock:=true)"),
)


def _default(name: str, value: str) -> Any:
    if name == "config":
        return PathJoinSubstitution([FindPackageShare("her_bringup"), "config", value])
    return value


def generate_launch_description() -> LaunchDescription:
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGS}

    def text(name: str) -> ParameterValue:
        return ParameterValue(arg[name], value_type=str)

    config = arg["config"]
    topics = {name: text(name) for name in ("joint_states_topic", "object_pose_topic")}
    common = {"task": arg["task"], "use_sim_time": arg["use_sim_time"], **topics}
    # goals_node starts episodes once the policy (active) and the recorder listen to her/episode.
    listeners = PythonExpression(
        ["['policy_node', 'recorder_node'] if '", arg["record"], "'.lower() == 'true' else ['policy_node']"]
    )
    goals = Node(
        package="her_goals", executable="goals_node", name="goals_node", output="screen",
        parameters=[config, {**common, "arm_config": text("arm_config"), "split": arg["split"],
                             "num_episodes": arg["num_episodes"], "reset_service": text("reset_service"),
                             "wait_for_nodes": ParameterValue(listeners, value_type=list[str])}],
    )
    policy = LifecycleNode(
        package="her_policy", executable="policy_node", name="policy_node", namespace="", output="screen",
        parameters=[config, {**common, "artefact": text("artefact"), "follow": text("follow"),
                             "fallback": arg["fallback"], "safety_config": text("safety_config"), "arm_config": text("arm_config"),
                             "command_interface": arg["command_interface"], "command_topic": text("command_topic"),
                             "gripper_topic": text("gripper_topic"), "random_eps": arg["random_eps"],
                             "noise_std": arg["noise_std"]}],
    )
    recorder = Node(
        package="her_recorder", executable="recorder_node", name="recorder_node", output="screen",
        # The bags' evaluation plan mirrors the goals and policy nodes' settings (her audit).
        parameters=[config, {**common, "bag_dir": text("bag_dir"), "split": arg["split"],
                             "num_episodes": arg["num_episodes"], "artefact": text("artefact"),
                             "fallback": arg["fallback"], "random_eps": arg["random_eps"],
                             "noise_std": arg["noise_std"]}],
        condition=IfCondition(arg["record"]),
        sigterm_timeout="10",  # closing the bag (metadata, fsync) may take a moment
    )
    autostart = IfCondition(arg["autostart"])
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(policy),
                                            transition_id=Transition.TRANSITION_CONFIGURE), condition=autostart)
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=policy, start_state="configuring", goal_state="inactive", handle_once=True,
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(policy),
                                              transition_id=Transition.TRANSITION_ACTIVATE))],
    ), condition=autostart)
    # With num_episodes, the recorder exits once that many episodes are in the bag: the launch ends.
    done = RegisterEventHandler(
        OnProcessExit(target_action=recorder, on_exit=[Shutdown(reason="num_episodes recorded")]),
        condition=IfCondition(PythonExpression(["'", arg["record"], "'.lower() == 'true' and int('",
                                                arg["num_episodes"], "') > 0"])),
    )
    stack = GroupAction([
        PushROSNamespace(arg["namespace"]),
        SetRemap("/tf", "tf"), SetRemap("/tf_static", "tf_static"),  # one TF tree per namespace
        goals, activate, policy, configure, recorder, done,
    ])
    declared = [DeclareLaunchArgument(n, default_value=_default(n, d), description=h) for n, d, h in ARGS]
    return LaunchDescription([*declared, stack])
