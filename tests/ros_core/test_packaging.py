"""The ROS packaging stays consistent: manifests, entry points, launch files, node size, deps."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
PYTHON_PACKAGES = ("her_goals", "her_mujoco", "her_recorder", "her_policy")
NODES = {"her_goals": "goals_node", "her_mujoco": "bridge_node", "her_recorder": "recorder_node",
         "her_policy": "policy_node"}
# rosdep keys rosdep knows without our docker/rosdep.yaml.
STANDARD_KEYS = {"python3-numpy", "python3-yaml", "python3-matplotlib", "python3-tqdm", "python3-pytest",
                 "python3-hypothesis", "python3-transforms3d"}


def manifest(pkg: str) -> ET.Element:
    return ET.parse(ROOT / "src" / pkg / "package.xml").getroot()


def deps(pkg: str) -> set[str]:
    root = manifest(pkg)
    return {e.text or "" for tag in ("depend", "exec_depend", "build_depend") for e in root.iter(tag)}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
    return out


BRINGUP = ROOT / "src" / "her_bringup"


@pytest.mark.parametrize("pkg", [*PYTHON_PACKAGES, "her_interfaces", "her_bringup"])
def test_manifests_are_format_3_with_the_right_build_type(pkg: str):
    root = manifest(pkg)
    assert root.get("format") == "3" and root.findtext("name") == pkg
    build_type = root.find("export/build_type")
    assert build_type is not None
    assert build_type.text == ("ament_cmake" if pkg == "her_interfaces" else "ament_python")


def test_her_policy_puts_the_her_command_beside_the_nodes():
    """One install: colcon puts <prefix>/bin on PATH; bin/her runs the console script in lib/her_policy."""
    text = (ROOT / "src" / "her_policy" / "setup.py").read_text()
    assert '"her = her_policy.app.cli:main"' in text and '("bin", ["scripts/her"])' in text
    shim = ROOT / "src" / "her_policy" / "scripts" / "her"
    assert shim.stat().st_mode & 0o111 and "lib/her_policy/her" in shim.read_text()
    assert "her --help" in (ROOT / "docker" / "workspace.sh").read_text()  # the build checks it


def test_the_safety_default_without_the_repository_is_the_yaml():
    """An installed `her` (no config/ beside it) falls back to built-in defaults equal to config/safety.yaml."""
    from her_policy.deploy.settings import SafetyStackConfig, load_safety_config

    assert load_safety_config(ROOT / "config" / "safety.yaml") == SafetyStackConfig()


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_every_ros_import_of_a_node_is_a_declared_dependency(pkg: str):
    node = ROOT / "src" / pkg / pkg / f"{NODES[pkg]}.py"
    ros = {m for m in imports(node) if m.endswith(("_msgs", "_srvs", "_interfaces")) or m == "rclpy"}
    declared = deps(pkg)
    assert ros <= declared, f"{pkg}/package.xml lacks {sorted(ros - declared)}"
    # msgconv builds Header/Time and ParameterDescriptor lazily in every node.
    assert {"builtin_interfaces", "std_msgs", "rcl_interfaces", "diagnostic_msgs"} <= declared
    own = {m for m in imports(node) if m.startswith("her_") and m not in (pkg, "her_interfaces")}
    assert own <= declared


def test_python_dependency_keys_resolve():
    custom = set(yaml.safe_load((ROOT / "docker" / "rosdep.yaml").read_text()))
    for pkg in PYTHON_PACKAGES:
        keys = {d for d in deps(pkg) | {e.text or "" for e in manifest(pkg).iter("test_depend")}
                if d.startswith("python3-")}
        assert keys <= STANDARD_KEYS | custom, f"{pkg}: no rosdep key for {sorted(keys - STANDARD_KEYS - custom)}"


def test_no_dependency_cycle_between_our_packages():
    ours = {p: {d for d in deps(p) if d in PYTHON_PACKAGES} for p in PYTHON_PACKAGES}
    assert ours["her_goals"] == set()
    assert ours["her_mujoco"] <= {"her_goals"} and ours["her_recorder"] <= {"her_goals"}


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_setup_registers_the_node_and_installs_the_manifest(pkg: str):
    text = (ROOT / "src" / pkg / "setup.py").read_text()
    assert f'"{NODES[pkg]} = {pkg}.{NODES[pkg]}:main"' in text
    assert (ROOT / "src" / pkg / "resource" / pkg).is_file()
    assert f"script_dir=$base/lib/{pkg}" in (ROOT / "src" / pkg / "setup.cfg").read_text()


def test_her_bringup_installs_the_launch_files_and_configs_without_symlinks():
    names = {p.name for p in (BRINGUP / "launch").glob("*.launch.py")}
    assert {"arm.launch.py", "sim.launch.py", "record.launch.py"} <= names
    assert (BRINGUP / "config" / "her_ros.yaml").is_file()
    symlinks = [p for pkg in ("her_bringup", *PYTHON_PACKAGES) for name in ("launch", "config")
                for p in [ROOT / "src" / pkg / name, *(ROOT / "src" / pkg / name).rglob("*")] if p.is_symlink()]
    assert not symlinks, f"install files the ament way, not through symlinks: {symlinks}"
    setup = (BRINGUP / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup and 'glob("config/*.yaml")' in setup
    launched = {m.group(1) for p in (BRINGUP / "launch").glob("*.py")
                for m in re.finditer(r'package="(\w+)"', p.read_text())}
    assert launched <= {e.text for e in manifest("her_bringup").iter("exec_depend")}
    for pkg in PYTHON_PACKAGES:  # the launch files are her_bringup's alone
        assert not (ROOT / "src" / pkg / "launch").exists()


def test_launch_files_name_real_executables_and_declare_the_asked_arguments():
    for path in (BRINGUP / "launch").glob("*.launch.py"):
        text = path.read_text()
        ast.parse(text)
        for pkg, exe in re.findall(r'package="(\w+)", executable="(\w+)"', text):
            assert NODES.get(pkg) == exe, (path.name, pkg, exe)
        # The loop launch derives the artefact (follow) and the bags from its run directory.
        asked = ("task", "run") if path.name == "loop.launch.py" else ("task", "artefact", "bag_dir")
        for arg in asked:
            assert f'("{arg}"' in text or path.name == "sim.launch.py", (path.name, arg)
    sim = (BRINGUP / "launch" / "sim.launch.py").read_text()
    assert "arm.launch.py" in sim and "bridge_node" in sim
    loop = (BRINGUP / "launch" / "loop.launch.py").read_text()
    assert "sim.launch.py" in loop and '"her", "learn"' in loop and '"follow": learner' in loop


def test_node_yaml_sections_match_the_node_configs():
    from her_goals.goals_core import GoalsConfig
    from her_goals.rosglue.params import parameter_specs
    from her_mujoco.bridge_core import BridgeConfig
    from her_policy.deploy.policy_core import PolicyConfig
    from her_recorder.recorder_core import RecorderConfig

    data = yaml.safe_load((BRINGUP / "config" / "her_ros.yaml").read_text())
    for node, cls in (("goals_node", GoalsConfig), ("policy_node", PolicyConfig),
                      ("recorder_node", RecorderConfig), ("bridge_node", BridgeConfig)):
        params = data[f"/**/{node}"]["ros__parameters"]  # any namespace
        assert set(params) <= set(parameter_specs(cls)), (node, set(params) - set(parameter_specs(cls)))
    # Episode length is declared once, in the task registry: both YAML files defer to it.
    safety = yaml.safe_load((ROOT / "config" / "safety.yaml").read_text())
    assert data["/**/goals_node"]["ros__parameters"]["max_steps"] == 0
    assert safety["loop"]["max_ticks_per_episode"] == 0
    assert GoalsConfig(task="push").episode_steps == 50


def test_nodes_are_thin_and_rclpy_stays_in_node_files():
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        if path.name.endswith("_node.py"):  # wiring only: 150 non-blank lines (a managed node included)
            lines = [line for line in text.splitlines() if line.strip()]
            assert len(lines) <= 150, f"{path} has {len(lines)} non-blank lines"
        elif "node" not in path.name:
            assert "rclpy" not in imports(path), f"{path} imports rclpy"
    for path in (ROOT / "tests").rglob("*.py"):
        if "node" not in path.name:
            assert "rclpy" not in imports(path), f"{path} imports rclpy"


def test_interfaces_are_all_generated():
    cmake = (ROOT / "src" / "her_interfaces" / "CMakeLists.txt").read_text()
    for path in (ROOT / "src" / "her_interfaces").glob("*/*.*"):
        if path.suffix in (".msg", ".srv"):
            assert f'"{path.parent.name}/{path.name}"' in cmake


def test_docker_requirements_cover_the_project_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[<>=!~ ]", d)[0].lower() for d in project["dependencies"]}
    pinned = {re.split(r"[<>=!~ ]", line)[0].lower()
              for line in (ROOT / "docker" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert wanted - {"torch"} <= pinned, sorted(wanted - pinned)
    assert "torch==2.13.0" in (ROOT / "docker" / "workspace.sh").read_text()


def test_the_image_runs_the_same_build_and_test_script():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.findall(r"^FROM .*$", dockerfile, re.M) == ["FROM ros:jazzy"]  # the official image
    assert "workspace.sh deps" in dockerfile and "workspace.sh build test" in dockerfile
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    assert "sim.launch.py" in compose["services"]["sim"]["command"]


def test_topic_names_are_relative_so_stacks_can_be_namespaced():
    """A second arm under arm2/ needs every topic resolved in the node's namespace (her_goals.rosglue.topics)."""
    from her_goals.rosglue import topics

    names = {name: getattr(topics, name) for name in dir(topics) if name.isupper()}
    absolute = {name for name, value in names.items() if isinstance(value, str) and value.startswith("/")}
    assert absolute == {"DIAGNOSTICS", "CLOCK"}  # the aggregator's and use_sim_time's, on purpose
    bag_names = {"/joint_states", "/object_pose", "/her/achieved_goal"}  # recorder: names inside the bag
    for path in [*(ROOT / "src").rglob("*_node.py"), *(BRINGUP / "launch").glob("*.py")]:
        literals = {n.value for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("/")
                    and " " not in n.value}
        allowed = bag_names if path.name == "recorder_node.py" else {"/tf", "/tf_static"}  # remapped into the namespace
        assert literals <= allowed, f"{path.name}: absolute names {sorted(literals - allowed)}"


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_core_packages_run_pytest_without_ross_launch_plugins(pkg: str):
    """With launch_testing's plugin loaded, one module-level importorskip empties the whole colcon
    test session of a package (pytest 7.4); only her_bringup runs launch tests."""
    cfg = (ROOT / "src" / pkg / "setup.cfg").read_text()
    assert "-p no:launch_testing" in cfg and "../../tests/ros\n" not in cfg + "\n"
