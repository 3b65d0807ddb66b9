"""The task registry: one declaration per task, read by every part of HER-ROS.

A task is what a user names on the command line (``her train --task push``) and in a
node's ``task`` parameter. Its :class:`TaskSpec` says everything the rest of the
stack needs to agree on: the goal space (and so the reward), where requested goals
come from, where the object starts, how long an episode is, which observation
fields the policy sees, the Gymnasium id of the simulated version and the training
preset. The simulator's env classes (``her_mujoco.tasks``), the node cores, the
trainer, the CLI, the audit and the YAML defaults all read this table; nothing else
declares a task. ARCHITECTURE.md ("Add a task") says where the other pieces go.

Units: metres in ``base_link`` for positions (the arm's base frame, z up, the table
top at z = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from her_goals.checks import Registered
from her_goals.config import suggest
from her_goals.errors import ConfigError
from her_goals.sampling import GoalRegion
from her_goals.spaces import GoalSpace, get_goal_space, register_goal_space

TABLE_Z_M = 0.0
"""Height of the table top in base_link (m)."""
BLOCK_HALF_SIZE_M = 0.025
"""Half the edge of the manipulated block (m)."""
MAX_STEP_M = 0.05
"""Tool displacement commanded by a unit action component of the arm tasks (Fetch: 5 cm)."""
MIN_START_GOAL_DISTANCE_M = 0.05
"""A block starts at least this far from its goal, and never closer than the task's tolerance:
a task never starts solved. (FetchPush/PickAndPlace have no such rule: 7% of their goals are
within 5 cm of the block's start, solved before any action.)"""
MIN_TOOL_OBJECT_XY_M = 0.1
"""A block starts at least this far (xy) from the tool's start (Fetch's rule: no block under
the gripper at reset)."""

OBSERVATION_GROUPS = ("arm", "object", "drawer")
"""Groups of observation fields (``her_goals.robot.observation`` lists each group's fields)."""
GOAL_FIELDS = {"ee_position": "tcp_pos", "object_position": "object_pos", "joint_position": "drawer_pos"}
"""The observation field that measures each task goal space's achieved goal (the scripted
controllers' and the audit's view of it)."""


@dataclass(frozen=True)
class TaskSpec:
    """What one task is, in the units of its goal space."""

    name: str
    """Short name used on the command line and in node parameters."""
    summary: str
    """One line for ``--help`` and reports."""
    goal_space: str
    """Registered goal-space name (``her_goals.spaces``): owns reward and success."""
    goal_region: GoalRegion
    """Where requested goals (training and held-out) are drawn from."""
    tolerance: float = 0.05
    """Success threshold on the goal distance, in the goal space's units: the one tolerance of
    the task (:func:`register_task` gives the registered goal space this tolerance)."""
    object_start: GoalRegion | None = None
    """Where the object's centre starts (m, base_link); None: the task has no object."""
    episode_steps: int = 50
    """Policy steps (control ticks) per episode before the time limit."""
    observation: tuple[str, ...] = ("arm",)
    """Observation field groups the policy sees, in order (see OBSERVATION_GROUPS)."""
    env_id: str = ""
    """Gymnasium id of the simulated task (``her_mujoco`` registers it)."""
    preset: str = ""
    """Training preset of ``her train --task NAME`` (``her_policy.learn.presets``)."""
    tool_start: tuple[float, float, float] | None = None
    """Tool centre point at reset (m, base_link, gripper pointing down); None: the arm
    config's home posture. The simulator, the bridge and ``her sim`` start episodes here."""
    block_gripper: bool = False
    """Hold the gripper shut and ignore the gripper action (FetchPush's ``block_gripper``):
    in training, in simulation and on the robot's control path alike."""

    def __post_init__(self) -> None:
        unknown = [g for g in self.observation if g not in OBSERVATION_GROUPS]
        if unknown or not self.observation:
            raise ConfigError(
                f"task {self.name!r}: observation groups {list(self.observation)} must be a "
                f"non-empty list of {', '.join(OBSERVATION_GROUPS)}"
            )
        if self.episode_steps < 1:
            raise ConfigError(f"task {self.name!r}: episode_steps must be >= 1, got {self.episode_steps}")
        if not self.tolerance > 0:
            raise ConfigError(f"task {self.name!r}: tolerance must be > 0, got {self.tolerance}")
        if ("object" in self.observation) != (self.object_start is not None):
            raise ConfigError(
                f"task {self.name!r}: a task with an object needs both object_start and the "
                "'object' observation group, a task without one neither"
            )

    @property
    def has_object(self) -> bool:
        """True when the task moves an object (its observation has the object fields)."""
        return self.object_start is not None


_ON_TABLE_Z_M = TABLE_Z_M + BLOCK_HALF_SIZE_M

TASKS: dict[str, TaskSpec] = {}
"""Every registered task by name; add one with :func:`register_task`."""


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` (a second task of the same name is an error).

    The task's tolerance is the one truth: the registered goal space of the task takes it, so a
    goal space looked up by name (a bag without HER metadata) scores as the task does. Two
    tasks of one goal space must agree on it; a task that needs another tolerance registers a
    goal space of its own (``her_goals.register_goal_space``).
    """
    if spec.name in TASKS and TASKS[spec.name] != spec:
        raise ConfigError(f"a different task named {spec.name!r} is already registered")
    space = get_goal_space(spec.goal_space)  # an unknown goal space names the closest one
    for other in TASKS.values():
        if other.name != spec.name and other.goal_space == spec.goal_space and other.tolerance != spec.tolerance:
            raise ConfigError(
                f"task {spec.name!r}: tolerance {spec.tolerance:g} {space.units} differs from task "
                f"{other.name!r}'s {other.tolerance:g} in the same goal space {space.name!r}; a goal "
                "space has one tolerance: register a goal space of its own for this task"
            )
    if space.tolerance != spec.tolerance:
        register_goal_space(space.with_tolerance(spec.tolerance), overwrite=True)
    TASKS[spec.name] = spec
    return spec


def task_goal_space(task: str | TaskSpec, *, tolerance: float | None = None) -> GoalSpace:
    """The goal space of ``task`` with the task's tolerance (``tolerance`` overrides it: a node
    parameter, an audit option). Every path that scores a task's goals takes it from here (or
    from :class:`her_goals.robot.rig.TaskRig`, which calls this)."""
    spec = get_task(task) if isinstance(task, str) else task
    return get_goal_space(spec.goal_space, tolerance=spec.tolerance if tolerance is None else tolerance)


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; a typo names the closest task and lists them all."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown task {name!r}.{suggest(str(name), TASKS)} Tasks: {', '.join(TASKS)}."
        ) from None


def task_names() -> tuple[str, ...]:
    """Names of the registered tasks, in registration order (for CLI choices)."""
    return tuple(TASKS)


TaskName = Annotated[str, Registered("task", task_names)]
"""A settings field naming a registered task (``--task``, a node's ``task`` parameter): checked
against :data:`TASKS` like every declared range, the error naming the closest task."""


register_task(
    TaskSpec(
        name="reach",
        summary="move the tool centre point to a goal in a 30 cm box above the table",
        goal_space="ee_position",
        # Centred on the tool's home position (0.5, 0, 0.2) m, Fetch's +-15 cm.
        goal_region=GoalRegion(low=(0.35, -0.15, 0.05), high=(0.65, 0.15, 0.35)),
        observation=("arm",),
        env_id="HerReach-v0",
        preset="reach",
    )
)
register_task(
    TaskSpec(
        name="push",
        summary="push the block across the table to a goal on the table",
        goal_space="object_position",
        goal_region=GoalRegion(low=(0.35, -0.15, _ON_TABLE_Z_M), high=(0.65, 0.15, _ON_TABLE_Z_M)),
        # 30 cm square centred under the tool's home position (Fetch: +-15 cm).
        object_start=GoalRegion(low=(0.35, -0.15, _ON_TABLE_Z_M), high=(0.65, 0.15, _ON_TABLE_Z_M)),
        observation=("arm", "object"),
        env_id="HerPush-v0",
        preset="push",
        # As FetchPush: the tcp 0.9 cm below the block's centre (fingertips 1.1 cm above the
        # table), fingers shut. From the old start 17.5 cm above the block a random policy
        # moved the block >= 5 cm in 1.3% of episodes (FetchPush 10.7%); from here in 12.5%.
        tool_start=(0.5, 0.0, _ON_TABLE_Z_M - 0.009),
        block_gripper=True,
    )
)
register_task(
    TaskSpec(
        name="pick_and_place",
        summary="move the block to a goal on the table (half the goals) or up to 30 cm above it",
        goal_space="object_position",
        goal_region=GoalRegion(
            low=(0.35, -0.15, _ON_TABLE_Z_M), high=(0.65, 0.15, _ON_TABLE_Z_M + 0.3), floor_fraction=0.5
        ),
        object_start=GoalRegion(low=(0.35, -0.15, _ON_TABLE_Z_M), high=(0.65, 0.15, _ON_TABLE_Z_M)),
        observation=("arm", "object"),
        env_id="HerPickAndPlace-v0",
        preset="pick_and_place",
        # As FetchPickAndPlace: the tool 11 cm above the block's centre height, gripper open.
        tool_start=(0.5, 0.0, _ON_TABLE_Z_M + 0.11),
    )
)


# -- drawer (issue 10, item 4): her_mujoco/drawer.py simulates it, models/her_arm_drawer.xml is its scene.
DRAWER_TRAVEL_M = 0.2
"""Full opening of the drawer task's drawer (m): the range of its slide joint in the model
(the env refuses a model whose range does not hold the goal region)."""
DRAWER_MIN_START_GOAL_M = 0.05
"""The drawer starts anywhere in its travel at least this far from the goal (2.5 x tolerance):
a drawer task never starts solved, and half its episodes open the drawer, half close it."""
DRAWER_TOOL_START_M = (0.5, 0.0, 0.12)
"""Tool start of the drawer task (m, base_link): above the middle of the handle's travel, the
fingertips 5 cm above the drawer and 7.5 cm above the handle bar. From the arm's home (tcp 20 cm
up) random exploration touched the drawer in 1% of episodes; from here in 8%."""
register_task(
    TaskSpec(
        name="drawer",
        summary="pull the drawer open or push it shut to a goal opening between closed and 20 cm",
        goal_space="joint_position",
        # Closed to fully open; the start is drawn by the env (DRAWER_MIN_START_GOAL_M).
        goal_region=GoalRegion(low=(0.0,), high=(DRAWER_TRAVEL_M,)),
        tolerance=0.02,
        observation=("arm", "drawer"),
        env_id="HerDrawer-v0",
        preset="drawer",
        tool_start=DRAWER_TOOL_START_M,
    )
)
