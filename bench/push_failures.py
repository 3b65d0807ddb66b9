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

from her_policy.artefact.store import load_artefact
from her_policy.learn.envs import EnvSource, requested_resets


def classify(artefact: str, episodes: int = 100) -> str:
    art = load_artefact(artefact)
    env = EnvSource(task="push")()
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
        final = float(np.linalg.norm(o["achieved_goal"] - goal))
        moved = float(np.linalg.norm(o["achieved_goal"] - start)) > 0.01
        key = "success" if final < env.unwrapped.goal_space.tolerance else "moved, missed" if moved else "never moved"
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
        print(f"{artefact}: {classify(artefact)}")


if __name__ == "__main__":
    main()
