"""Whether a policy artefact fits the arm and task it is about to drive.

The policy node checks it when it loads an artefact, and the control loop when it swaps in
a newer version between episodes: an artefact trained for another arm (observation
layout), another task, another goal space or another action size is refused with the
reason, and the running policy (or the hold) stays.
"""

from __future__ import annotations

from typing import Any

from her_goals.errors import ConfigError


def check_artefact(metadata: dict[str, Any], layout_spec: dict[str, Any], obs_fields: list[tuple[str, int, int]],
                   goal_dim: int, action_dim: int, task: str) -> None:
    """Raise :class:`ConfigError` when an artefact was trained for another arm, task or action size."""
    source = str(metadata.get("provenance", {}).get("env", ""))
    if source and not source.startswith("task:"):
        raise ConfigError(f"artefact was trained on {source!r} (another arm); this node drives task {task!r}")
    if source.startswith("task:") and source != f"task:{task}":
        raise ConfigError(f"artefact was trained on {source!r}; this node drives task {task!r}")
    have = (int(layout_spec["observation_dim"]), int(layout_spec["goal_dim"]), int(layout_spec["action_dim"]))
    want = (obs_fields[-1][2], goal_dim, action_dim)
    fields = [tuple(f) for f in layout_spec.get("observation_fields", [])]
    if have != want or (fields and fields != [tuple(f) for f in obs_fields]):
        raise ConfigError(
            f"artefact expects observation/goal/action sizes {have} with fields {fields}; this arm and "
            f"task give {want} with {obs_fields}")
