"""The robot loop without a robot: the sim stack explores and records while her learn trains.

sim.launch.py (bridge, goals, policy, recorder) runs with the policy following the continuous
learner's versions (policy_node follow:=RUN/learner): random actions act until the first
version is published, then each newer version that fits swaps in when an episode starts,
never mid-episode, with exploration on top. The recorder writes every episode to
RUN/session; her learn trains on each closed episode once and publishes RUN/learner/versions.
On the arm, run arm.launch.py with the same follow:= and her learn beside it.

    ros2 launch her_bringup loop.launch.py task:=reach run:=runs/loop
    ros2 launch her_bringup loop.launch.py --show-args
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

LOOP_ARGS = (
    ("task", "reach", "reach | push | pick_and_place | drawer"),
    ("run", "her_loop", "run directory: RUN/session (the bags), RUN/learner (versions, checkpoint)"),
    ("random_eps", "0.3", "exploration: chance of a random action per tick"),
    ("noise_std", "0.2", "exploration: Gaussian action noise (action units)"),
    ("publish_every", "2000", "her learn: gradient updates between published versions"),
    ("namespace", "", "namespace of the whole stack (e.g. arm1); empty = none"),
)


def generate_launch_description() -> LaunchDescription:
    arg = {name: LaunchConfiguration(name) for name, _, _ in LOOP_ARGS}
    session = PathJoinSubstitution([arg["run"], "session"])
    learner = PathJoinSubstitution([arg["run"], "learner"])
    share = FindPackageShare("her_bringup")
    stack = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "sim.launch.py"])),
        launch_arguments={
            "task": arg["task"], "bag_dir": session, "follow": learner, "fallback": "random",
            "random_eps": arg["random_eps"], "noise_std": arg["noise_std"], "namespace": arg["namespace"],
        }.items(),
    )
    learn = ExecuteProcess(
        cmd=["her", "learn", "--watch", session, "--out", learner, "--task", arg["task"],
             "--publish-every", arg["publish_every"]],
        name="her_learn", output="screen", sigterm_timeout="10",  # a checkpoint may be mid-write
    )
    declared = [DeclareLaunchArgument(n, default_value=d, description=h) for n, d, h in LOOP_ARGS]
    return LaunchDescription([*declared, stack, learn])
