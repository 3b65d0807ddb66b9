"""Node parameters: declared from the config dataclasses, read back strictly."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from her_goals.errors import ConfigError
from her_goals.goals_core import GoalsConfig
from her_goals.rosglue.params import config_from_parameters, declare_config, parameter_specs
from her_mujoco.bridge_core import BridgeConfig
from her_policy.deploy.policy_core import PolicyConfig
from her_recorder.recorder_core import RecorderConfig

CONFIGS = (GoalsConfig, PolicyConfig, RecorderConfig, BridgeConfig)


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_parameter_has_a_ros_default_and_a_description(cls: type):
    specs = parameter_specs(cls)
    assert specs
    for name, (default, text) in specs.items():
        assert isinstance(default, bool | int | float | str | list), name
        assert text, f"{cls.__name__}.{name} has no description"
    # The defaults read back give the default config.
    assert config_from_parameters(cls, {k: v for k, (v, _) in specs.items()}, where="t") == cls()


def test_units_are_in_the_names():
    unitless = {"real_time_factor", "noise_std"}  # a ratio; policy action units (documented)
    for cls in CONFIGS:
        for name in parameter_specs(cls):
            if any(w in name for w in ("rate", "timeout", "latency", "delay", "noise", "tolerance")):
                assert name.endswith(("_hz", "_s", "_rad", "_m", "_eps")) or name in unitless, name


def test_wrong_type_is_a_config_error_naming_the_parameter():
    with pytest.raises(ConfigError, match=r"goals_node\.achieved_rate_hz: expected a number, got str"):
        config_from_parameters(GoalsConfig, {"achieved_rate_hz": "fast"}, where="goals_node")
    with pytest.raises(ConfigError, match=r"command_interface: 'velocity' is not one of"):
        config_from_parameters(PolicyConfig, {"command_interface": "velocity"}, where="policy_node")
    with pytest.raises(ConfigError, match="unknown key 'rate_hz'.*Did you mean 'rate_hz'|unknown key 'rat_hz'"):
        config_from_parameters(BridgeConfig, {"rat_hz": 10.0}, where="bridge_node")


def test_wrong_units_are_caught_by_range_checks():
    # 0.01 "Hz" for a 100 Hz bridge is a period typed into a rate.
    with pytest.raises(ConfigError, match=r"bridge_node.rate_hz = 0.01: must be in \[1, 1000\]"):
        config_from_parameters(BridgeConfig, {"rate_hz": 0.01}, where="bridge_node")
    with pytest.raises(ConfigError, match=r"policy_node.random_eps = 30.0: must be in \[0, 1\]"):
        config_from_parameters(PolicyConfig, {"random_eps": 30.0}, where="policy_node")


def test_integers_are_accepted_for_floats_and_lists_for_tuples():
    cfg = config_from_parameters(GoalsConfig, {"achieved_rate_hz": 10, "goal_region_low_m": [0.4, 0, 0.1],
                                               "goal_region_high_m": [0.5, 0.1, 0.2]}, where="g")
    assert cfg.achieved_rate_hz == 10.0 and cfg.goal_region_low_m == (0.4, 0.0, 0.1)


class FakeNode:
    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides
        self.declared: dict[str, Any] = {}

    def declare_parameter(self, name: str, default: Any, descriptor: Any) -> Any:
        assert descriptor.dynamic_typing is True  # so rclpy never raises on a wrong type
        self.declared[name] = descriptor.description
        return SimpleNamespace(value=self.overrides.get(name, default))


def test_declare_config_declares_every_field_dynamically_typed():
    node = FakeNode({"tolerance_m": 0.02})
    types = {"rcl_interfaces/msg/ParameterDescriptor": SimpleNamespace}
    values = declare_config(node, GoalsConfig, types)
    assert set(node.declared) == set(parameter_specs(GoalsConfig))
    assert config_from_parameters(GoalsConfig, values, where="g").tolerance_m == 0.02


@pytest.mark.parametrize(
    ("cls", "node"),
    [(GoalsConfig, "goals_node"), (PolicyConfig, "policy_node"), (RecorderConfig, "recorder_node"),
     (BridgeConfig, "bridge_node")],
)
def test_every_declared_node_range_is_in_its_description_and_refused_outside(cls: type, node: str):
    from her_goals.checks import declared_ranges

    ranges = declared_ranges(cls)
    assert ranges, f"{node} declares no parameter range"
    specs = parameter_specs(cls)
    for name, text in ranges.items():
        assert specs[name][1].endswith(f"[{text}]"), (name, specs[name][1])  # ros2 param describe shows it
        bad = -1 if isinstance(specs[name][0], int) else -1.0
        with pytest.raises(ConfigError, match=rf"{node}\.{name} = -1(\.0)?: must be"):
            config_from_parameters(cls, {name: bad}, where=node)
