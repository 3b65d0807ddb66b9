#!/bin/bash
# Environment of the HER-ROS image: ROS 2 Jazzy, the Python venv, the built workspace.
set -e
source "${ROS_SETUP:-/opt/ros/jazzy/setup.bash}"
source "${VENV:-/opt/her_venv}/bin/activate"
source "${WS:-/ws}/install/setup.bash"
exec "$@"
