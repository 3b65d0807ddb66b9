"""A training run's output directory: what is in it, and whether ``her train`` may write there.

Names (ARCHITECTURE.md, "learn"): ``OUT/policy`` (the artefact), ``OUT/checkpoint`` (the resume
point, :class:`~her_policy.learn.trainer.Trainer`), ``OUT/train_log.jsonl`` and
``OUT/learning_curve.png``. No torch here: ``her train`` decides before anything loads.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

from her_goals.config import to_plain
from her_goals.training_log import LOG_FILE
from her_policy.errors import PolicyError
from her_policy.learn.config import TrainConfig

CHECKPOINT_DIR = "checkpoint"
"""Name of the resume point inside a run directory."""
POLICY_DIR = "policy"
"""Name of the artefact inside a run directory."""
CURVE_FILE = "learning_curve.png"


# Settings that may change when a run is resumed: where it writes, how it shows progress, and
# how far it goes (a larger --env-steps or --offline-updates continues it further).
RESUMABLE_CHANGES = frozenset({"out", "progress", "max_wall_s", "env_steps", "offline_updates", "target_success"})


def setting_defaults() -> dict[str, object]:
    """Every :class:`TrainConfig` setting that has a default, in a checkpoint's plain form."""
    return {
        f.name: to_plain(f.default) for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING
    }


def prepare_out(config: TrainConfig, *, overwrite: bool) -> bool:
    """What ``her train`` does with its --out: True to resume the interrupted run there.

    A directory holding an interrupted run (a checkpoint not marked finished) is resumed when
    the settings that shape learning are the same; a finished run (a policy, or a finished
    checkpoint) is refused; ``overwrite`` clears the run and starts over. Nothing is replaced
    silently."""
    if config.out is None:
        return False
    out = Path(config.out)
    state_file = out / CHECKPOINT_DIR / "state.json"
    run_files = (POLICY_DIR, CHECKPOINT_DIR, f".{CHECKPOINT_DIR}.old", LOG_FILE, CURVE_FILE)
    if overwrite:
        for name in run_files:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return False
    if state_file.is_file():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            raise PolicyError(f"{state_file} cannot be read: the checkpoint is damaged; --overwrite to start over") from None
        if not state.get("finished"):
            # A setting added since the checkpoint was written ran at its default then.
            before = {**setting_defaults(), **dict(state.get("config") or {})}
            now = to_plain(config)
            changed = sorted(k for k in set(before) | set(now)
                             if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k))  # fmt: skip
            if changed:
                diffs = ", ".join(f"{k}: {before.get(k)!r} then, {now.get(k)!r} now" for k in changed[:6])
                raise PolicyError(
                    f"--out {out} holds an interrupted run with other settings ({diffs}); resume it "
                    "with its settings, choose a new --out, or --overwrite to start over"
                )
            print(f"resuming the interrupted run in {out} from env step {state.get('env_steps')}, "
                  f"update {state.get('updates')}", file=sys.stderr)  # fmt: skip
            return True
    policy = out / POLICY_DIR / "policy.json"
    if policy.is_file() or state_file.is_file():
        name = ""
        try:
            name = f" (artefact {json.loads(policy.read_text())['artefact_hash'][:12]})"
        except (OSError, ValueError, KeyError):
            pass
        raise PolicyError(
            f"--out {out} already holds a finished training run{name}; choose a new --out, or "
            "--overwrite to replace it"
        )
    if (out / LOG_FILE).exists():
        raise PolicyError(
            f"--out {out} holds a training log but no checkpoint (a run stopped before its first "
            "checkpoint); choose a new --out, or --overwrite to start over"
        )
    return False
