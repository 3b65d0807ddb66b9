"""Every registered task is complete: an env class, a preset, a scripted controller, a demo, a rig
(ARCHITECTURE.md, "Where to add: a task" lists where each lives)."""

from __future__ import annotations

import pytest

import her_mujoco
from her_goals.robot.rig import TaskRig
from her_goals.tasks import TASKS, task_names
from her_policy.app.demo import DemoSettings
from her_policy.deploy.scripted import scripted_controller
from her_policy.learn.config import build_train_config
from her_policy.learn.presets import PRESETS


@pytest.mark.parametrize("name", task_names())
def test_every_registered_task_has_its_pieces(name: str):
    spec = TASKS[name]
    # The simulated env class, registered under the task's Gymnasium id.
    assert name in her_mujoco.ENV_CLASSES and her_mujoco.ENV_CLASSES[name].spec_name == name
    assert spec.env_id
    # Its training preset, which her train --task and her demo both start from.
    assert spec.preset in PRESETS
    config = build_train_config({"task": name, "progress": False})
    for key, value in PRESETS[spec.preset].items():
        assert getattr(config, key) == (tuple(value) if isinstance(value, list) else value), key
    # A scripted controller for the task's observation layout.
    rig = TaskRig.build(name)
    assert scripted_controller(name, rig.observation_layout) is not None
    # A demo: her demo accepts every registered task.
    assert DemoSettings(task=name).task == name


def test_an_unknown_task_is_refused_naming_the_closest_one():
    with pytest.raises(Exception, match=r"--task = 'rech': unknown task 'rech'\. Did you mean 'reach'\?"):
        DemoSettings(task="rech")
