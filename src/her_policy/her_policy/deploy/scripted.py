"""Non-learned controllers for the arm tasks: baselines, demos and sanity checks.

Each controller maps an observation dict to an action, reading the vector
through the task's :class:`ObservationLayout`, and keeps no state between calls
(its phase is read off the observation), so it can take over mid-episode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from her_goals.config import suggest
from her_goals.errors import ConfigError
from her_goals.robot.observation import ObservationLayout
from her_goals.tasks import BLOCK_HALF_SIZE_M, MAX_STEP_M, get_task

Observation = Mapping[str, NDArray[np.float64]]
Controller = Callable[[Observation], NDArray[np.float32]]

GRIPPER_OPEN = 1.0
GRIPPER_SHUT = -1.0
SAFE_HEIGHT_M = 0.1
"""Travel height of the tcp over the table: fingertips clear a 5 cm block."""


def _action(delta_m: NDArray[np.float64], gripper: float) -> NDArray[np.float32]:
    out = np.empty(4, dtype=np.float32)
    out[:3] = np.clip(delta_m / MAX_STEP_M, -1.0, 1.0)
    out[3] = gripper
    return out


class ReachController:
    """Move the tool straight toward the desired goal."""

    def __init__(self, layout: ObservationLayout) -> None:
        self._tcp = layout.slice("tcp_pos")

    def __call__(self, obs: Observation) -> NDArray[np.float32]:
        tcp = obs["observation"][self._tcp]
        return _action(obs["desired_goal"] - tcp, GRIPPER_SHUT)


class PushController:
    """Go behind the block on the goal-block line, lower the closed gripper, push."""

    push_height_m = 0.015
    """tcp height while pushing: fingertips 1 cm above the table, pads low on the block."""
    standoff_m = BLOCK_HALF_SIZE_M + 0.035
    """tcp distance behind the block centre before pushing (block half + fingers + margin)."""
    contact_m = BLOCK_HALF_SIZE_M + 0.015
    """Commanded tcp distance behind the block centre while pushing (the closed fingers
    reach 1.1-1.8 cm from the tcp, depending on the push direction)."""
    done_m = 0.02
    """Block-goal distance at which pushing stops (half the 5 cm success tolerance)."""
    push_step_m = 0.025
    """Advance per step while pushing: slow enough that the block does not slide past."""

    def __init__(self, layout: ObservationLayout) -> None:
        self._tcp = layout.slice("tcp_pos")
        self._obj = layout.slice("object_pos")

    def __call__(self, obs: Observation) -> NDArray[np.float32]:
        vec = obs["observation"]
        tcp, block, goal = vec[self._tcp], vec[self._obj], obs["desired_goal"]
        to_goal = goal[:2] - block[:2]
        dist = float(np.linalg.norm(to_goal))
        if dist < self.done_m:
            # Done: hold still. Going around the block for a last centimetre risks
            # knocking it away, and rising while the pads touch it can tip it.
            return _action(np.zeros(3), GRIPPER_SHUT)
        u = to_goal / dist
        rel = tcp[:2] - block[:2]
        along = float(rel @ u)
        lateral = float(np.linalg.norm(rel - along * u))
        low = tcp[2] < self.push_height_m + 0.02
        if along < -BLOCK_HALF_SIZE_M and lateral < 0.02 and low:
            # Behind the block and down: push, steering back onto the line through the
            # block centre.
            # Slow down near the goal: the block slides on after the fingers stop.
            advance = min(self.push_step_m, 0.4 * dist)
            target = block[:2] - u * self.contact_m + u * advance
            return _action(np.append(target - tcp[:2], self.push_height_m - tcp[2]), GRIPPER_SHUT)
        pre = block[:2] - u * self.standoff_m
        if np.linalg.norm(tcp[:2] - pre) < 0.015:
            return _action(np.append(pre - tcp[:2], self.push_height_m - tcp[2]), GRIPPER_SHUT)
        if tcp[2] < SAFE_HEIGHT_M - 0.02 and np.linalg.norm(rel) < 0.1:
            # Near the block but not behind it: rise first so we do not knock it.
            return _action(np.array([0.0, 0.0, SAFE_HEIGHT_M - tcp[2]]), GRIPPER_SHUT)
        return _action(np.append(pre - tcp[:2], SAFE_HEIGHT_M - tcp[2]), GRIPPER_SHUT)


class PickAndPlaceController:
    """Best effort: above the block, down with the gripper open, close, carry to the goal."""

    def __init__(self, layout: ObservationLayout) -> None:
        self._tcp = layout.slice("tcp_pos")
        self._obj = layout.slice("object_pos")
        self._opening = layout.slice("gripper_opening")

    def __call__(self, obs: Observation) -> NDArray[np.float32]:
        vec = obs["observation"]
        tcp, block, goal = vec[self._tcp], vec[self._obj], obs["desired_goal"]
        opening = float(vec[self._opening][0])
        rel = block - tcp
        xy_err = float(np.linalg.norm(rel[:2]))
        # Fingers resting on the block's sides: opening near the block's 5 cm width.
        grasped = np.linalg.norm(rel) < 0.02 and 0.03 < opening < 0.06
        if grasped:
            return _action(goal - tcp, GRIPPER_SHUT)
        if xy_err < 0.01 and abs(rel[2]) < 0.01:
            return _action(rel, GRIPPER_SHUT)
        if xy_err < 0.01:
            return _action(rel, GRIPPER_OPEN)
        if tcp[2] < block[2] + 0.05 and xy_err < 0.06:
            # Low beside the block (e.g. after a failed grasp): rise before moving over it.
            return _action(np.array([0.0, 0.0, block[2] + 0.08 - tcp[2]]), GRIPPER_OPEN)
        above = block + np.array([0.0, 0.0, 0.08])
        return _action(above - tcp, GRIPPER_OPEN)


class DrawerController:
    """Drawer task: hook the handle from behind and pull it open, or push it shut from in front.

    Assumes the packaged drawer (``her_arm_drawer.xml``): it opens toward the arm base (-x),
    its handle a bar along y with a gap between bar and drawer face.
    """

    open_direction = np.array([-1.0, 0.0, 0.0])
    """Direction (base_link) the handle moves as the drawer opens."""
    hook_offset_m = 0.021
    """tcp distance behind the bar centre (toward the face) while pulling: the fingers (2.2 cm
    thick) touch the 8 mm bar."""
    push_offset_m = 0.021
    """tcp distance in front of the bar centre while pushing shut: touching it."""
    work_height_m = -0.015
    """tcp height relative to the bar centre while hooking or pushing: the fingertips below it."""
    clear_height_m = 0.07
    """tcp height above the bar centre when moving into position: the fingers clear it."""
    done_m = 0.005
    """Opening error at which the controller holds still."""

    def __init__(self, layout: ObservationLayout) -> None:
        self._tcp = layout.slice("tcp_pos")
        self._handle = layout.slice("handle_pos")
        self._drawer = layout.slice("drawer_pos")

    def __call__(self, obs: Observation) -> NDArray[np.float32]:
        vec = obs["observation"]
        tcp, handle = vec[self._tcp], vec[self._handle]
        error = float(obs["desired_goal"][0] - vec[self._drawer][0])
        if abs(error) < self.done_m:
            return _action(np.zeros(3), GRIPPER_SHUT)
        d = self.open_direction
        # Opening: work from behind the bar (the face side) and move along d; shutting: from in front.
        target = -self.hook_offset_m if error > 0 else self.push_offset_m
        work = handle + target * d + np.array([0.0, 0.0, self.work_height_m])
        rel = tcp - handle
        along = float(rel @ d)
        lateral = float(np.linalg.norm(rel[:2] - along * d[:2]))
        low = tcp[2] < handle[2] + 0.01
        on_side = -0.055 < along < -0.012 if error > 0 else 0.012 < along < 0.06
        if low and on_side and lateral < 0.02:
            # In place: move the handle by the remaining error, slowing down near the goal.
            step = float(np.clip(error, -0.03, 0.03)) * d
            return _action(work - tcp + step, GRIPPER_SHUT)
        if float(np.linalg.norm(tcp[:2] - work[:2])) < 0.012:
            return _action(work - tcp, GRIPPER_SHUT)  # straight down into place
        if tcp[2] < handle[2] + self.clear_height_m - 0.02:
            return _action(np.array([0.0, 0.0, handle[2] + self.clear_height_m - tcp[2]]), GRIPPER_SHUT)
        above = work + np.array([0.0, 0.0, self.clear_height_m - self.work_height_m])
        return _action(above - tcp, GRIPPER_SHUT)


_CONTROLLERS: dict[str, type[ReachController | PushController | PickAndPlaceController | DrawerController]] = {
    "reach": ReachController,
    "push": PushController,
    "pick_and_place": PickAndPlaceController,
    "drawer": DrawerController,
}


def scripted_controller(env_or_task: Any, layout: ObservationLayout | None = None) -> Controller:
    """The scripted controller of a task env (a Gymnasium env, wrapped or not) or of a task name + layout."""
    if isinstance(env_or_task, str):
        task = env_or_task
        if layout is None:
            spec = get_task(task)
            layout = ObservationLayout.build(spec.has_object, with_drawer="drawer" in spec.observation)
    else:
        base = env_or_task.unwrapped
        task = getattr(base, "task_name", "")
        layout = getattr(base, "observation_layout", layout)
    if task not in _CONTROLLERS or layout is None:
        raise ConfigError(
            f"no scripted controller for task {task!r}.{suggest(task, _CONTROLLERS)} "
            f"Tasks: {', '.join(_CONTROLLERS)}."
        )
    return _CONTROLLERS[task](layout)
