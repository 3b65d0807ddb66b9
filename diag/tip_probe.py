"""Does a push at height h tip the block? Ours vs FetchPush-v4.

Tool placed 6.5 cm behind the block along +x or +y at height h above the table (tcp /
grip site), pushes 8 steps with unit action 0.5 along that axis. Reports the block's
max tilt (rad) and travel. usage: python diag/tip_probe.py [ours-variant ...]
  variants: ours | ours,pad=1.0 | ours,mass=0.5 | fetch
"""
import sys
import mujoco
import numpy as np
import gymnasium as gym
import her_mujoco.tasks as T

T.PushEnv.tool_start_m = (0.5, 0.0, 0.016)
T.PushEnv.block_gripper = True


def go_to(env, target, table_z):
    for _ in range(40):
        o, *_ = env.step(np.append(np.clip((target - env._o["observation"][:3]) / 0.05, -1, 1), -1).astype(np.float32)) if False else (None,)
    return o


def run(make, place, table_z, name):
    for axis in (0, 1):
        for h in (0.016, 0.03, 0.04, 0.05):
            env = make()
            o, _ = env.reset(seed=0)
            # move the tool to height h at its start xy
            for _ in range(15):
                tool = o["observation"][:3]
                d = np.array([0, 0, table_z + h - tool[2]])
                o, *_ = env.step(np.append(np.clip(d / 0.05, -1, 1), -1).astype(np.float32))
            tool = o["observation"][:3].copy()
            blk = tool.copy(); blk[axis] += 0.065
            place(env, blk)
            o, *_ = env.step(np.zeros(4, np.float32))
            b0 = o["achieved_goal"].copy()
            a = np.zeros(4, np.float32); a[axis] = 0.5; a[3] = -1
            tilt = 0.0
            for _ in range(8):
                o, *_ = env.step(a)
                tilt = max(tilt, *np.abs(o["observation"][rot[name]][:2]))
            a[:3] = 0
            for _ in range(10):
                o, *_ = env.step(a)
                tilt = max(tilt, *np.abs(o["observation"][rot[name]][:2]))
            print(f"{name:22s} axis {axis} push height {h:.3f}: tilt max {tilt:5.2f} rad, block travel {np.linalg.norm(o['achieved_goal'][:2]-b0[:2])*100:5.1f} cm")


def place_ours(env, p):
    sim = env.unwrapped.sim
    a = sim._obj_qadr
    sim.data.qpos[a:a + 3] = np.array([p[0], p[1], 0.025])
    sim.data.qpos[a + 3:a + 7] = [1, 0, 0, 0]
    mujoco.mj_forward(sim.model, sim.data)
    env.unwrapped._state = sim.state()


def place_fetch(env, p):
    u = env.unwrapped
    q = u._utils.get_joint_qpos(u.model, u.data, "object0:joint").copy()
    q[:2] = p[:2]
    u._utils.set_joint_qpos(u.model, u.data, "object0:joint", q)
    u._mujoco.mj_forward(u.model, u.data)


rot = {}
for arg in sys.argv[1:] or ["ours", "fetch"]:
    if arg == "fetch":
        import gymnasium_robotics
        gym.register_envs(gymnasium_robotics)
        rot[arg] = slice(11, 14)
        run(lambda: gym.make("FetchPush-v4"), place_fetch, 0.4, arg)
    else:
        kw = {k: float(v) for k, v in (kv.split("=") for kv in arg.split(",")[1:])}

        def make(kw=kw):
            env = T.make_task("push")
            m = env.unwrapped.sim.model
            if "pad" in kw:
                for g in ("left_finger_pad", "right_finger_pad"):
                    m.geom_friction[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g)][0] = kw["pad"]
            if "mass" in kw:
                b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "block")
                m.body_inertia[b] *= kw["mass"] / m.body_mass[b]; m.body_mass[b] = kw["mass"]
            if "fr" in kw:
                for g in ("block", "table_top"):
                    m.geom_friction[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g)][0] = kw["fr"]
            return env
        rot[arg] = make().unwrapped.observation_layout.slice("object_rot")
        run(make, place_ours, 0.0, arg)
