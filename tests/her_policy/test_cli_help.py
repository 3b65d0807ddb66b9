"""`her --help` and every subcommand's --help print and exit 0."""

import subprocess
import sys

import pytest

from her_policy.app.cli import build_parser


def subcommands() -> list[str]:
    import argparse

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    return []


def test_the_main_commands_are_there() -> None:
    assert {"train", "eval", "demo", "audit", "bag"} <= set(subcommands())


@pytest.mark.parametrize("command", [[], *([c] for c in subcommands())])
def test_help_prints(command: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "her_policy.app.cli", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "usage: her" in out.stdout
