"""Helpers of the ROS-layer tests (imported by name: conftest puts this directory on sys.path)."""

from __future__ import annotations

from typing import Any

from her_recorder.interfaces import typestore


def cdr_roundtrip(msg: Any) -> Any:
    """Serialise to CDR and back, as a message crossing the wire (or a bag) would."""
    store = typestore()
    return store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def write_artefact(path: Any, *, task: str = "reach", env: str | None = None, goal_space: str | None = None,
                   obs_dim: int | None = None) -> Any:
    """A small random-weight policy artefact for the MuJoCo arm (no torch needed)."""
    import itertools

    import numpy as np

    from her_goals import get_goal_space
    from her_goals.robot.observation import ObservationLayout
    from her_policy.artefact.layout import PolicyLayout
    from her_policy.artefact.store import save_artefact
    from her_policy.artefact.weights import ActorWeights

    layout = ObservationLayout.build(with_object=task != "reach")
    fields = tuple((f.name, f.start, f.stop) for f in layout.fields)
    n_obs = layout.size if obs_dim is None else obs_dim
    space = get_goal_space(goal_space or ("ee_position" if task == "reach" else "object_position"))
    rng = np.random.default_rng(0)
    sizes = [n_obs + space.dim, 16, 4]
    snapshot = ActorWeights(
        weights=tuple(rng.normal(0, 0.3, (a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)),
        biases=tuple(np.zeros(b, np.float32) for b in sizes[1:]),
        head="deterministic",
        obs_mean=np.zeros(n_obs, np.float32), obs_std=np.ones(n_obs, np.float32),
        goal_mean=np.zeros(space.dim, np.float32), goal_std=np.ones(space.dim, np.float32),
    )
    policy_layout = PolicyLayout(n_obs, space.dim, 4, (-1.0,) * 4, (1.0,) * 4, fields if obs_dim is None else ())
    return save_artefact(
        path, snapshot=snapshot, layout=policy_layout, goal_space=space, algorithm="ddpg",
        config={"task": task}, seeds={"run": 0}, data_hashes={"replay_episodes_sha256": "ab" * 32},
        provenance={"env": env or f"task:{task}"},
    )
