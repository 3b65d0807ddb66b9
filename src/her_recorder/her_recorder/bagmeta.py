"""What a HER bag says about itself: goal space, task, config, seeds, episodes, evaluation plan.

The recorder stores these as string key/values twice: in ``metadata.yaml``
``custom_data`` (written on close, what ROS 2 tools show) and in an MCAP
Metadata record named ``her_recorder`` written and synced when the bag is
opened, so a bag whose recorder was killed still says what it holds and
recovery can rebuild ``metadata.yaml`` from the MCAP file alone.

``her.plan`` is the :class:`her_goals.evaluation.EvaluationPlan` of the recording: the
split, the goal stream, the planned episode count and the acting policy, from which
``her audit`` re-derives an evaluation. Bags written before it have none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from her_goals import GoalSpace
from her_goals.config import config_hash, to_plain
from her_goals.errors import ConfigError
from her_goals.evaluation import EvaluationPlan
from her_recorder.errors import BagFormatError

FORMAT_VERSION = "1"
MCAP_METADATA_NAME = "her_recorder"

KEY_FORMAT = "her.format"
KEY_GOAL_SPACE = "her.goal_space"
KEY_TASK = "her.task"
KEY_CONFIG = "her.config"
KEY_CONFIG_HASH = "her.config_hash"
KEY_SEEDS = "her.seeds"
KEY_SESSION = "her.session"
KEY_BAG_INDEX = "her.bag_index"
KEY_SCHEMA = "her.schema"
KEY_EPISODES = "her.episodes"
KEY_DROPPED = "her.dropped_messages"
KEY_RECOVERED = "her.recovered"
KEY_PLAN = "her.plan"


def dumps(value: Any) -> str:
    """Compact, stable JSON of a plain value (dataclasses and arrays allowed)."""
    return json.dumps(to_plain(value), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class BagMeta:
    """The HER description of one bag, parsed from its string key/values."""

    goal_space: GoalSpace
    task: str
    config: Any = None
    config_hash: str = ""
    seeds: Any = None
    session: str = ""
    bag_index: int = 0
    schema: dict[str, str] = field(default_factory=dict)
    """Message type -> RIHS01 hash of the definitions the bag was written with."""
    episodes: dict[str, Any] = field(default_factory=dict)
    """Episode counts written on close (absent for a bag that was never closed)."""
    dropped_messages: int = 0
    recovered: dict[str, Any] = field(default_factory=dict)
    plan: EvaluationPlan | None = None
    """The recording's evaluation plan (None: written before plans, or by another writer)."""
    plan_error: str = ""
    """Why the bag's ``her.plan`` could not be read (it is then ``None``); '' when fine."""

    def to_strings(self) -> dict[str, str]:
        """The key/values stored in the bag (all strings, as rosbag2 custom_data needs)."""
        out = {
            KEY_FORMAT: FORMAT_VERSION,
            KEY_GOAL_SPACE: dumps(self.goal_space.spec()),
            KEY_TASK: self.task,
            KEY_CONFIG: dumps(self.config),
            KEY_CONFIG_HASH: self.config_hash or config_hash(self.config or {}),
            KEY_SEEDS: dumps(self.seeds),
            KEY_SESSION: self.session,
            KEY_BAG_INDEX: str(self.bag_index),
            KEY_SCHEMA: dumps(self.schema),
        }
        if self.episodes:
            out[KEY_EPISODES] = dumps(self.episodes)
        if self.dropped_messages:
            out[KEY_DROPPED] = str(self.dropped_messages)
        if self.recovered:
            out[KEY_RECOVERED] = dumps(self.recovered)
        if self.plan is not None:
            out[KEY_PLAN] = dumps(self.plan.to_dict())
        return out

    @classmethod
    def from_strings(cls, data: Mapping[str, str], *, where: str) -> BagMeta:
        """Parse what :meth:`to_strings` wrote; ``where`` names the bag in errors."""
        if KEY_GOAL_SPACE not in data:
            raise BagFormatError(
                f"{where}: no HER metadata ({KEY_GOAL_SPACE} missing); it was not written "
                "by her_recorder. Pass the goal space explicitly to read it."
            )
        plan, plan_error = _plan(data.get(KEY_PLAN))
        try:
            goal_space = GoalSpace.from_spec(json.loads(data[KEY_GOAL_SPACE]))
            return cls(
                goal_space=goal_space,
                task=data.get(KEY_TASK, ""),
                config=json.loads(data.get(KEY_CONFIG, "null")),
                config_hash=data.get(KEY_CONFIG_HASH, ""),
                seeds=json.loads(data.get(KEY_SEEDS, "null")),
                session=data.get(KEY_SESSION, ""),
                bag_index=int(data.get(KEY_BAG_INDEX, "0")),
                schema=json.loads(data.get(KEY_SCHEMA, "{}")),
                episodes=json.loads(data.get(KEY_EPISODES, "{}")),
                dropped_messages=int(data.get(KEY_DROPPED, "0")),
                recovered=json.loads(data.get(KEY_RECOVERED, "{}")),
                plan=plan,
                plan_error=plan_error,
            )
        except (ValueError, TypeError, ConfigError) as exc:
            raise BagFormatError(f"{where}: HER metadata is malformed: {exc}") from None


def _plan(text: str | None) -> tuple[EvaluationPlan | None, str]:
    """The plan stored under ``her.plan``, or (None, why not) - a bad plan is the audit's
    finding, not a reason to refuse the bag."""
    if text is None:
        return None, ""
    try:
        return EvaluationPlan.from_dict(json.loads(text)), ""
    except (ValueError, TypeError, ConfigError) as exc:
        return None, f"{KEY_PLAN} is not a readable evaluation plan: {exc}"
