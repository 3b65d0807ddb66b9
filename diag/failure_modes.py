"""Classify a trained push/pick-and-place policy's episodes on held-out goals.

usage: python diag/failure_modes.py ARTEFACT_DIR N [--patch NAME=VALUE ...]
Per episode: success, block touched (moved >= 1 cm), closest block-goal distance during the
episode vs final (passed the goal and went on = overshoot), final block speed.
"""
import argparse, ast, sys
import numpy as np
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from diag_run_train import PatchedSource
from her_policy.artefact import load_artefact

p = argparse.ArgumentParser(); p.add_argument("artefact"); p.add_argument("n", type=int)
p.add_argument("--task", default="push")
p.add_argument("--patch", action="append", default=[])
a = p.parse_args()
patches = tuple((k, ast.literal_eval(v)) for k, v in (s.split("=", 1) for s in a.patch))
env = PatchedSource(a.task, None, patches)()
pol = load_artefact(a.artefact)
L = env.unwrapped.observation_layout
goals = env.unwrapped.goal_sampler.heldout(a.n)
rows = []
for seed, g in enumerate(goals):
    o, _ = env.reset(seed=10_000 + seed, options={"desired_goal": g})
    b0 = o["achieved_goal"].copy()
    d0 = np.linalg.norm(b0 - g)
    dmin, moved, t_first = d0, 0.0, None
    maxz = 0.0
    for t in range(50):
        o, r, te, tr, info = env.step(pol.act(o["observation"], o["desired_goal"]).astype(np.float32))
        d = np.linalg.norm(o["achieved_goal"] - g)
        dmin = min(dmin, d)
        m = np.linalg.norm(o["achieved_goal"] - b0)
        if t_first is None and m > 0.01:
            t_first = t
        moved = max(moved, m)
        maxz = max(maxz, o["achieved_goal"][2] - b0[2])
    v = np.linalg.norm(o["observation"][L.slice("object_vel")])
    rows.append((info["is_success"], moved > 0.01, dmin < 0.05, d, v, d0, t_first if t_first is not None else -1, maxz))
r = np.array(rows, dtype=float)
succ, touched, reached = r[:, 0] > 0, r[:, 1] > 0, r[:, 2] > 0
print(f"{a.artefact}: success {succ.mean():.2f}; failures {int((~succ).sum())}: untouched {int((~succ & ~touched).sum())}, "
      f"touched but never within 5 cm {int((~succ & touched & ~reached).sum())}, "
      f"within 5 cm during the episode but not at the end {int((~succ & reached).sum())}; "
      f"block rose > 1 cm in {int((r[:, 7] > 0.01).sum())} episodes ({int((~succ & (r[:, 7] > 0.01)).sum())} of them failures); "
      f"mean final dist of failures {r[~succ, 3].mean() if (~succ).any() else 0:.3f}; first contact step (median, successes) "
      f"{np.median(r[succ, 6]) if succ.any() else -1}")
