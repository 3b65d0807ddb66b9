"""The training log: one JSON line per periodic evaluation, in one set of field names.

The trainer writes ``OUT/train_log.jsonl`` (:func:`append_row`), the audit and the
learning-curve plots read it (:func:`read_rows`). The names are the replay batch's own
(``her_policy.learn.buffer.BatchStats``): a hindsight figure is always named as one, so it
cannot be mistaken for requested-goal success.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from her_goals.errors import ConfigError

LOG_FILE = "train_log.jsonl"
"""Name of the training log inside a training run's output directory."""


@dataclass(frozen=True)
class TrainingLogRow:
    """One periodic evaluation, with the training progress it was taken at."""

    env_steps: int
    """Environment steps collected so far (all training envs together)."""
    updates: int
    """Gradient updates so far."""
    train_wall_s: float
    """Training wall-clock so far (evaluation and checkpoints excluded)."""
    requested_success: float
    """Success on held-out requested goals with the task's tolerance: the result."""
    ci_low: float
    """Wilson 95% interval of ``requested_success``."""
    ci_high: float
    n_episodes: int
    """Held-out goals evaluated."""
    hindsight_ratio: float
    """Share of relabelled samples in recent batches (a training trick, not a result)."""
    positive_fraction_relabelled: float
    """Reward-0 share among relabelled samples: hindsight success, NOT requested-goal success."""
    positive_fraction_original: float
    """Reward-0 share among samples that kept their requested goal."""
    train_episode_success: float
    """Success of the exploring policy on its training goals over the last cycles."""
    moving_fraction: float = 0.0
    """Share of stored transitions from episodes that moved the achieved goal (a touched block)."""
    train_episode_cost: float = math.nan
    """Mean safety cost per training episode over the last cycles (the safety layer's interventions;
    NaN when the episodes carried no cost)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The learner's last update metrics (losses, Q values)."""


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainingLogRow))
REQUIRED: tuple[str, ...] = ("env_steps", "hindsight_ratio")
"""Fields a row must have to be read; the others may be missing (NaN)."""


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; null reads back as NaN
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def append_row(path: str | Path, row: TrainingLogRow) -> None:
    """Append one row to the log at ``path`` (created when missing)."""
    with Path(path).open("a") as f:
        f.write(json.dumps({k: _plain(v) for k, v in dataclasses.asdict(row).items()}) + "\n")


def _number(value: Any, where: str, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {name} is {value!r}, not a number; is this a HER-ROS training log?")
    return float(value)


def read_rows(path: str | Path) -> list[TrainingLogRow]:
    """Every row of a training log; a malformed line is an error naming the file and line."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILE
    if not path.is_file():
        raise ConfigError(f"training log {path} does not exist (her train --out DIR writes DIR/{LOG_FILE})")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"training log {path} is not a text file; give the train_log.jsonl her train wrote") from None
    except OSError as exc:
        raise ConfigError(f"training log {path} cannot be read: {exc.strerror}") from None
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not JSON ({exc}); is this a HER-ROS training log?") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: a row must be a JSON object")
        missing = [name for name in REQUIRED if name not in record]
        if missing:
            raise ConfigError(f"{where}: row lacks {missing}; is this a HER-ROS training log?")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(TrainingLogRow):
            if f.name == "metrics":
                metrics = record.get("metrics") or {}
                values["metrics"] = {
                    str(k): _number(v, where, f"metrics.{k}") for k, v in dict(metrics).items()
                }
            else:
                number = _number(record.get(f.name), where, f.name)
                values[f.name] = int(number) if f.type in ("int", int) and math.isfinite(number) else number
        rows.append(TrainingLogRow(**values))
    return rows
