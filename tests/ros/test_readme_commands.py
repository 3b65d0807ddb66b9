"""Every command README's "On a robot" section names exists after the build, as written there.

``her <command>`` answers ``--help``; ``ros2 launch PKG FILE name:=value`` names an installed
launch file and only arguments it declares (``--show-args``); every ``ros2`` verb exists; every
message and service type named can be imported. The launch tests run the commands themselves.

Skipped without ROS 2 or without the built workspace on PATH.
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
from functools import cache
from pathlib import Path

import pytest
from ros_cli import bringup_share, run

bringup_share(launch_tests=False)
import ament_index_python.packages as ament  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


def commands() -> list[list[str]]:
    """The command lines of the section's bash blocks (continuations joined, comments and `&` dropped)."""
    section = README.read_text().split("\n## On a robot\n", 1)[1].split("\n## ", 1)[0]
    out = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[-1] == "&":
                words = words[:-1]
            if words:
                out.append(words)
    return out


@cache
def launch_arguments(pkg: str, file: str) -> set[str]:
    shown = run(["ros2", "launch", pkg, file, "--show-args"], timeout=120)
    assert shown.returncode == 0, shown.stdout
    return set(re.findall(r"^\s+'(\w+)':", shown.stdout, re.M))


def test_the_section_names_the_commands_we_check():
    heads = {tuple(c[:2]) for c in commands()}
    assert ("her", "bag") in heads and ("ros2", "launch") in heads and ("ros2", "lifecycle") in heads


@pytest.mark.parametrize("words", commands(), ids=lambda w: " ".join(w)[:60])
def test_each_command_exists_as_written(words: list[str]):
    tool = words[0]
    if tool in ("export", "source", "printf"):
        return  # shell set-up and files, run by hand in the section's order
    if tool == "docker/workspace.sh":
        assert (README.parent / tool).is_file()
        return
    assert shutil.which(tool), f"{tool} is not on PATH after the build (source $WS/install/setup.bash)"
    if tool == "her":
        sub = [w for w in words[1:3] if not w.startswith("-") and "/" not in w]
        if sub[:1] != ["bag"]:
            sub = sub[:1]
        done = run(["her", *sub, "--help"], timeout=120)
        assert done.returncode == 0, done.stdout
        return
    assert tool == "ros2", words
    verb = words[1]
    assert run(["ros2", verb, "--help"], timeout=60).returncode == 0, f"ros2 {verb} does not exist"
    if verb == "launch":
        pkg, file = words[2], words[3]
        share = Path(ament.get_package_share_directory(pkg))
        assert (share / "launch" / file).is_file()
        given = {w.split(":=")[0] for w in words[4:] if ":=" in w}
        assert given <= launch_arguments(pkg, file), f"{file} does not declare {given - launch_arguments(pkg, file)}"
    for word in words[2:]:  # message and service types: pkg/msg/Name, pkg/srv/Name
        match = re.fullmatch(r"(\w+)/(msg|srv)/(\w+)", word)
        if match:
            module = importlib.import_module(f"{match[1]}.{match[2]}")
            assert hasattr(module, match[3]), word
