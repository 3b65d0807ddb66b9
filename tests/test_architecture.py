"""The layering of ARCHITECTURE.md holds: what the robot path loads, private names, task envs.

``make lint`` runs these beside ``lint-imports`` (the import contracts in pyproject.toml).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the four Python packages."""
    out = {}
    for path in SRC.glob("her_*/her_*/**/*.py"):
        parts = path.relative_to(SRC).parts[1:]
        name = ".".join(parts).removesuffix(".py").removesuffix(".__init__")
        out[name] = path
    return out


def private_uses(tree: ast.AST) -> list[str]:
    """``from her_x.y import _name`` and ``alias._name`` on an imported her_* module."""
    found, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("her_"):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"from {node.module} import {a.name}")
                elif a.name[:1].islower():
                    aliases.add(a.asname or a.name)  # may be a module
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("her_"):
                    aliases.add(a.asname or a.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    offenders = {
        name: uses
        for name, path in project_modules().items()
        if (uses := private_uses(ast.parse(path.read_text())))
    }
    assert not offenders, f"give these a public API instead: {offenders}"


def test_the_private_name_check_catches_both_forms() -> None:
    tree = ast.parse("from her_goals.spaces import _x\nfrom her_goals import spaces\nspaces._y\n")
    assert private_uses(tree) == ["from her_goals.spaces import _x", "spaces._y"]


def test_every_node_file_is_the_only_place_rclpy_may_be_imported() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if "rclpy" in c.get("forbidden_modules", []))
    ignored = {rule.split(" -> ")[0] for rule in contract["ignore_imports"]}
    nodes = {name for name in project_modules() if name.endswith("_node")}
    assert nodes == ignored, "list every *_node module (and only those) in the rclpy contract"
    for name, path in project_modules().items():
        imports_rclpy = any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "rclpy" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "rclpy")
            for n in ast.walk(ast.parse(path.read_text()))
        )
        assert not imports_rclpy or name in nodes, f"{name} imports rclpy but is not a node file"


POLICY_NODE_PROBE = r"""
import ast, sys, importlib, importlib.util
from pathlib import Path
ros = {"rclpy", "her_interfaces", "std_msgs", "std_srvs", "sensor_msgs", "geometry_msgs",
       "diagnostic_msgs", "trajectory_msgs", "rosgraph_msgs", "lifecycle_msgs", "tf2_ros"}

def load_imports_of(path):
    # Import what a node file imports, minus ROS; a *_node module it imports (needs rclpy)
    # is followed into its own imports instead.
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] not in ros:
            if node.module.endswith("_node"):
                load_imports_of(importlib.util.find_spec(node.module).origin)
                continue
            module = importlib.import_module(node.module)
            for a in node.names:
                if not hasattr(module, a.name):  # a submodule
                    importlib.import_module(f"{node.module}.{a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] not in ros:
                    importlib.import_module(a.name)

load_imports_of(sys.argv[1])
# What the node does with an artefact: load it and act, through the core.
import numpy as np
from her_goals.spaces import get_goal_space
from her_policy.artefact.layout import PolicyLayout
from her_policy.artefact.store import save_artefact
from her_policy.artefact.weights import ActorWeights
from her_policy.deploy.policy_core import PolicyConfig, PolicyCore
path = save_artefact(sys.argv[2], snapshot=ActorWeights.random(8, 3, 4, (16,)),
    layout=PolicyLayout(8, 3, 4, (-1.0,) * 4, (1.0,) * 4), goal_space=get_goal_space("ee_position"),
    algorithm="ddpg", config={"task": "reach"}, seeds={}, data_hashes={},
    provenance={"env": "task:reach"})
core = PolicyCore(PolicyConfig(task="reach", artefact=str(path)))
assert core.actor_kind == "artefact", core.health.problems
core.tick(0)
print(sorted(m for m in ("torch", "gymnasium", "gymnasium_robotics", "her_mujoco") if m in sys.modules))
"""


def test_the_policy_node_path_loads_neither_torch_nor_gymnasium_nor_the_simulator(
    tmp_path: Path,
) -> None:
    node = SRC / "her_policy" / "her_policy" / "policy_node.py"
    out = subprocess.run(
        [sys.executable, "-c", POLICY_NODE_PROBE, str(node), str(tmp_path / "artefact")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_every_simulated_task_passes_gymnasiums_env_checker() -> None:
    gym = pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    import her_mujoco
    from her_goals.tasks import TASKS

    for name in her_mujoco.ENV_CLASSES:
        env = gym.make(TASKS[name].env_id)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Rendering needs an OpenGL context (MUJOCO_GL=egl); the goal API does not.
            check_env(env.unwrapped, skip_render_check=True)
        # Fetch's tasks declare unbounded observation boxes too; anything else is a finding.
        other = [str(w.message) for w in caught if "infinity" not in str(w.message)]
        assert not other, (name, other)
        env.close()


def test_the_code_cites_architecture_md_rules_that_exist_and_no_outside_page() -> None:
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text()
    rules = {int(n) for n in re.findall(r"^(\d+)\. \*\*", text.split("## Rules")[1].split("##")[0], re.M)}
    assert rules == set(range(1, 7))
    for path in [*SRC.rglob("*.py"), *(ROOT / "config").glob("*.yaml")]:
        source = path.read_text()
        assert "DESIGN.md" not in source, f"{path} cites a page outside the repository"
        for n in re.findall(r"ARCHITECTURE\.md,\s+rule (\d+)", source):
            assert int(n) in rules, f"{path} cites ARCHITECTURE.md rule {n}, which does not exist"


def test_every_python_package_directory_is_installed_by_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(SRC).parts[1:])
        for init in SRC.glob("her_*/her_*/**/__init__.py")
    }
    assert found == listed, f"pyproject.toml packages: add {found - listed}, drop {listed - found}"


HEAVY_OPTIONAL = ("torch", "ray", "matplotlib", "gymnasium", "gymnasium_robotics", "mujoco")
"""Libraries a module may import inside a function, to keep them off an import path."""
LOADS_HEAVY = {
    ("her_policy.app.demo", "her_policy.learn.train"),
    ("her_policy.app.train_command", "her_policy.learn.train"),
    ("her_policy.app.train_command", "her_policy.learn.offline"),
    ("her_policy.app.learn_command", "her_policy.learn.continuous"),
    ("her_policy.app.robot_loop", "her_policy.learn.continuous"),
    ("her_policy.app.fleet", "her_policy.learn.continuous"),
    ("her_policy.learn.envs", "her_mujoco"),
    ("her_recorder.datasets.formats", "her_recorder.datasets.lerobot_format"),
    ("her_recorder.datasets.formats", "her_recorder.datasets.minari_format"),
}
"""Project imports inside a function because the module loads torch (the training modules,
kept off ``her --help``) or MuJoCo (an env is made only when asked for): (module, imported)."""


def function_local_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function."""
    found = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found.update((node.lineno, a.name) for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    found.add((node.lineno, node.module or "."))
    return sorted(found)


def test_function_local_imports_are_heavy_optional_libraries_and_say_why() -> None:
    offenders = []
    for name, path in project_modules().items():
        lines = path.read_text().splitlines()
        for line, module in function_local_imports(ast.parse(path.read_text())):
            heavy = module.split(".")[0] in HEAVY_OPTIONAL or (name, module) in LOADS_HEAVY
            reason = "#" in lines[line - 1] or lines[line - 2].strip().startswith("#")
            if not (heavy and reason):
                offenders.append(f"{name}:{line} {module}")
    assert not offenders, f"import these at the top (or say why a heavy library waits): {offenders}"


def test_no_package_may_import_in_a_circle() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    acyclic = [c for c in config["contracts"] if c["type"] == "acyclic_siblings"]
    assert acyclic and set(acyclic[0]["ancestors"]) == set(config["root_packages"])
