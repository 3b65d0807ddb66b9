"""How the block responds to a push: ours vs FetchPush-v4.

The tool starts 6.5 cm behind the block centre (along +y or +x), at its reset height,
pushes with a constant unit-action fraction for K steps, then stops (zero action) for 15
steps. Prints block displacement while pushed, the slide after the tool stops, and the
yaw change. usage: python diag/push_dynamics.py
"""
import sys
import mujoco
import numpy as np
import gymnasium as gym
import her_mujoco.tasks as T

T.PushEnv.tool_start_m = (0.5, 0.0, 0.016)


def run(env, place, name):
    for axis in (0, 1):
        for frac in (1.0, 0.5):
            for K in (3, 6):
                o, _ = env.reset(seed=0)
                tool = o["observation"][:3].copy()
                blk = tool.copy()
                blk[axis] += 0.065
                place(env, blk)
                o, *_ = env.step(np.zeros(4, np.float32))
                b0 = o["achieved_goal"].copy()
                a = np.zeros(4, np.float32); a[axis] = frac; a[3] = -1
                for _ in range(K):
                    o, *_ = env.step(a)
                b1 = o["achieved_goal"].copy()
                a[:3] = 0
                for _ in range(15):
                    o, *_ = env.step(a)
                b2 = o["achieved_goal"].copy()
                yaw = o["observation"][yaw_idx[name]]
                print(f"{name:9s} axis {axis} action {frac:.1f} x{K}: block moved {np.linalg.norm(b1-b0)*100:5.1f} cm while pushed, "
                      f"slid {np.linalg.norm(b2-b1)*100:5.1f} cm after the stop, z {b2[2]:.3f}")


def place_ours(env, p):
    sim = env.unwrapped.sim
    a = sim._obj_qadr
    sim.data.qpos[a:a + 3] = p[:3] * np.array([1, 1, 0]) + np.array([0, 0, 0.025])
    import mujoco
    mujoco.mj_forward(sim.model, sim.data)
    env.unwrapped._state = sim.state()


def place_fetch(env, p):
    u = env.unwrapped
    q = u._utils.get_joint_qpos(u.model, u.data, "object0:joint").copy()
    q[:2] = p[:2]
    u._utils.set_joint_qpos(u.model, u.data, "object0:joint", q)
    u._mujoco.mj_forward(u.model, u.data)


yaw_idx = {"ours": 16 + 2 - 2 + 2, "FetchPush": 11 + 2}
import gymnasium_robotics
gym.register_envs(gymnasium_robotics)
def ours(mass=None, friction=None):
    env = T.make_task("push")
    m = env.unwrapped.sim.model
    g = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "block")
    t = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table_top")
    b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "block")
    if mass is not None:
        m.body_mass[b] *= mass / m.body_mass[b]
        m.body_inertia[b] *= mass / 0.1
    if friction is not None:
        m.geom_friction[g][0] = friction
        m.geom_friction[t][0] = friction
    return env


for arg in sys.argv[1:] or ["ours"]:
    if arg == "fetch":
        run(gym.make("FetchPush-v4"), place_fetch, "FetchPush")
    else:
        kw = dict(kv.split("=") for kv in arg.split(",")[1:])
        print("--", arg)
        run(ours(**{k: float(v) for k, v in kw.items()}), place_ours, "ours")
