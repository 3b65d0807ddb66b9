#!/bin/bash
# Build and test the HER-ROS colcon workspace against a ROS 2 Jazzy installation: the steps
# of docker/Dockerfile, runnable on any machine (the from-source check runs exactly these).
#
#   docker/workspace.sh deps           venv over ROS's Python + our pip dependencies
#   docker/workspace.sh build test     colcon build, colcon test (+ test-result)
#
# Settings (environment): ROS_SETUP (default /opt/ros/jazzy/setup.bash), PYTHON (the
# interpreter ROS was built for, default python3), VENV (default /opt/her_venv), WS (build,
# install, log and test-result directories, default /ws), TORCH_INDEX (pip index of the CPU
# torch wheel; empty = pip's configured indexes).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROS_SETUP=${ROS_SETUP:-/opt/ros/jazzy/setup.bash}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-/opt/her_venv}
WS=${WS:-/ws}
TORCH_INDEX=${TORCH_INDEX-https://download.pytorch.org/whl/cpu}

ros_env() {
    set +u  # ROS setup scripts read unset variables
    # shellcheck disable=SC1090
    source "$ROS_SETUP"
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    if [ -f "$WS/install/setup.bash" ]; then source "$WS/install/setup.bash"; fi
    set -u
}

colcon_() {
    python -m colcon --log-base "$WS/log" "$@"
}

for step in "$@"; do
    case "$step" in
    deps)
        # A venv that sees ROS's Python packages (rclpy, launch, colcon); CPU torch first.
        [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
        "$VENV/bin/pip" install torch==2.13.0 ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
        "$VENV/bin/pip" install -r "$REPO/docker/requirements.txt" -r "$REPO/docker/requirements-test.txt"
        ;;
    build)
        # colcon run by the venv's python: the node scripts get the venv's interpreter.
        ros_env
        colcon_ build --base-paths "$REPO/src" --build-base "$WS/build" --install-base "$WS/install"
        ;;
    test)
        ros_env
        export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-61} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
        colcon_ test --base-paths "$REPO/src" --build-base "$WS/build" --install-base "$WS/install" \
            --test-result-base "$WS/test_results"
        colcon_ test-result --test-result-base "$WS/test_results" --verbose
        ;;
    *)
        echo "usage: $0 [deps] [build] [test]" >&2
        exit 2
        ;;
    esac
done
