"""``her learn``: the continuous learner, following recording sessions while the arm runs."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from her_goals.checks import (
    Count,
    ExistingPath,
    NonNegativeFloat,
    NonNegativeInt,
    OutputDir,
    PositiveFloat,
)
from her_goals.errors import ConfigError
from her_goals.settings_cli import add_settings_arguments, settings_from_args
from her_goals.tasks import TaskName
from her_policy.learn.signals import StopSignals


@dataclass(frozen=True)
class LearnSettings:
    """``her learn``: train continuously on the episodes recording sessions close."""

    watch: tuple[Path, ...]
    """Session directories to follow (the recorder node's bag_dir, her sim --out); created
    sessions may not exist yet."""
    out: OutputDir
    """Run directory: versions/ (numbered artefacts), checkpoint/ (resume point)."""
    task: TaskName = "reach"
    """Registered task the sessions record; its training preset is used."""
    publish_every: Count = 2000
    """Gradient updates between published versions."""
    poll_s: PositiveFloat = 1.0
    """Seconds to wait when there is nothing new to learn from."""
    max_wall_s: NonNegativeFloat = 0.0
    """Stop after this long (0: run until Ctrl-C)."""
    max_updates: NonNegativeInt = 0
    """Stop after this many gradient updates (0: no limit)."""
    demos: tuple[ExistingPath, ...] = ()
    """Demonstration bags (or session directories) kept in the buffer: the preset's demo-share
    of every batch is drawn from them."""
    evaluate: bool = True
    """Measure held-out requested goals in simulation every eval-every ingested env steps (the
    task preset's) into RUN/train_log.jsonl and RUN/learning_curve.png."""

    def __post_init__(self) -> None:
        if not self.watch:
            raise ConfigError("--watch: give at least one session directory")
        for path in self.watch:
            if path.exists() and not path.is_dir():
                raise ConfigError(f"--watch {path}: a file, not a session directory")
            parent = path.resolve().parent
            if not path.exists() and not parent.is_dir():
                raise ConfigError(
                    f"--watch {path}: neither it nor {parent} exists (a typo?); give the session "
                    "directory the recorder writes into (it may be created later, its parent must exist)"
                )


def add_learn_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``her learn``."""
    text = (
        "Follow recording sessions, train on each closed episode once, and publish numbered "
        "policy versions a running arm swaps in between episodes; resumes from its checkpoint."
    )
    parser: argparse.ArgumentParser = subparsers.add_parser("learn", help=text, description=text)
    add_settings_arguments(parser, LearnSettings)
    parser.set_defaults(handler=learn_command)
    return parser


def learn_command(args: argparse.Namespace) -> int:
    from her_policy.learn.continuous import continuous_learner  # loads torch: only when learning

    settings = settings_from_args(LearnSettings, args)
    learner = continuous_learner(
        list(settings.watch),
        Path(settings.out),
        task=settings.task,
        publish_every=settings.publish_every,
        demos=[Path(p) for p in settings.demos],
        evaluate=settings.evaluate,
    )
    start = time.monotonic()
    for path in settings.watch:
        if not path.exists():
            print(f"her learn: {path} does not exist yet; waiting for the recorder to create it "
                  "(Ctrl-C to stop)", file=sys.stderr, flush=True)  # fmt: skip
    if learner.resumed:
        print(f"resumed from {Path(settings.out) / 'checkpoint'}: {learner.status().line()}", flush=True)

    def done(lrn: Any) -> bool:
        return bool(
            (settings.max_wall_s and time.monotonic() - start >= settings.max_wall_s)
            or (settings.max_updates and lrn.updates >= settings.max_updates)
        )

    with StopSignals() as signals:  # Ctrl-C or SIGTERM: publish and checkpoint, then stop
        try:
            learner.run(poll_s=settings.poll_s, until=lambda lrn: bool(signals.requested) or done(lrn),
                        report=lambda s: print(s, flush=True))  # fmt: skip
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, still checkpointing below
            pass
    version = learner.publish_if_due(force=True)
    if version is not None:
        print(f"published {version.name}: {learner.status().line()}")
    learner.checkpoint()
    learner.plot_curve()
    print(f"stopped: {learner.status().line()}")
    return 0
