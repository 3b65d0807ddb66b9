"""HER-ROS on a physical arm: goals, policy and recorder nodes.

Expects the robot's driver (publishing /joint_states) and a ros2_control controller
taking the policy's commands (forward_command_controller on
/forward_position_controller/commands, or joint_trajectory_controller with
command_interface:=trajectory), plus /object_pose from perception for object tasks.

    ros2 launch her_bringup arm.launch.py task:=reach artefact:=runs/reach/policy bag_dir:=bags/robot
"""

from typing import Any

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, RegisterEventHandler, Shutdown
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGS = (
    ("task", "reach", "reach | push | pick_and_place"),
    ("artefact", "", "policy artefact directory (her train --out DIR gives DIR/policy); empty = fallback"),
    ("fallback", "hold", "without an artefact: hold | scripted | random"),
    ("bag_dir", "her_bags", "session directory of the episode bags"),
    ("record", "true", "run the recorder node"),
    ("config", "her_ros.yaml", "node parameter YAML (default: her_bringup's config/her_ros.yaml)"),
    ("safety_config", "", "safety stack YAML (e.g. a copy of the repository's config/safety.yaml); empty = built-in defaults, equal to that file"),
    ("arm_config", "", "arm config YAML; empty = the packaged arm"),
    ("command_interface", "forward", "forward (Float64MultiArray) | trajectory (JointTrajectory)"),
    ("command_topic", "", "controller command topic; empty = the interface's default"),
    ("random_eps", "0.0", "exploration: chance of a random action per tick"),
    ("noise_std", "0.0", "exploration: Gaussian action noise (action units)"),
    ("split", "train", "goal stream: train | heldout"),
    ("num_episodes", "0", "episodes to run; 0 = until stopped (with record:=true the launch ends once they are in the bag)"),
    ("reset_service", "", "service resetting the scene before each episode (the sim bridge's)"),
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

    config, safety = arg["config"], arg["safety_config"]
    common = {"task": arg["task"], "use_sim_time": arg["use_sim_time"]}
    # goals_node starts episodes once the policy (and the recorder) listen to /her/episode.
    listeners = PythonExpression(
        ["['policy_node', 'recorder_node'] if '", arg["record"], "'.lower() == 'true' else ['policy_node']"]
    )
    goals = Node(
        package="her_goals", executable="goals_node", name="goals_node", output="screen",
        parameters=[config, {**common, "arm_config": text("arm_config"), "split": arg["split"],
                             "num_episodes": arg["num_episodes"], "reset_service": text("reset_service"),
                             "wait_for_nodes": ParameterValue(listeners, value_type=list[str])}],
    )
    policy = Node(
        package="her_policy", executable="policy_node", name="policy_node", output="screen",
        parameters=[config, {**common, "artefact": text("artefact"), "fallback": arg["fallback"],
                             "safety_config": ParameterValue(safety, value_type=str),
                             "arm_config": text("arm_config"), "command_interface": arg["command_interface"],
                             "command_topic": text("command_topic"), "random_eps": arg["random_eps"],
                             "noise_std": arg["noise_std"]}],
    )
    recorder = Node(
        package="her_recorder", executable="recorder_node", name="recorder_node", output="screen",
        parameters=[config, {**common, "bag_dir": text("bag_dir"), "num_episodes": arg["num_episodes"]}],
        condition=IfCondition(arg["record"]),
        sigterm_timeout="10",  # closing the bag (metadata, fsync) may take a moment
    )
    # With num_episodes, the recorder exits once that many episodes are in the bag: the launch ends.
    done = RegisterEventHandler(
        OnProcessExit(target_action=recorder, on_exit=[Shutdown(reason="num_episodes recorded")]),
        condition=IfCondition(PythonExpression(["'", arg["record"], "'.lower() == 'true' and int('",
                                                arg["num_episodes"], "') > 0"])),
    )
    declared = [DeclareLaunchArgument(n, default_value=_default(n, d), description=h) for n, d, h in ARGS]
    return LaunchDescription([*declared, goals, policy, recorder, done])
