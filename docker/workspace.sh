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
# torch wheel, default PyTorch's https://download.pytorch.org/whl/cpu; set it to a mirror you
# can reach, or to empty for pip's configured indexes - PyPI's Linux torch pulls CUDA, GBs).
#
# After `build`, `source $WS/install/setup.bash` puts the nodes (ros2 run/launch) and the
# `her` command (her bag|train|eval|audit ...) in one environment: both run on the venv's python.
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
        if ! "$VENV/bin/pip" install torch==2.13.0 ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}; then
            echo "workspace.sh: torch==2.13.0 could not be installed from ${TORCH_INDEX:-the configured pip indexes}." >&2
            echo "  Set TORCH_INDEX to an index you can reach that holds the CPU wheel (a mirror of" >&2
            echo "  https://download.pytorch.org/whl/cpu), or TORCH_INDEX= for pip's own (PyPI: CUDA build, GBs)." >&2
            exit 1
        fi
        "$VENV/bin/pip" install -r "$REPO/docker/requirements.txt" -r "$REPO/docker/requirements-test.txt"
        ;;
    build)
        # colcon run by the venv's python: the node scripts get the venv's interpreter.
        ros_env
        colcon_ build --base-paths "$REPO/src" --build-base "$WS/build" --install-base "$WS/install"
        # One install: the `her` command is in the workspace beside the nodes.
        ( set +u; source "$WS/install/setup.bash"; her --help >/dev/null ) \
            || { echo "workspace.sh: 'her' is not runnable from $WS/install" >&2; exit 1; }
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
