"""One training run with optional patches of her_mujoco.tasks, logging what the learner sees.

usage: python diag/run_train.py (--task push | --env FetchPush-v4) [--patch NAME=VALUE ...]
                                [--set FIELD=VALUE ...] --seed S --log FILE
  --patch  NAME is a her_mujoco.tasks module constant or CLASS.attr, VALUE a Python literal;
           applied in every process that builds an env (collector workers included).
  --set    TrainConfig field over the preset (literal).
Each periodic evaluation prints env steps, requested-goal success, moving share of stored
transitions, positive-reward share of original and relabelled samples, and the critic's
mean Q of the last update batch.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])


class PatchedSource:
    """Picklable env factory: apply patches to her_mujoco.tasks, then build the env."""

    def __init__(self, task: str | None, env_id: str | None, patches: tuple[tuple[str, object], ...],
                 kwargs: tuple[tuple[str, object], ...] = ()):
        self.task, self.env_id, self.patches, self.kwargs = task, env_id, patches, kwargs

    def __call__(self):
        from her_policy.envs import EnvSource

        if self.task is not None:
            import her_mujoco.tasks as T

            model_patches = []
            arm: dict = {}
            for name, value in self.patches:
                if name.startswith("arm:"):
                    arm[name[4:]] = value
                elif name.startswith(("body:", "geom:")):
                    model_patches.append((name, value))
                elif "." in name:
                    cls, attr = name.split(".")
                    setattr(getattr(T, cls), attr, value)
                else:
                    setattr(T, name, value)
            kwargs = self.kwargs + ((("arm_config", arm),) if arm else ())
            env = EnvSource(task=self.task, kwargs=kwargs)()
            if model_patches:
                import mujoco

                m = env.unwrapped.sim.model
                for name, value in model_patches:
                    kind, rest = name.split(":")
                    obj, attr = rest.split(".")
                    if kind == "body":
                        i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, obj)
                        if attr == "mass":  # scale inertia with the mass
                            m.body_inertia[i] *= value / m.body_mass[i]
                            m.body_mass[i] = value
                    else:
                        i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, obj)
                        getattr(m, "geom_" + attr)[i] = value
            return env
        return EnvSource(env_id=self.env_id)()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task")
    p.add_argument("--env")
    p.add_argument("--patch", action="append", default=[])
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", required=True)
    a = p.parse_args()
    from diag_run_train import PatchedSource as PS  # pickled by module name in the worker

    from her_policy.config import build_train_config
    from her_policy.train import train

    patches = tuple((k, ast.literal_eval(v)) for k, v in (s.split("=", 1) for s in a.patch))
    flags: dict = {"progress": False, "seed": a.seed}
    flags["task" if a.task else "env"] = a.task or a.env
    for s in a.set:
        k, v = s.split("=", 1)
        try:
            flags[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            flags[k] = v
    cfg = build_train_config(flags)
    print("config:", json.dumps({k: str(v) for k, v in dataclasses.asdict(cfg).items()}), flush=True)
    print("patches:", patches, flush=True)
    log = open(a.log, "w")
    log.write(json.dumps({"config": {k: str(v) for k, v in dataclasses.asdict(cfg).items()},
                          "patches": [list(x) for x in patches]}) + "\n")
    t0 = time.time()

    def on_eval(row, learner):
        # q_mean etc. are only in the jsonl written by train(); recompute from a fresh batch
        rec = dataclasses.asdict(row)
        rec["wall"] = time.time() - t0
        q = float("nan")
        if cfg.out is not None:
            from pathlib import Path

            lines = (Path(cfg.out) / "train_log.jsonl").read_text().splitlines()
            q = json.loads(lines[-1]).get("metrics", {}).get("q_mean", float("nan"))
        rec["q_mean"] = q
        if cfg.out is not None:  # keep every periodic policy for failure analysis
            from pathlib import Path

            from her_policy.artefact import save_artefact
            from her_policy.envs import layout_of

            save_artefact(Path(cfg.out) / f"policy_{row.env_steps:07d}", snapshot=learner.snapshot(),
                          layout=_layout[0], goal_space=_space[0], algorithm=learner.algorithm, config=cfg,
                          seeds={"run": cfg.seed}, data_hashes={}, provenance={"env_steps": row.env_steps})
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(f"{row.env_steps:7d} steps  succ {row.requested_success:.2f}  train_ep_succ {row.train_episode_success:.2f}  "
              f"moving {row.moving_fraction:.3f}  pos_orig {row.original_positive_fraction:.3f}  "
              f"pos_rel {row.hindsight_positive_fraction:.3f}  q {q:.2f}  wall {row.train_wall_s:.0f}s", flush=True)

    kw = (("train_grasped_start", cfg.grasped_start),) if cfg.grasped_start else ()
    src = PS(a.task, a.env, patches, kw)
    from her_policy.envs import goal_space_of, layout_of

    _probe = src()
    _layout, _space = [layout_of(_probe)], [goal_space_of(_probe, name=a.env)]
    _probe.close()
    res = train(cfg, env_factory=src, on_eval=on_eval)
    print(res.summary(), flush=True)
    log.write(json.dumps({"final": res.final.as_dict() if res.final else None, "env_steps": res.env_steps,
                          "train_wall_s": res.train_wall_s, "stopped": res.stopped_because}) + "\n")


if __name__ == "__main__":
    main()
