"""Data collection: episodes with an exploration policy, recorded to bags.

The policy acts with the HER paper's exploration (a random action with probability
random_eps, Gaussian noise of noise_std otherwise) around the artefact's actions, or
uniformly random actions without an artefact. sim:=true records from the MuJoCo
bridge, sim:=false from the physical arm (driver and controller running).

    ros2 launch her_bringup record.launch.py sim:=true task:=push num_episodes:=100 bag_dir:=bags/push
    ros2 launch her_bringup record.launch.py --show-args

With num_episodes the launch ends by itself once that many episodes are in the bag.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

ARGS = (
    ("sim", "true", "true: MuJoCo bridge; false: the physical arm"),
    ("task", "reach", "reach | push | pick_and_place"),
    ("artefact", "", "policy artefact to explore around; empty = random actions"),
    ("bag_dir", "her_bags/record", "session directory of the episode bags"),
    ("num_episodes", "0", "episodes to record; 0 = until stopped. The launch ends once they are in the bag"),
    ("random_eps", "0.3", "chance of a random action per tick (HER paper: 0.3)"),
    ("noise_std", "0.2", "Gaussian action noise, action units (HER paper: 0.2)"),
    ("split", "train", "goal stream: train | heldout"),
    ("namespace", "", "namespace of the whole stack (e.g. arm1); empty = none"),
    ("config", "her_ros.yaml", "node parameter YAML (default: her_bringup's config/her_ros.yaml)"),
)


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("her_bringup")
    passed = {name: LaunchConfiguration(name) for name, _, _ in ARGS if name != "sim"}
    passed["fallback"] = "random"

    def include(name: str, condition: IfCondition | UnlessCondition) -> IncludeLaunchDescription:
        source = PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", name]))
        return IncludeLaunchDescription(source, launch_arguments=passed.items(), condition=condition)

    sim = LaunchConfiguration("sim")
    config_default = PathJoinSubstitution([share, "config", "her_ros.yaml"])
    declared = [
        DeclareLaunchArgument(n, default_value=config_default if n == "config" else d, description=h)
        for n, d, h in ARGS
    ]
    return LaunchDescription(
        [*declared, include("sim.launch.py", IfCondition(sim)), include("arm.launch.py", UnlessCondition(sim))]
    )
