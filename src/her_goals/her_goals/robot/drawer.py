"""The drawer of the drawer task: its joint, handle geometry and goal range, read from the model.

The drawer's state is one slide joint (``drawer_slide``, metres of travel, 0 = closed). On a
robot it would come with ``/joint_states`` (an encoder on the slide, or a tracked handle
converted to travel); in simulation :class:`her_mujoco.drawer.DrawerSim` reports it in the
same :class:`~her_goals.RobotState` as the arm's joints. Everything else the policy sees
about the drawer follows from that value and the fixed geometry here: the handle's position
is ``handle_closed + q * axis``. :meth:`DrawerGeometry.from_model` reads that geometry from
the MJCF (``models/her_arm_drawer.xml``), so there is one source of truth for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.config import suggest
from her_goals.errors import ConfigError, GoalError

DRAWER_JOINT = "drawer_slide"
"""Slide joint of the drawer in the packaged drawer model (m, 0 = closed)."""
DRAWER_HANDLE_SITE = "drawer_handle"
"""Site at the centre of the drawer's handle bar."""


def packaged_drawer_model_path() -> Path:
    """The MJCF of the arm with the drawer (her_goals/robot/models/her_arm_drawer.xml)."""
    return Path(__file__).resolve().parent / "models" / "her_arm_drawer.xml"


@dataclass(frozen=True)
class DrawerGeometry:
    """Where the drawer's handle is for a given opening, and the opening's range."""

    joint: str
    """Name of the slide joint whose position is the drawer's opening (m)."""
    handle_closed_m: tuple[float, float, float]
    """Handle centre with the drawer closed (joint at 0), m in base_link."""
    axis: tuple[float, float, float]
    """Unit direction (base_link) the handle moves as the opening grows."""
    low_m: float
    """Smallest opening the joint allows (closed), m."""
    high_m: float
    """Largest opening the joint allows (fully open), m."""

    def handle_position(self, opening_m: ArrayLike) -> NDArray[np.float64]:
        """Handle centre (m, base_link) at ``opening_m``; shape (..., 3) for openings of shape (...)."""
        q = np.asarray(opening_m, dtype=np.float64)[..., None]
        return np.asarray(self.handle_closed_m) + q * np.asarray(self.axis)

    def check_goal(self, goal: ArrayLike, what: str = "drawer goal") -> NDArray[np.float64]:
        """``goal`` (openings in m, shape (..., 1)) if every value lies in the joint's range.

        A value outside is a :class:`GoalError` that names the range and the units: a goal in
        degrees or centimetres (45, 10) lands far outside a travel of 0.2 m and is caught here.
        """
        g = np.asarray(goal, dtype=np.float64)
        bad = ~np.isfinite(g) | (g < self.low_m) | (g > self.high_m)
        if bad.any():
            value = float(g[bad].flat[0])
            raise GoalError(
                f"{what} {value:g} m is outside the travel of the drawer's joint {self.joint!r}, "
                f"{self.low_m:g} (closed) to {self.high_m:g} m (fully open). Drawer goals are the "
                f"slide position in metres, not degrees, radians or centimetres: give a value in "
                f"[{self.low_m:g}, {self.high_m:g}], e.g. {0.5 * (self.low_m + self.high_m):g} "
                "for half open."
            )
        return g

    @classmethod
    def from_model(
        cls,
        model: mujoco.MjModel,
        *,
        joint: str = DRAWER_JOINT,
        handle_site: str = DRAWER_HANDLE_SITE,
        model_name: str = "the arm model",
    ) -> DrawerGeometry:
        """Read the drawer of ``model``: a ConfigError naming the missing joint or site and the fix."""
        fix = (
            f"Fix: set model_path in the arm config to the arm model with the drawer, "
            f"{packaged_drawer_model_path()} (the drawer task's default when no arm config is "
            f"given), or add a limited slide joint {joint!r} and a site {handle_site!r} on its "
            "handle to your model."
        )
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        if j < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, i) or "" for i in range(model.njnt)]
            raise ConfigError(
                f"{model_name} has no drawer joint {joint!r}.{suggest(joint, names)} Its joints: "
                f"{', '.join(n for n in names if n) or '(none)'}. {fix}"
            )
        if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_SLIDE or not model.jnt_limited[j]:
            raise ConfigError(
                f"{model_name}: the drawer joint {joint!r} must be a slide joint with a range "
                f"(type=\"slide\" range=\"0 0.2\"). {fix}"
            )
        low, high = (float(v) for v in model.jnt_range[j])
        if not low <= 0.0 < high:
            raise ConfigError(
                f"{model_name}: the drawer joint {joint!r} has range [{low:g}, {high:g}] m; its "
                "0 must be the closed drawer and the range must open from there (e.g. 0 0.2)"
            )
        site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, handle_site)
        if site < 0:
            raise ConfigError(f"{model_name} has no handle site {handle_site!r}. {fix}")
        data = mujoco.MjData(model)
        adr = int(model.jnt_qposadr[j])
        positions = []
        for q in (0.0, high):
            data.qpos[adr] = q
            mujoco.mj_kinematics(model, data)
            positions.append(data.site_xpos[site].copy())
        moved = positions[1] - positions[0]
        if np.linalg.norm(moved) < 0.5 * high:
            raise ConfigError(
                f"{model_name}: the handle site {handle_site!r} does not move with the drawer "
                f"joint {joint!r}; put the site in the drawer's body"
            )
        axis = moved / np.linalg.norm(moved)
        return cls(
            joint=joint,
            handle_closed_m=(float(positions[0][0]), float(positions[0][1]), float(positions[0][2])),
            axis=(float(axis[0]), float(axis[1]), float(axis[2])),
            low_m=low,
            high_m=high,
        )
