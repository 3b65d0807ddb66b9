#!/bin/bash
# Environment of the HER-ROS image: ROS 2 Jazzy, the Python venv, the built workspace.
set -e
source /opt/ros/jazzy/setup.bash
source /opt/her_venv/bin/activate
source /ws/install/setup.bash
exec "$@"
