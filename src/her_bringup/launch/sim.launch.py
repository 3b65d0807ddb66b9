"""HER-ROS in simulation: the arm launch (goals, policy, recorder) plus the MuJoCo bridge.

bridge_node stands in for the arm driver and its controllers: it publishes joint_states and
object_pose (in a simulated camera's frame with object_frame:=camera, its pose on
tf_static), takes the same command topics, and resets the scene before each episode
(goals_node calls bridge_node/reset). Without an artefact the policy falls back to the
task's scripted controller, so the stack moves out of the box. namespace:=arm1 puts the
whole stack, bridge included, under /arm1; two namespaces give two arms in one graph.

    ros2 launch her_bringup sim.launch.py task:=reach artefact:=runs/reach/policy bag_dir:=bags/sim
    ros2 launch her_bringup sim.launch.py --show-args
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushROSNamespace, SetRemap
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

SIM_ARGS = (
    ("task", "reach", "reach | push | pick_and_place"),
    ("artefact", "", "policy artefact directory (her train --out DIR gives DIR/policy); empty = fallback"),
    ("follow", "", "a continuous learner's run (her learn --out RUN) to follow instead of an artefact"),
    ("bag_dir", "her_bags", "session directory of the episode bags"),
    ("namespace", "", "namespace of the whole stack, bridge included (e.g. arm1); empty = none"),
    ("config", "her_ros.yaml", "node parameter YAML (default: her_bringup's config/her_ros.yaml)"),
    ("fallback", "scripted", "without an artefact: hold | scripted | random"),
    ("arm_config", "", "arm config YAML; empty = the packaged arm"),
    ("command_interface", "forward", "forward | trajectory (the bridge takes both)"),
    ("object_frame", "", "bridge: frame of object_pose; empty = base_link, e.g. camera = a simulated camera on tf_static"),
    ("command_latency_s", "0.0", "bridge: command latency (s)"),
    ("state_latency_s", "0.0", "bridge: state latency (s)"),
    ("joint_noise_std_rad", "0.0", "bridge: joint position noise (rad)"),
    ("object_noise_std_m", "0.0", "bridge: object position noise (m)"),
    ("publish_clock", "false", "bridge publishes /clock (then pass use_sim_time:=true; one clock per graph)"),
)
# arm.launch.py's other arguments (record, autostart, safety_config, command_topic, random_eps,
# noise_std, split, num_episodes, use_sim_time, ...) pass through: launch arguments are global.


def generate_launch_description() -> LaunchDescription:
    arg = {name: LaunchConfiguration(name) for name, _, _ in SIM_ARGS}
    share = FindPackageShare("her_bringup")
    arm = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "arm.launch.py"])),
        launch_arguments={
            **{name: arg[name] for name in ("task", "artefact", "follow", "bag_dir", "config", "fallback",
                                            "arm_config", "command_interface", "namespace")},
            "reset_service": "bridge_node/reset",  # relative: this namespace's bridge
        }.items(),
    )
    bridge = Node(
        package="her_mujoco", executable="bridge_node", name="bridge_node", output="screen",
        parameters=[
            arg["config"],
            {
                "task": arg["task"], "arm_config": ParameterValue(arg["arm_config"], value_type=str),
                "object_frame": ParameterValue(arg["object_frame"], value_type=str),
                **{k: arg[k] for k in ("command_latency_s", "state_latency_s", "joint_noise_std_rad",
                                       "object_noise_std_m", "publish_clock")},
            },
        ],
    )
    config_default = PathJoinSubstitution([share, "config", "her_ros.yaml"])
    declared = [
        DeclareLaunchArgument(n, default_value=config_default if n == "config" else d, description=h)
        for n, d, h in SIM_ARGS
    ]
    in_namespace = GroupAction([PushROSNamespace(arg["namespace"]), SetRemap("/tf", "tf"),
                                SetRemap("/tf_static", "tf_static"), bridge])
    return LaunchDescription([*declared, in_namespace, arm])
