"""The drawer task (``HerDrawer-v0``): open or shut a drawer to a goal opening.

Scene: ``her_goals/robot/models/her_arm_drawer.xml``, the arm of ``her_arm.xml`` (attached,
not copied) and a cabinet whose drawer slides toward the arm base on joint ``drawer_slide``
(0 = closed, 0.2 m = fully open). The other tasks' scene has no drawer.

The goal space is ``joint_position`` (one value, metres of slide travel) with the task's 2 cm
tolerance; the achieved goal is the drawer joint's position, read by
:class:`her_goals.JointAngleExtractor` from the :class:`~her_goals.RobotState` the simulator
reports, where :class:`DrawerSim` lists the drawer joint after the arm's and the gripper's -
as a robot's ``/joint_states`` would. The reward is the goal space's, so it is recomputable
from the joint value alone.

Each episode the drawer starts anywhere in its travel at least ``DRAWER_MIN_START_GOAL_M``
from the goal: goals span closed to fully open and none is reached at the start. The action
is the arm tasks' (tool step of at most 5 cm + gripper); the observation is the arm fields
plus the drawer group (``her_goals.robot.observation``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from numpy.typing import ArrayLike, NDArray

from her_goals.config import from_mapping
from her_goals.errors import ConfigError, StateError
from her_goals.extractors import RobotState
from her_goals.robot.arm_config import ArmConfig, load_arm_config
from her_goals.robot.arm_model import load_model
from her_goals.robot.drawer import (
    DRAWER_HANDLE_SITE,
    DRAWER_JOINT,
    DrawerGeometry,
    packaged_drawer_model_path,
)
from her_goals.robot.ik import DEFAULT_IK, IKSettings
from her_goals.tasks import DRAWER_MIN_START_GOAL_M
from her_mujoco.randomization import DomainRandomization
from her_mujoco.sim import ArmSim
from her_mujoco.tasks import ENV_CLASSES, HerArmEnv


def drawer_arm_config(arm_config: ArmConfig | Mapping[str, Any] | str | Path | None = None) -> ArmConfig:
    """The arm config of the drawer task: the drawer model and no block, unless the user says otherwise.

    A mapping or YAML file fills in ``model_path`` (the packaged drawer model) and
    ``object_body: null`` where it does not set them; an :class:`ArmConfig` is used as given.
    """
    if isinstance(arm_config, ArmConfig):
        return arm_config
    if isinstance(arm_config, str | Path):
        return load_arm_config(arm_config)  # a file names its own model
    values = {"model_path": packaged_drawer_model_path(), "object_body": None, **dict(arm_config or {})}
    return from_mapping(ArmConfig, values, where="arm_config")


class DrawerSim(ArmSim):
    """:class:`ArmSim` of a scene with a drawer: the drawer joint is in every reported state.

    ``state().joint_names`` is the arm's joints, the gripper's, then ``drawer_joint``;
    :meth:`reset` takes the drawer's opening (m).
    """

    def __init__(
        self,
        config: ArmConfig | None = None,
        *,
        model: mujoco.MjModel | None = None,
        drawer_joint: str = DRAWER_JOINT,
        handle_site: str = DRAWER_HANDLE_SITE,
    ) -> None:
        config = config if config is not None else drawer_arm_config()
        model = model if model is not None else load_model(config)
        self.drawer = DrawerGeometry.from_model(
            model, joint=drawer_joint, handle_site=handle_site,
            model_name=f"arm model {config.resolved_model_path}",
        )  # fmt: skip
        """The drawer's joint, handle geometry and range (from the model)."""
        joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, drawer_joint)
        self._drawer_qadr = int(model.jnt_qposadr[joint])
        self._drawer_dofadr = int(model.jnt_dofadr[joint])
        self._drawer_start = 0.0
        super().__init__(config, model=model)
        self.joint_names = (*self.joint_names, drawer_joint)
        self._qadr = np.append(self._qadr, self._drawer_qadr)
        self._dofadr = np.append(self._dofadr, self._drawer_dofadr)

    def reset(
        self,
        seed: int | None = None,
        *,
        object_position: ArrayLike | None = None,
        qpos: ArrayLike | None = None,
        gripper_opening_m: float | None = None,
        drawer_position_m: float | None = None,
    ) -> RobotState:
        """:meth:`ArmSim.reset`, with the drawer at ``drawer_position_m`` (default closed), at rest."""
        opening = 0.0 if drawer_position_m is None else float(drawer_position_m)
        self.drawer.check_goal(np.array([opening]), "drawer_position_m")
        super().reset(seed, object_position=object_position, qpos=qpos, gripper_opening_m=gripper_opening_m)
        self.data.qpos[self._drawer_qadr] = opening
        mujoco.mj_forward(self.model, self.data)
        return self.state()

    @property
    def drawer_position_m(self) -> float:
        """The drawer's opening (m): its slide joint's position in the physics."""
        return float(self.data.qpos[self._drawer_qadr])


class DrawerEnv(HerArmEnv):
    """Pull the drawer open or push it shut to a goal opening (m); see the module docstring."""

    spec_name = "drawer"
    reset_options = ("desired_goal", "split", "drawer_position")

    def __init__(
        self,
        arm_config: ArmConfig | Mapping[str, Any] | str | Path | None = None,
        *,
        tolerance_m: float | None = None,
        goal_seed: int = 0,
        ik_settings: IKSettings = DEFAULT_IK,
        render_mode: str | None = None,
        randomization: DomainRandomization | None = None,
    ) -> None:
        config = drawer_arm_config(arm_config)
        super().__init__(
            config, tolerance_m=tolerance_m, goal_seed=goal_seed, ik_settings=ik_settings,
            render_mode=render_mode, randomization=randomization,
        )  # fmt: skip
        # The base built an ArmSim of this model; the drawer's reports the drawer joint too.
        self.sim: DrawerSim = DrawerSim(self.arm_config, model=self.sim.model)
        drawer = self.rig.drawer
        assert drawer is not None  # the drawer task's rig has one (or raised, naming the fix)
        self.drawer: DrawerGeometry = drawer
        """The drawer's joint, handle geometry and travel, read from the model (the rig's: the
        observation's drawer fields use it; the simulator reads the same model)."""
        low, high = self.goal_region.low[0], self.goal_region.high[0]
        if low < self.drawer.low_m or high > self.drawer.high_m:
            raise ConfigError(
                f"task {self.task_name!r}: goals span {low:g}..{high:g} m but the drawer joint "
                f"{self.drawer.joint!r} of {self.arm_config.resolved_model_path} travels "
                f"{self.drawer.low_m:g}..{self.drawer.high_m:g} m; use the packaged drawer model "
                "or give the joint that range"
            )
        self.start_qpos = (
            self._start_qpos if self._start_qpos is not None else np.asarray(self.arm_config.home_qpos_rad)
        )
        """Arm joint positions at reset: the tool at DRAWER_TOOL_START_M, pointing down."""

    def _check_requested_goal(self, goal: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.drawer.check_goal(goal, "options['desired_goal']")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.float64]], dict[str, Any]]:
        """Start an episode; ``options`` may request a goal, a split or the drawer's start.

        ``{"desired_goal": [g]}`` uses goal ``g`` (m; outside the drawer's travel is a
        GoalError naming it); ``{"split": "heldout"}`` draws a held-out evaluation goal,
        ``"train"`` (default) a training goal; ``{"drawer_position": q}`` starts the drawer
        at opening ``q`` (m) instead of a random one at least DRAWER_MIN_START_GOAL_M from
        the goal.
        """
        options, split, goal = self._begin_reset(seed, options)
        if "drawer_position" in options:
            start = float(self.drawer.check_goal(np.ravel(options["drawer_position"]), "options['drawer_position']")[0])
        else:
            start = sample_drawer_start(self.drawer, self.np_random, float(goal[0]))
        sim_params = self._randomize(split)
        self.sim.reset(qpos=self.start_qpos, drawer_position_m=start)
        self.sim.set_goal_marker(self.drawer.handle_position(goal[0]))
        if self.command_filter is not None:
            self.command_filter.start()
        self._state = self.sim.state()
        obs = self._observe(self._state, None)
        self._needs_reset = False
        info: dict[str, Any] = {"is_success": self._success(obs), "split": split, "physics_diverged": False}
        if sim_params is not None:
            info["sim_params"] = sim_params
        return obs, info


def sample_drawer_start(drawer: DrawerGeometry, rng: np.random.Generator, goal_m: float) -> float:
    """A drawer opening uniform over the travel at least DRAWER_MIN_START_GOAL_M from ``goal_m``."""
    low, high, gap = drawer.low_m, drawer.high_m, DRAWER_MIN_START_GOAL_M
    below, above = max(0.0, goal_m - gap - low), max(0.0, high - goal_m - gap)
    if below + above <= 0.0:
        raise StateError(
            f"no drawer start at least {gap} m from goal {goal_m:g} m within {low:g}..{high:g} m"
        )
    u = float(rng.uniform(0.0, below + above))
    return low + u if u < below else goal_m + gap + (u - below)


ENV_CLASSES[DrawerEnv.spec_name] = DrawerEnv
