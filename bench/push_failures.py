"""Why a push policy fails: its final evaluation's episodes split into success, blocks moved but
missed, and blocks never touched, with the mean distances of each group.

Runs the deterministic policy on the task's 100 held-out requested goals (set 0, the final
evaluation's), the way ``her eval`` does. A block counts as moved once its position changed by
more than 1 cm; the tool-to-block distance is the tool position's (the observation's first three
entries) to the block's centre.

Usage:
  .venv/bin/python bench/push_failures.py RUN/policy [RUN2/policy ...]
"""

from __future__ import annotations

import argparse

import numpy as np

from her_goals.errors import HerError
from her_policy.artefact.store import load_artefact
from her_policy.learn.envs import EnvSource, goal_space_of, requested_resets


def classify(artefact: str, episodes: int = 100) -> str:
    art = load_artefact(artefact)
    env = EnvSource(task="push")()
    space = goal_space_of(env)
    if not space.same_as(art.goal_space):
        raise SystemExit(f"{artefact}: a policy for goal space {art.goal_space.spec()}, not push's {space.spec()}")
    groups: dict[str, list[tuple[float, float]]] = {"success": [], "moved, missed": [], "never moved": []}
    for kw in requested_resets(env, episodes, heldout_seed=0):
        o, _ = env.reset(**kw)
        start, goal = o["achieved_goal"].copy(), o["desired_goal"].copy()
        nearest = np.inf
        done = False
        while not done:
            o, _, terminated, truncated, _ = env.step(art.act_batch(o["observation"][None], o["desired_goal"][None])[0])
            nearest = min(nearest, float(np.linalg.norm(o["observation"][:3] - o["achieved_goal"])))
            done = terminated or truncated
        final = float(space.distance(o["achieved_goal"], goal))
        moved = float(np.linalg.norm(o["achieved_goal"] - start)) > 0.01
        key = "success" if space.is_success(o["achieved_goal"], goal) else "moved, missed" if moved else "never moved"
        groups[key].append((final, nearest))
    env.close()
    parts = []
    for key, rows in groups.items():
        a = np.array(rows).reshape(-1, 2)
        tail = f" (final distance {a[:, 0].mean():.3f} m, nearest tool-block {a[:, 1].mean():.3f} m)" if len(a) else ""
        parts.append(f"{key} {len(a)}{tail}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artefacts", nargs="+", help="policy artefact directories of push runs")
    args = parser.parse_args()
    for artefact in args.artefacts:
        try:
            print(f"{artefact}: {classify(artefact)}")
        except HerError as exc:  # not an artefact, or not one of push's
            raise SystemExit(f"push_failures: {exc}") from None


if __name__ == "__main__":
    main()
