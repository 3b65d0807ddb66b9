"""Goal-conditioned Gymnasium tasks on the MuJoCo arm: Reach, Push, PickAndPlace.

Fetch-like: 25 Hz control, 50-step episodes, action = tool Cartesian step (at
most 5 cm per step) + gripper open/close, sparse reward from the task's
:class:`her_goals.GoalSpace`. The contract every step keeps::

    reward == env.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)

Evaluation asks for a specific held-out goal with
``env.reset(options={"desired_goal": g})`` for ``g`` in
``env.unwrapped.goal_sampler.heldout(n)``, or for a random held-out goal with
``options={"split": "heldout"}``. Gymnasium wrappers do not forward attributes:
reach ``goal_space``, ``goal_sampler`` and ``observation_layout`` through
``env.unwrapped``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from numpy.typing import ArrayLike, NDArray

from her_goals.config import from_mapping, suggest
from her_goals.errors import ConfigError, GoalShapeError
from her_goals.extractors import AchievedGoalExtractor, RobotState
from her_goals.robot.arm_config import ArmConfig, load_arm_config
from her_goals.robot.ik import DEFAULT_IK, DifferentialIK, IKSettings, cartesian_step
from her_goals.robot.kinematics import Kinematics
from her_goals.robot.observation import ObservationBuilder, ObservationLayout
from her_goals.robot.rig import TaskRig
from her_goals.safety_flags import FilteredCommand
from her_goals.sampling import GoalRegion, GoalSampler
from her_goals.spaces import GoalSpace
from her_goals.tasks import (
    BLOCK_HALF_SIZE_M,
    MAX_STEP_M,
    MIN_START_GOAL_DISTANCE_M,
    MIN_TOOL_OBJECT_XY_M,
    TABLE_Z_M,
    TASKS,
    TaskSpec,
    get_task,
)
from her_mujoco.errors import ActionError, EpisodeOrderError
from her_mujoco.randomization import DomainRandomization, SimParams
from her_mujoco.sim import ArmSim

# Where the tool may be sent (m, base_link): over the table, clear of the base, with
# the tcp at least 1 cm up so the fingertips (5 mm below it) stay off the table, and
# within the arm's reach with the gripper pointing down (the far top corners are at
# its edge: the IK gets within 1 cm of them).
WORKSPACE_LOW = np.array([0.25, -0.30, 0.01])
WORKSPACE_HIGH = np.array([0.70, 0.30, 0.40])
TABLE_GRASP_TCP_Z_M = 0.015
"""tcp height of a grasp on the table: fingertips 1 cm above it."""
GRASP_OFFSET_M = 0.02
"""Block centre above the tcp when held: the 5 cm pads reach from 5 mm below the tcp."""
NEAR_START_XY_M = (0.05, 0.08)
"""Default tool-to-block-centre distance (xy, m) of a near start: the shut fingers 1-4 cm from the block."""
NEAR_START_MAX_M = 0.30
"""Largest near-start distance accepted (the workspace is 45 x 60 cm)."""


def near_start_range(values: Any, name: str = "train_near_start_m") -> tuple[float, float]:
    """``values`` as a near start's (low, high) tool-to-block-centre distance, checked."""
    vals = [float(v) for v in values]
    if len(vals) != 2 or not 0.0 < vals[0] <= vals[1] <= NEAR_START_MAX_M:
        raise ConfigError(
            f"{name}={vals}: give two tool-to-block-centre distances [low, high] in metres, "
            f"0 < low <= high <= {NEAR_START_MAX_M} (default {list(NEAR_START_XY_M)})"
        )
    return vals[0], vals[1]


PARKED_OBJECT_M = np.array([0.9, 0.5, TABLE_Z_M + BLOCK_HALF_SIZE_M])
"""A task without an object parks the model's block here, out of the arm's reach."""
_RESET_OPTIONS = ("desired_goal", "split", "object_position")


class CommandFilter(Protocol):
    """The robot's control path between a training env's action and its joints (limits, IK,
    safety monitor): ``her_policy.learn.safety_layer`` builds one from ``config/safety.yaml``.
    ``start()`` at every reset; one call per step with the measured state the action was
    chosen on, the action, the episode's goal and the simulated time."""

    def start(self) -> None: ...

    def __call__(
        self, state: RobotState, action: NDArray[np.float64], desired_goal: NDArray[np.float64], now_ns: int
    ) -> FilteredCommand: ...


def solve_start_posture(
    kinematics: Kinematics,
    tool: ArrayLike,
    dt_s: float,
    settings: IKSettings = DEFAULT_IK,
    *,
    what: str = "task",
    q0: ArrayLike | None = None,
    tol_m: float = 1e-5,
) -> NDArray[np.float64]:
    """Joint positions (rad) with the tool at ``tool`` (m, base_link), pointing down.

    The differential IK run from the home posture, so the redundant joint ends where
    the IK's null-space pull leaves it (or from ``q0``), until within ``tol_m``; the
    damping and the null-space pull can stall it near 0.2 mm, so a solve that must be fast
    gives a looser ``tol_m``. A ConfigError if the IK cannot get within 1 mm.
    """
    target = np.asarray(tool, dtype=np.float64)
    q = kinematics.home_qpos.copy() if q0 is None else np.array(q0, dtype=np.float64)
    for _ in range(2000):
        err = target - kinematics.fk(q)
        if np.linalg.norm(err) < tol_m:
            break
        step = err * min(1.0, MAX_STEP_M / float(np.linalg.norm(err)))
        q = cartesian_step(kinematics, q, step, dt_s, settings=settings)
    miss = float(np.linalg.norm(target - kinematics.fk(q)))
    if miss > 1e-3:
        raise ConfigError(
            f"{what}: the arm cannot put its tool at the start position {target.tolist()} "
            f"(IK misses by {miss:.4f} m); choose one within reach"
        )
    return q


def sample_object_start(
    task: TaskSpec,
    rng: np.random.Generator,
    goal: NDArray[np.float64] | None,
    tool_xy: ArrayLike,
) -> NDArray[np.float64]:
    """An object start in the task's start region, at least ``max(MIN_START_GOAL_DISTANCE_M,
    tolerance)`` from ``goal`` (never solved at reset) and MIN_TOOL_OBJECT_XY_M (xy) from the
    tool (Fetch's rule: no block under the gripper), uniform otherwise."""
    if task.object_start is None:
        raise ConfigError(f"task {task.name!r} has no object to place")
    min_goal = max(MIN_START_GOAL_DISTANCE_M, task.tolerance)
    tool_xy = np.asarray(tool_xy, dtype=np.float64)[:2]
    for _ in range(1000):
        start = task.object_start.sample(rng, 1)[0]
        if (goal is None or np.linalg.norm(start - goal) >= min_goal) and (
            np.linalg.norm(start[:2] - tool_xy) >= MIN_TOOL_OBJECT_XY_M
        ):
            return start
    raise ConfigError(
        f"could not place the object at least {min_goal} m from goal "
        f"{None if goal is None else np.asarray(goal).tolist()} and {MIN_TOOL_OBJECT_XY_M} m (xy) "
        f"from the tool inside {task.object_start.low}..{task.object_start.high}"
    )


def _coerce_arm_config(arm_config: ArmConfig | Mapping[str, Any] | str | Path | None) -> ArmConfig:
    if arm_config is None:
        return ArmConfig()
    if isinstance(arm_config, ArmConfig):
        return arm_config
    if isinstance(arm_config, str | Path):
        return load_arm_config(arm_config)
    return from_mapping(ArmConfig, arm_config, where="arm_config")


class HerArmEnv(gym.Env[dict[str, NDArray[np.float64]], NDArray[np.float32]]):
    """Base of the arm's goal tasks: IK action mapping, goals, reward, observation.

    It has the API of ``gymnasium_robotics.GoalEnv`` (compute_reward/terminated/
    truncated) without subclassing it: importing gymnasium_robotics registers every
    robotics env, takes about half a second and prints a warning.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # noqa: RUF012 (gymnasium declares it an instance attribute)
    spec_name: ClassVar[str]
    """The registered task (her_goals.tasks) this class simulates."""
    task: ClassVar[TaskSpec]
    task_name: ClassVar[str]
    goal_space_name: ClassVar[str]
    has_object: ClassVar[bool]
    goal_region: ClassVar[GoalRegion]
    tool_start_m: ClassVar[tuple[float, float, float] | None] = None
    """Tool position at reset (m, base_link; the task's ``tool_start``); None: home posture."""
    start_gripper_opening_m: ClassVar[float | None] = None
    """Gripper opening at reset (m); None: the arm config's home opening."""
    grasp_on_table: ClassVar[bool] = False
    """Grasped training starts hold the block where it starts on the table (pick_and_place)
    instead of lifted at the tool's start position (the HER paper's single state)."""
    block_gripper: ClassVar[bool] = False
    """Hold the gripper shut and ignore action[3] (the task's ``block_gripper``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Everything a task is comes from its one registry entry.
        cls.task = get_task(cls.spec_name)
        cls.task_name = cls.task.name
        cls.goal_space_name = cls.task.goal_space
        cls.has_object = cls.task.has_object
        cls.goal_region = cls.task.goal_region
        cls.tool_start_m = cls.task.tool_start
        cls.block_gripper = cls.task.block_gripper

    def __init__(
        self,
        arm_config: ArmConfig | Mapping[str, Any] | str | Path | None = None,
        *,
        tolerance_m: float | None = None,
        goal_seed: int = 0,
        ik_settings: IKSettings = DEFAULT_IK,
        render_mode: str | None = None,
        train_grasped_start: float = 0.0,
        train_near_start: float = 0.0,
        train_near_start_m: tuple[float, float] = NEAR_START_XY_M,
        randomization: DomainRandomization | None = None,
    ) -> None:
        for name, share in (("train_grasped_start", train_grasped_start), ("train_near_start", train_near_start)):
            if not 0.0 <= share <= 1.0 or (share and not self.has_object):
                raise ConfigError(
                    f"{name}={share}: give a share in [0, 1], and only for tasks with an object"
                )
        self.train_grasped_start = float(train_grasped_start)
        self.train_near_start = float(train_near_start)
        """Share of the other training-split resets that start with the tool beside the block
        (``train_near_start_m`` from its centre on a random side, at the tool's start height)
        instead of at the task's tool start: an exploration aid for finding the block. Requested
        and held-out goals always start as the task says."""
        self.train_near_start_m = near_start_range(train_near_start_m)
        """Range (xy, m) of a near start's tool-to-block-centre distance, drawn uniformly."""
        self.randomization = randomization
        """Domain randomisation of training-split resets (``her train --randomize``): each one
        draws its physics and sensing (:class:`SimParams`) from these ranges, reported in the
        reset's ``info["sim_params"]``; requested and held-out goals run as the sim is set."""
        self._randomized = False
        self._dr_rng = np.random.default_rng(0)
        """Share of training-split resets that start with the block held in the gripper at
        the tool's start position (the HER paper's pick-and-place exploration aid);
        requested and held-out goals always start with the block on the table."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode {render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None"
            )
        self.render_mode = render_mode
        self.arm_config = _coerce_arm_config(arm_config)
        if self.has_object and self.arm_config.object_body is None:
            raise ConfigError(
                f"task {self.task_name!r} needs an object, but the arm config has "
                "object_body: null; name the object's body in the arm config"
            )
        self.sim = ArmSim(self.arm_config)
        # Kinematics gets its own data on the same (read-only) model: the observation is
        # computed from joint states exactly as on the robot.
        self.kinematics = Kinematics(self.arm_config, self.sim.model)
        self.ik_settings = ik_settings
        self.control_period_s = self.sim.control_period_s
        self._ik = DifferentialIK(self.kinematics, self.control_period_s, settings=ik_settings)
        """The env's own IK step (cartesian_step with its buffers made once per env, not per step)."""
        self._set_rig(TaskRig.build(
            self.task, self.arm_config, tolerance=tolerance_m, control_period_s=self.control_period_s,
            kinematics=self.kinematics,
        ))  # fmt: skip
        self.goal_sampler = GoalSampler(self.goal_space, self.goal_region, seed=goal_seed)
        """Public sampler: ``goal_sampler.heldout(n)`` gives the evaluation goals."""
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._max_opening = self.arm_config.gripper_max_opening_m
        self._start_qpos = (
            None
            if self.tool_start_m is None
            else solve_start_posture(
                self.kinematics,
                self.tool_start_m,
                self.control_period_s,
                self.ik_settings,
                what=f"task {self.task_name!r}",
            )
        )
        q0 = self.arm_config.home_qpos_rad if self._start_qpos is None else self._start_qpos
        self._tool_start = self.kinematics.fk(np.asarray(q0, dtype=np.float64))
        self._goal = np.zeros(self.goal_space.dim)
        self._state: RobotState | None = None
        self._obs: dict[str, NDArray[np.float64]] | None = None
        self._tcp = np.zeros(3)
        self._needs_reset = True
        self._renderer: mujoco.Renderer | None = None
        self.command_filter: CommandFilter | None = None
        """The safety layer every step goes through (:meth:`set_command_filter`); None: the
        env's own step (tool target clipped into the workspace silently, cost 0)."""

    def set_command_filter(self, command_filter: CommandFilter | None) -> None:
        """Run every step through ``command_filter`` (the robot's limits and monitor): each
        step's ``info["cost"]`` is then its intervention cost and ``info["safety_flags"]`` its
        reasons, a channel beside the reward (which stays the goal space's)."""
        self.command_filter = command_filter

    def _set_rig(self, rig: TaskRig) -> None:
        """Take the goal space, observation, achieved goal and spaces of the task from its rig."""
        self.rig = rig
        """The task on this arm (her_goals.robot.rig): what the control loop and the nodes build from."""
        self.goal_space: GoalSpace = rig.goal_space
        self.observation_builder: ObservationBuilder = rig.observation_builder()
        self.observation_layout: ObservationLayout = self.observation_builder.layout
        self._tcp_slice = rig.tcp_slice
        self.achieved_goal_extractor: AchievedGoalExtractor = rig.achieved_goal_extractor()
        dim = self.goal_space.dim
        self.observation_space = spaces.Dict(
            {
                "observation": spaces.Box(-np.inf, np.inf, (self.observation_layout.size,), np.float64),
                "achieved_goal": spaces.Box(-np.inf, np.inf, (dim,), np.float64),
                "desired_goal": spaces.Box(-np.inf, np.inf, (dim,), np.float64),
            }
        )

    # -- the goal contract --------------------------------------------------
    def compute_reward(self, achieved_goal: ArrayLike, desired_goal: ArrayLike, info: Any = None) -> NDArray[np.float32]:
        """Sparse reward of the task's goal space (0 success, -1 otherwise), vectorised."""
        return self.goal_space.compute_reward(achieved_goal, desired_goal, info)

    def compute_terminated(self, achieved_goal: ArrayLike, desired_goal: ArrayLike, info: Any = None) -> bool:
        """Only a physics failure ends an episode; reaching the goal does not."""
        return bool(isinstance(info, Mapping) and info.get("physics_diverged", False))

    def compute_truncated(self, achieved_goal: ArrayLike, desired_goal: ArrayLike, info: Any = None) -> bool:
        """Never: truncation comes from the TimeLimit wrapper (50 steps)."""
        return False

    @property
    def desired_goal(self) -> NDArray[np.float64]:
        """The goal of the current episode (m, base_link)."""
        return self._goal.copy()

    # -- episode ------------------------------------------------------------
    reset_options: ClassVar[tuple[str, ...]] = _RESET_OPTIONS
    """The ``options`` keys :meth:`reset` takes."""

    def _begin_reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[dict[str, Any], str, NDArray[np.float64]]:
        """What every task's reset does first: seed the streams, check the options, choose the
        goal (requested, held-out or training); returns the options, the split and the goal."""
        gym.Env.reset(self, seed=seed)
        if seed is not None:
            # Reseeds the training stream only; the held-out list stays fixed.
            self.goal_sampler.reset(seed)
            self._dr_rng = np.random.default_rng([seed, 0xD0])
        options = dict(options or {})
        for key in options:
            if key not in self.reset_options:
                raise ConfigError(
                    f"unknown reset option {key!r}.{suggest(key, self.reset_options)} "
                    f"Valid options: {', '.join(self.reset_options)}."
                )
        split = options.get("split", "train")
        if "desired_goal" in options:
            goal = self.goal_space.check(options["desired_goal"], "options['desired_goal']")
            if goal.shape != (self.goal_space.dim,):
                raise GoalShapeError(
                    f"options['desired_goal'] has shape {goal.shape}; reset takes one goal of "
                    f"shape ({self.goal_space.dim},), not a batch"
                )
            goal = self._check_requested_goal(goal).copy()
            split = "requested"
        elif split == "heldout":
            goal = self.goal_sampler.heldout(1, seed=int(self.np_random.integers(2**62)))[0]
        elif split == "train":
            goal = self.goal_sampler.sample()
        else:
            raise ConfigError(f"reset option split={split!r}: use 'train' or 'heldout'")
        self._goal = goal
        return options, split, goal

    def random_state(self) -> dict[str, Any]:
        """Every random stream of this env and its simulator between episodes, so a training
        run stopped there continues exactly as it would have (:meth:`set_random_state`)."""
        return {
            "np_random": dict(self.np_random.bit_generator.state),
            "goal_sampler": self.goal_sampler.random_state(),
            "randomization": dict(self._dr_rng.bit_generator.state),
            "randomized": self._randomized,
            "sim": self.sim.random_state(),
        }

    def set_random_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`random_state` (taken between episodes)."""
        self.np_random.bit_generator.state = state["np_random"]
        self.goal_sampler.set_random_state(state["goal_sampler"])
        self._dr_rng.bit_generator.state = state["randomization"]
        self._randomized = bool(state["randomized"])
        self.sim.set_random_state(state["sim"])

    def _check_requested_goal(self, goal: NDArray[np.float64]) -> NDArray[np.float64]:
        """A task's own check of a requested goal beyond the goal space's (the drawer: its travel)."""
        return goal

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.float64]], dict[str, Any]]:
        """Start an episode; ``options`` may request a goal, a split or an object position.

        ``{"desired_goal": g}`` uses goal ``g`` (checked by the goal space: wrong shape
        or NaN raises); ``{"split": "heldout"}`` draws a held-out evaluation goal,
        ``"train"`` (default) a training goal; ``{"object_position": p}`` places the block.
        """
        options, split, goal = self._begin_reset(seed, options)

        object_position: NDArray[np.float64] | None = None
        grasped = (
            split == "train"
            and "object_position" not in options
            and self.train_grasped_start > 0.0
            and self.np_random.random() < self.train_grasped_start
        )
        start_q = self._start_qpos
        if grasped and self.grasp_on_table:
            # Grasp where the block starts: tool lowered around it on the table.
            object_position = self._sample_object_start(goal)
            tool = object_position - np.array([0.0, 0.0, BLOCK_HALF_SIZE_M - TABLE_GRASP_TCP_Z_M])
            start_q = solve_start_posture(
                self.kinematics, tool, self.control_period_s, self.ik_settings,
                what=f"task {self.task_name!r} grasped start", q0=self._start_qpos, tol_m=5e-4,
            )
        elif grasped:
            object_position = self._tool_start + np.array([0.0, 0.0, GRASP_OFFSET_M])
            grasped = bool(
                np.linalg.norm(object_position - goal) >= max(MIN_START_GOAL_DISTANCE_M, self.goal_space.tolerance)
            )
        near = (
            not grasped
            and self.has_object
            and split == "train"
            and "object_position" not in options
            and self.train_near_start > 0.0
            and self.np_random.random() < self.train_near_start
        )
        placed = False  # the block already placed where a near start put it
        if near:
            object_position, placed = self._sample_object_start(goal), True
            near_q = self._near_start_posture(object_position)
            near = near_q is not None
            if near_q is not None:
                start_q = near_q
        if grasped or placed:
            pass
        elif self.has_object:
            if "object_position" in options:
                object_position = np.asarray(options["object_position"], dtype=np.float64)
            else:
                object_position = self._sample_object_start(goal)
        elif self.arm_config.object_body is not None:
            object_position = PARKED_OBJECT_M
        sim_params = self._randomize(split)
        self.sim.reset(
            object_position=object_position,
            qpos=start_q,
            gripper_opening_m=2 * BLOCK_HALF_SIZE_M if grasped else (
                0.0 if self.block_gripper else self.start_gripper_opening_m
            ),
        )
        if grasped:
            self.sim.set_joint_targets(
                start_q if start_q is not None else np.asarray(self.arm_config.home_qpos_rad), 0.0
            )
        self.sim.set_goal_marker(goal)
        if self.command_filter is not None:
            self.command_filter.start()
        self._state = self.sim.state()
        obs = self._observe(self._state, None)
        self._needs_reset = False
        info = {
            "is_success": self._success(obs),
            "split": split,
            "physics_diverged": False,
            "grasped_start": grasped,
            "near_start": near,
        }
        if sim_params is not None:
            info["sim_params"] = sim_params
        return obs, info

    def _randomize(self, split: str) -> dict[str, Any] | None:
        """Before a reset: a training episode draws its SimParams from ``randomization`` (from
        its own stream, so goals and starts are those of the unrandomised run); any other
        episode after randomised ones runs nominal. Returns the record of what was drawn."""
        if self.randomization is None:
            return None
        if split != "train":
            if self._randomized:
                self.sim.set_params(SimParams())
                self._randomized = False
            return None
        params = self.randomization.sample(self._dr_rng)
        self.sim.set_params(params, seed=int(self._dr_rng.integers(2**31)))
        self._randomized = True
        return params.record()

    def step(
        self, action: ArrayLike
    ) -> tuple[dict[str, NDArray[np.float64]], float, bool, bool, dict[str, Any]]:
        """Move the tool by action[:3] * 5 cm and set the gripper (-1 shut, +1 open).

        With a :attr:`command_filter` the action goes through it (the robot's limits, IK and
        safety monitor) and ``info["cost"]`` is the intervention's cost; without one the tool
        target is clipped into the workspace and the cost is 0."""
        if self._needs_reset or self._state is None or self._obs is None:
            raise EpisodeOrderError(
                "step() called before reset() or after the physics diverged; call reset()"
            )
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (4,):
            raise ActionError(
                f"action has shape {a.shape}; this task takes 4 values (dx, dy, dz, gripper) in [-1, 1]"
            )
        if not np.isfinite(a).all():
            raise ActionError(
                f"action contains NaN or inf: {a.tolist()}; the policy diverged or its input "
                "was not finite (check the observation), and the arm was not moved"
            )
        cost, flags = 0.0, 0
        if self.command_filter is not None:
            # The robot's path: the same limits, IK and monitor as evaluation and the arm.
            command = self.command_filter(self._state, a, self._goal, self.sim.time_ns)
            cost, flags = float(command.cost), int(command.flags)
            if command.q_target is not None:
                self.sim.set_joint_targets(command.q_target, command.gripper_m)
        else:
            a = np.minimum(np.maximum(a, -1.0), 1.0)
            target = np.minimum(np.maximum(self._tcp + MAX_STEP_M * a[:3], WORKSPACE_LOW), WORKSPACE_HIGH)
            q = self.observation_builder.arm_positions(self._state)
            q_target = self._ik(q, target - self._tcp)
            opening = 0.0 if self.block_gripper else 0.5 * (a[3] + 1.0) * self._max_opening
            self.sim.set_joint_targets(q_target, opening)
        self.sim.step()

        diverged = self.sim.diverged
        if diverged:
            # MuJoCo has already reset its data; keep the last good observation so that
            # nothing NaN or teleported reaches the learner, and end the episode.
            obs = {k: v.copy() for k, v in self._obs.items()}
            self._needs_reset = True
        else:
            previous, self._state = self._state, self.sim.state()
            obs = self._observe(self._state, previous)
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"]))
        # The goal space guarantees reward == is_success - 1, so success needs no second check.
        info: dict[str, Any] = {
            "is_success": reward + 1.0, "physics_diverged": diverged, "cost": cost, "safety_flags": flags,
        }  # fmt: skip
        terminated = self.compute_terminated(obs["achieved_goal"], obs["desired_goal"], info)
        return obs, reward, terminated, False, info

    # -- helpers ------------------------------------------------------------
    def _observe(self, state: RobotState, previous: RobotState | None) -> dict[str, NDArray[np.float64]]:
        vec = self.observation_builder(state, previous)
        self._tcp = vec[self._tcp_slice].copy()
        if self.goal_space_name == "ee_position":
            achieved = self._tcp.copy()  # the same FK the extractor would run, already done
        else:
            achieved = self.achieved_goal_extractor(state).copy()
        self._obs = {"observation": vec, "achieved_goal": achieved, "desired_goal": self._goal.copy()}
        return {k: v.copy() for k, v in self._obs.items()}

    def _success(self, obs: Mapping[str, NDArray[np.float64]]) -> float:
        return float(self.goal_space.is_success(obs["achieved_goal"], obs["desired_goal"]))

    def _sample_object_start(self, goal: NDArray[np.float64]) -> NDArray[np.float64]:
        return sample_object_start(self.task, self.np_random, goal, self._tool_start)

    def _near_start_posture(self, object_position: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """Joint positions with the tool ``train_near_start_m`` (xy) from the block on a random side,
        at the tool's start height, inside the workspace; a few sides are tried (the arm cannot
        put its tool everywhere near its base), None if the arm reaches none of them."""
        lo, hi = self.train_near_start_m
        for _ in range(8):
            r = float(self.np_random.uniform(lo, hi))
            angle = float(self.np_random.uniform(0.0, 2.0 * np.pi))
            tool = np.array([
                object_position[0] + r * np.cos(angle), object_position[1] + r * np.sin(angle), self._tool_start[2],
            ])  # fmt: skip
            tool = np.clip(tool, WORKSPACE_LOW, WORKSPACE_HIGH)
            try:
                return solve_start_posture(
                    self.kinematics, tool, self.control_period_s, self.ik_settings,
                    what=f"task {self.task_name!r} near start", q0=self._start_qpos, tol_m=5e-4,
                )
            except ConfigError:
                continue
        return None

    def render(self) -> Any:
        """An RGB image (H, W, 3) uint8 of the scene from the 'overview' camera, or None.

        Only with render_mode='rgb_array'; needs an OpenGL context (EGL/OSMesa headless).
        """
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.sim.model, 480, 640)
        camera = "overview" if mujoco.mj_name2id(
            self.sim.model, mujoco.mjtObj.mjOBJ_CAMERA, "overview"
        ) >= 0 else -1
        self._renderer.update_scene(self.sim.data, camera=camera)
        return self._renderer.render()

    def close(self) -> None:
        """Release the renderer, if one was made."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class ReachEnv(HerArmEnv):
    """Move the tool centre point to a goal in a 30 cm box above the table."""

    spec_name = "reach"


class PushEnv(HerArmEnv):
    """Push the block across the table to a goal on the table.

    As in FetchPush: the tool starts at the block's height (tcp 0.9 cm below the block
    centre, fingertips 1.1 cm above the table), the block at least 10 cm (xy) from it,
    and the gripper is held shut (action[3] is ignored).
    """

    spec_name = "push"


class PickAndPlaceEnv(HerArmEnv):
    """Move the block to a goal on the table (half the goals) or up to 30 cm above it.

    As in FetchPickAndPlace, the tool starts 11 cm above the block's centre height with
    the gripper open. (Fetch's air goals reach 45 cm; this arm's reach with the gripper
    pointing down ends near a 40 cm tcp height at the far corners, hence 30 cm.)
    """

    spec_name = "pick_and_place"
    grasp_on_table = True


ENV_CLASSES: dict[str, type[HerArmEnv]] = {
    cls.spec_name: cls for cls in (ReachEnv, PushEnv, PickAndPlaceEnv)
}
"""The simulated env class of each registered task."""


def register_tasks() -> None:
    """Register every task's Gymnasium id (TaskSpec.env_id) with Gymnasium (idempotent)."""
    for name, cls in ENV_CLASSES.items():
        spec = TASKS[name]
        if spec.env_id and spec.env_id not in gym.registry:
            gym.register(
                id=spec.env_id,
                entry_point=f"{cls.__module__}:{cls.__name__}",
                max_episode_steps=spec.episode_steps,
            )


def make_task(name: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` of a registered task by short name ("reach", "push", ...)."""
    spec = get_task(name)
    if name not in ENV_CLASSES:
        raise ConfigError(f"task {name!r} has no simulated version in her_mujoco")
    register_tasks()
    return gym.make(spec.env_id, **kwargs)
