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


def test_errors_are_one_line_and_the_traceback_needs_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from her_goals.errors import ConfigError
    from her_policy.app import cli, train_command

    def bad_input(args: object) -> int:
        raise ConfigError("run.yaml: batch_size must be >= 1, got 0; set a positive batch size")

    def bug(args: object) -> int:
        raise ZeroDivisionError("division by zero")

    for handler, status, text in ((bad_input, 2, "error: run.yaml"), (bug, 1, "internal error")):
        monkeypatch.setattr(train_command, "eval_command", handler)
        assert cli.main(["eval", "x"]) == status
        err = capsys.readouterr().err
        assert err.startswith(f"her eval: {text}") and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert cli.main(["--debug", "eval", "x"]) == status
        assert "Traceback" in capsys.readouterr().err
