"""Scripted-controller success on held-out goals under patches (same patch syntax as run_train).
usage: python diag/scripted_check.py TASK N [--patch NAME=VALUE ...]"""
import argparse, ast, sys
import numpy as np
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from diag_run_train import PatchedSource
from her_mujoco import scripted_controller

p = argparse.ArgumentParser(); p.add_argument("task"); p.add_argument("n", type=int)
p.add_argument("--patch", action="append", default=[])
a = p.parse_args()
patches = tuple((k, ast.literal_eval(v)) for k, v in (s.split("=", 1) for s in a.patch))
env = PatchedSource(a.task, None, patches)()
ctl = scripted_controller(env)
goals = env.unwrapped.goal_sampler.heldout(a.n)
succ, tilt = [], []
for seed, g in enumerate(goals):
    o, _ = env.reset(seed=seed, options={"desired_goal": g})
    mt = 0.0
    for t in range(50):
        o, r, te, tr, info = env.step(ctl(o))
        rot = o["observation"][env.unwrapped.observation_layout.slice("object_rot")]
        mt = max(mt, abs(rot[0]), abs(rot[1]))
    succ.append(info["is_success"]); tilt.append(mt)
print(f"{a.task} {patches}: scripted success {np.mean(succ):.2f} on {a.n} held-out goals; "
      f"episodes with block tilted >0.3 rad: {np.mean(np.array(tilt) > 0.3):.2f}")
