"""Exploration statistics of a task under non-learned policies (diagnosis for issue 10).

For each env: share of episodes whose block moved >= 5 cm (the buffer's `moving`
definition) and >= 1 cm, share of transitions with reward 0 on the requested goal
(the learner's original positive share), share of episodes solved at reset and at the end,
start tool-block offset and start block-goal distance.

Policies: `uniform` (uniform random actions) and `ddpg0` (what DDPG exploration does with an
untrained actor whose output is ~0: random_eps 0.3 uniform, else N(0, 0.2) clipped).

usage: python diag/explore_stats.py ENV [ENV...] [--episodes N] [--policy uniform|ddpg0]
  ENV: FetchPush-v4, FetchPickAndPlace-v4, task:push, task:pick_and_place
"""
import argparse, sys
import numpy as np
from her_policy.envs import EnvSource

p = argparse.ArgumentParser()
p.add_argument("envs", nargs="+")
p.add_argument("--episodes", type=int, default=300)
p.add_argument("--policy", default="uniform")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--tool-start", default=None, help="x,y,z of the tool at reset (our tasks)")
p.add_argument("--opening", type=float, default=None, help="gripper opening at reset (our tasks)")
p.add_argument("--block-gripper", action="store_true")
p.add_argument("--mass", type=float, default=None)
p.add_argument("--min-goal", type=float, default=None, help="MIN_START_GOAL_DISTANCE_M (our tasks)")
a = p.parse_args()
import her_mujoco.tasks as T
for cls in (T.PushEnv, T.PickAndPlaceEnv):
    if a.tool_start:
        cls.tool_start_m = tuple(float(v) for v in a.tool_start.split(","))
    if a.block_gripper:
        cls.block_gripper = True
    if a.opening is not None:
        cls.start_gripper_opening_m = a.opening
if a.min_goal is not None:
    T.MIN_START_GOAL_DISTANCE_M = a.min_goal

for name in a.envs:
    src = EnvSource(task=name[5:]) if name.startswith("task:") else EnvSource(env_id=name)
    env = src()
    if a.mass is not None and name.startswith("task:"):
        import mujoco
        m = env.unwrapped.sim.model
        b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "block")
        m.body_inertia[b] *= a.mass / m.body_mass[b]
        m.body_mass[b] = a.mass
    rng = np.random.default_rng(a.seed)
    moved5 = moved1 = pos = n_tr = solved0 = solved_end = 0
    lifted = 0
    flung = 0
    far = 0
    offs, dists = [], []
    first_env = env.reset(seed=a.seed)
    for ep in range(a.episodes):
        o, info = env.reset() if ep else first_env
        ag0 = o["achieved_goal"].copy()
        obs = o["observation"]
        tcp = obs[:3]
        offs.append(ag0 - tcp)
        dists.append(np.linalg.norm(ag0 - o["desired_goal"]))
        solved0 += float(info.get("is_success", 0.0))
        maxd = 0.0
        maxz = 0.0
        for t in range(50):
            if a.policy == "uniform" or rng.random() < 0.3:
                act = rng.uniform(-1, 1, 4)
            else:
                act = np.clip(rng.normal(0, 0.2, 4), -1, 1)
            o, r, term, trunc, info = env.step(act.astype(np.float32))
            pos += r == 0.0
            n_tr += 1
            maxd = max(maxd, np.linalg.norm(o["achieved_goal"] - ag0))
            maxz = max(maxz, o["achieved_goal"][2] - ag0[2])
            if t > 0:
                speed = np.linalg.norm(o["achieved_goal"] - prev) / 0.04
            prev = o["achieved_goal"].copy()
            if term or trunc:
                break
        # flung: the block left the table plane by > 1 cm without being lifted in a grasp,
        # or ended > 35 cm from where it started
        flung += (maxz >= 0.01 and maxz < 0.03)
        far += maxd >= 0.3
        moved5 += maxd >= 0.05
        moved1 += maxd >= 0.01
        lifted += maxz >= 0.03
        solved_end += float(info["is_success"])
    offs = np.array(offs)
    n = a.episodes
    print(f"{name:22s} policy={a.policy}: moved>=5cm {moved5/n:.3f}  moved>=1cm {moved1/n:.3f}  "
          f"lifted>=3cm {lifted/n:.3f}  orig positive share {pos/n_tr:.3f}  solved@reset {solved0/n:.3f}  "
          f"solved@end {solved_end/n:.3f}  block rose 1-3 cm {flung/n:.3f}  moved >=30 cm {far/n:.3f}")
    print(f"{'':22s} block - tool at reset: mean {np.round(offs.mean(0),3)}  |xy| min {np.linalg.norm(offs[:,:2],axis=1).min():.3f} "
          f"mean {np.linalg.norm(offs[:,:2],axis=1).mean():.3f};  start-goal dist mean {np.mean(dists):.3f} "
          f"min {np.min(dists):.3f}  share<5cm {np.mean(np.array(dists)<0.05):.3f}")
    sys.stdout.flush()
