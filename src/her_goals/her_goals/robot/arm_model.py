"""Loading the arm model and turning configured names into MuJoCo ids, once.

Every name in an :class:`~her_goals.robot.arm_config.ArmConfig` is checked here at
start-up, so a model that does not match its config fails with one message that
names the missing thing, the names the model does have, and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from numpy.typing import NDArray

from her_goals.config import suggest
from her_goals.errors import ConfigError
from her_goals.robot.arm_config import ArmConfig

_KIND_NAMES = {
    mujoco.mjtObj.mjOBJ_JOINT: "joint",
    mujoco.mjtObj.mjOBJ_SITE: "site",
    mujoco.mjtObj.mjOBJ_BODY: "body",
    mujoco.mjtObj.mjOBJ_ACTUATOR: "actuator",
}
_COUNTS = {
    mujoco.mjtObj.mjOBJ_JOINT: "njnt",
    mujoco.mjtObj.mjOBJ_SITE: "nsite",
    mujoco.mjtObj.mjOBJ_BODY: "nbody",
    mujoco.mjtObj.mjOBJ_ACTUATOR: "nu",
}


def load_model(config: ArmConfig) -> mujoco.MjModel:
    """Load the configured MJCF/URDF and apply the configured timestep."""
    path = config.resolved_model_path
    if not path.is_file():
        raise ConfigError(
            f"arm model file {path} does not exist; fix model_path in the arm config "
            "(leave it unset for the packaged her_arm.xml)"
        )
    try:
        if path.suffix.lower() == ".urdf":
            # MuJoCo merges links attached by fixed joints into their parents by default,
            # which would delete exactly the links we name: base_link and the tcp link.
            spec = mujoco.MjSpec.from_file(str(path))
            spec.compiler.fusestatic = False
            model = spec.compile()
        else:
            model = mujoco.MjModel.from_xml_path(str(path))
    except ValueError as exc:  # MuJoCo reports parse and compile errors as ValueError
        raise ConfigError(f"arm model {path} could not be loaded by MuJoCo: {exc}") from exc
    model.opt.timestep = config.timestep_s
    return model


def names_of(model: mujoco.MjModel, kind: mujoco.mjtObj) -> list[str]:
    """All non-empty names of one kind of MuJoCo object in ``model``."""
    count = getattr(model, _COUNTS[kind])
    names = (mujoco.mj_id2name(model, kind, i) for i in range(count))
    return [n for n in names if n]


def find_id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str, config_key: str) -> int:
    """Id of ``name``; a ConfigError naming the key, the model's names and the fix if absent."""
    index = mujoco.mj_name2id(model, kind, name)
    if index >= 0:
        return int(index)
    what = _KIND_NAMES[kind]
    have = names_of(model, kind)
    raise ConfigError(
        f"arm model has no {what} {name!r} (from {config_key} in the arm config)."
        f"{suggest(name, have)} {what.capitalize()}s in the model: "
        f"{', '.join(have) if have else '(none)'}. Fix: set {config_key} to names from "
        f"that list, or add the {what} to the model file."
    )


@dataclass(frozen=True)
class FrameRef:
    """The tool frame: a site (MJCF) or a body (URDF models have no sites)."""

    kind: mujoco.mjtObj
    id: int


def find_ee_frame(model: mujoco.MjModel, config: ArmConfig) -> FrameRef:
    """The configured ee_site as a site, or as a body when the model has no such site."""
    site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, config.ee_site)
    if site >= 0:
        return FrameRef(mujoco.mjtObj.mjOBJ_SITE, int(site))
    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, config.ee_site)
    if body >= 0:
        return FrameRef(mujoco.mjtObj.mjOBJ_BODY, int(body))
    return FrameRef(
        mujoco.mjtObj.mjOBJ_SITE, find_id(model, mujoco.mjtObj.mjOBJ_SITE, config.ee_site, "ee_site")
    )


@dataclass(frozen=True)
class ArmIds:
    """Ids and addresses of the configured arm joints, resolved once at start-up."""

    joint_ids: NDArray[np.int64]
    qpos_adr: NDArray[np.int64]
    dof_adr: NDArray[np.int64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]


def resolve_joints(
    model: mujoco.MjModel, names: tuple[str, ...], config_key: str, *, hinge_or_slide: bool = True
) -> ArmIds:
    """Resolve joint names to ids, qpos/dof addresses and position limits."""
    ids = np.array(
        [find_id(model, mujoco.mjtObj.mjOBJ_JOINT, n, config_key) for n in names], dtype=np.int64
    )
    if hinge_or_slide:
        scalar = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
        bad = [n for n, j in zip(names, ids) if model.jnt_type[j] not in scalar]
        if bad:
            raise ConfigError(
                f"{config_key}: joint(s) {bad} are not hinge or slide joints; list the "
                "arm's one-degree-of-freedom joints only"
            )
    limited = model.jnt_limited[ids].astype(bool)
    low = np.where(limited, model.jnt_range[ids, 0], -np.inf)
    high = np.where(limited, model.jnt_range[ids, 1], np.inf)
    return ArmIds(
        joint_ids=ids.astype(np.int64),
        qpos_adr=model.jnt_qposadr[ids].astype(np.int64),
        dof_adr=model.jnt_dofadr[ids].astype(np.int64),
        low=low.astype(np.float64),
        high=high.astype(np.float64),
    )


def actuator_for_joint(model: mujoco.MjModel, joint_id: int, joint_name: str) -> int:
    """The actuator whose transmission is ``joint_id``, or a ConfigError saying how to add one."""
    for a in range(model.nu):
        if (
            model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
            and model.actuator_trnid[a, 0] == joint_id
        ):
            return a
    raise ConfigError(
        f"arm model has no actuator driving joint {joint_name!r}; the simulator commands "
        f"joint positions, so add e.g. <position joint=\"{joint_name}\" kp=\"...\" kv=\"...\"/> "
        "to the model's <actuator> section"
    )
