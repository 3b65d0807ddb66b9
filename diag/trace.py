"""Print a policy's episode step by step (tool, opening, block, goal, action).
usage: python diag/trace.py ARTEFACT EPISODE_INDEX [--patch ...]"""
import argparse, ast, sys
import numpy as np
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from diag_run_train import PatchedSource
from her_policy.artefact import load_artefact
p = argparse.ArgumentParser(); p.add_argument("artefact"); p.add_argument("idx", type=int, nargs="+")
p.add_argument("--task", default="push"); p.add_argument("--patch", action="append", default=[])
a = p.parse_args()
patches = tuple((k, ast.literal_eval(v)) for k, v in (s.split("=", 1) for s in a.patch))
env = PatchedSource(a.task, None, patches)()
pol = load_artefact(a.artefact)
L = env.unwrapped.observation_layout
goals = env.unwrapped.goal_sampler.heldout(max(a.idx) + 1)
np.set_printoptions(precision=3, suppress=True)
for i in a.idx:
    g = goals[i]
    o, _ = env.reset(seed=10_000 + i, options={"desired_goal": g})
    print(f"--- episode {i}: goal {g}, block {o['achieved_goal']}")
    for t in range(50):
        act = pol.act(o["observation"], o["desired_goal"]).astype(np.float32)
        ob = o["observation"]
        print(f"t{t:2d} tool {ob[L.slice('tcp_pos')]} open {ob[L.slice('gripper_opening')][0]:.3f} block {o['achieved_goal']} d {np.linalg.norm(o['achieved_goal']-g):.3f} act {act}")
        o, r, te, tr, info = env.step(act)
    print("final d", np.linalg.norm(o["achieved_goal"] - g), "success", info["is_success"])
