"""Achieved goals from measured state, and strict config loading."""

from dataclasses import dataclass, field

import numpy as np
import pytest

from her_goals import (
    ConfigError,
    EndEffectorPositionExtractor,
    JointAngleExtractor,
    ObjectPositionExtractor,
    RobotState,
    StateError,
    get_goal_space,
)
from her_goals.config import config_hash, from_mapping, load_dataclass

JOINTS = ("shoulder", "elbow")


def planar_fk(q: np.ndarray) -> np.ndarray:
    """Two 0.5 m links in the x-y plane."""
    x = 0.5 * np.cos(q[0]) + 0.5 * np.cos(q[0] + q[1])
    y = 0.5 * np.sin(q[0]) + 0.5 * np.sin(q[0] + q[1])
    return np.array([x, y, 0.0])


def test_end_effector_goal_from_joint_state_in_any_name_order() -> None:
    extractor = EndEffectorPositionExtractor(get_goal_space("ee_position"), JOINTS, planar_fk)
    state = RobotState(joint_names=("elbow", "shoulder"), position=np.array([0.0, np.pi / 2]))
    np.testing.assert_allclose(extractor(state), [0.0, 1.0, 0.0], atol=1e-12)


def test_object_goal_and_missing_object_pose() -> None:
    extractor = ObjectPositionExtractor(get_goal_space("object_position"))
    pose = np.array([0.5, 0.1, 0.02, 1, 0, 0, 0])
    state = RobotState(joint_names=JOINTS, position=np.zeros(2), object_pose=pose)
    np.testing.assert_array_equal(extractor(state), pose[:3])
    with pytest.raises(StateError, match="/object_pose"):
        extractor(RobotState(joint_names=JOINTS, position=np.zeros(2)))


def test_joint_angle_goal() -> None:
    extractor = JointAngleExtractor(get_goal_space("joint_angle"), "elbow")
    state = RobotState(joint_names=JOINTS, position=np.array([0.1, 0.7]))
    np.testing.assert_array_equal(extractor(state), [0.7])


def test_wrong_joint_names_are_named_with_a_suggestion() -> None:
    extractor = EndEffectorPositionExtractor(get_goal_space("ee_position"), JOINTS, planar_fk)
    state = RobotState(joint_names=("shoulder", "elbw"), position=np.zeros(2))
    with pytest.raises(StateError, match=r"no joint\(s\) \['elbow'\].*Did you mean 'elbw'"):
        extractor(state)


def test_nan_joint_state_is_rejected() -> None:
    extractor = EndEffectorPositionExtractor(get_goal_space("ee_position"), JOINTS, planar_fk)
    state = RobotState(joint_names=JOINTS, position=np.array([0.0, np.nan]))
    with pytest.raises(StateError, match=r"NaN/inf for \['elbow'\]"):
        extractor(state)


def test_inconsistent_joint_state_lengths() -> None:
    with pytest.raises(StateError, match="velocity has"):
        RobotState(joint_names=JOINTS, position=np.zeros(2), velocity=np.zeros(3))


@dataclass
class Inner:
    rate_hz: float = 25.0


@dataclass
class Outer:
    name: str
    joints: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)


def test_config_typo_is_rejected_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'jionts'.*Did you mean 'joints'"):
        from_mapping(Outer, {"name": "a", "jionts": ["x"]})
    with pytest.raises(ConfigError, match=r"config.inner: unknown key 'rate'.*'rate_hz'"):
        from_mapping(Outer, {"name": "a", "inner": {"rate": 3}})


def test_config_wrong_type_and_missing_key() -> None:
    with pytest.raises(ConfigError, match=r"inner.rate_hz: expected a number, got str"):
        from_mapping(Outer, {"name": "a", "inner": {"rate_hz": "fast"}})
    with pytest.raises(ConfigError, match=r"missing required key\(s\) \['name'\]"):
        from_mapping(Outer, {})


def test_config_from_yaml_and_hash(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("outer:\n  name: arm\n  joints: [a, b]\n  inner: {rate_hz: 100}\n")
    cfg = load_dataclass(Outer, path, section="outer")
    assert cfg == Outer(name="arm", joints=("a", "b"), inner=Inner(rate_hz=100.0))
    assert config_hash(cfg) == config_hash(Outer(name="arm", joints=("a", "b"), inner=Inner(100.0)))
    assert config_hash(cfg) != config_hash(Outer(name="arm"))
    with pytest.raises(ConfigError, match="no section 'outr'.*Did you mean 'outer'"):
        load_dataclass(Outer, path, section="outr")
