"""``python -m her_recorder {bag {info,check,recover},audit} ...``: the bag layer's entry point.

It registers the bag commands (:mod:`her_recorder.cli`) and the audit's
(:mod:`her_recorder.audit.cli`) side by side, as ``her`` does; neither imports the other.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from her_recorder.audit import add_audit_command
from her_recorder.cli import add_bag_commands, run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one bag or audit command (exit status as the command says)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m her_recorder")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bag_commands(sub)
    add_audit_command(sub)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
