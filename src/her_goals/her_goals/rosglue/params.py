"""ROS parameters <-> strict config dataclasses, without rclpy.

A node declares one parameter per field of its config dataclass (default and
description from :func:`parameter_specs`), reads them once, and builds the
config with :func:`config_from_parameters`, which is :func:`her_goals.config.
from_mapping`: a wrong type, a typo'd enum value or an out-of-range number is a
:class:`ConfigError` with a message naming the parameter, which the node logs and
publishes on ``/diagnostics`` while it holds the arm, instead of crashing.

Nodes declare every parameter with ``dynamic_typing=True``: rclpy would otherwise
raise at declaration when a launch file or YAML passes ``rate_hz: 25`` (an
integer) or a string, before our checks could say anything useful.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from her_goals.checks import declared_ranges
from her_goals.config import from_mapping

T = TypeVar("T")


def doc(default: Any, text: str) -> Any:
    """A dataclass field with a default and a one-line description (the parameter's)."""
    if isinstance(default, list | dict):
        raise TypeError("use a tuple for sequence defaults")
    return dataclasses.field(default=default, metadata={"doc": text})


def _optional(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


def _ros_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_ros_value(v) for v in value]
    return value


def parameter_specs(cls: type[Any]) -> dict[str, tuple[Any, str]]:
    """``{name: (ROS default, description)}`` of a config dataclass's fields.

    None and paths become strings (``""`` = None), tuples become lists; a declared range
    (``her_goals.checks``) ends the description (``ros2 param describe`` shows it).
    """
    ranges = declared_ranges(cls)
    out: dict[str, tuple[Any, str]] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default to be a ROS parameter")
        text = str(f.metadata.get("doc", ""))
        out[f.name] = (_ros_value(default), f"{text} [{ranges[f.name]}]" if f.name in ranges else text)
    return out


def config_from_parameters(cls: type[T], values: Mapping[str, Any], *, where: str) -> T:
    """Build ``cls`` strictly from ROS parameter values (``""`` is None for optional fields)."""
    hints = typing.get_type_hints(cls)
    data: dict[str, Any] = {}
    for name, value in values.items():
        if value == "" and name in hints and _optional(hints[name]):
            value = None
        elif isinstance(value, list | tuple):
            value = list(value)
        data[name] = value
    return from_mapping(cls, data, where=where)


def declare_config(node: Any, cls: type[Any], types: Any) -> dict[str, Any]:
    """Declare one parameter per field of ``cls`` on ``node``; returns ``{name: value}``.

    ``node`` is an ``rclpy.node.Node`` (duck-typed: only ``declare_parameter`` is
    used), ``types`` a :class:`her_goals.rosglue.msgconv.MessageTypes` for the descriptor.
    Every parameter is dynamically typed so that a wrong type reaches
    :func:`config_from_parameters` and is reported there, not raised by rclpy.
    """
    descriptor = types["rcl_interfaces/msg/ParameterDescriptor"]
    values: dict[str, Any] = {}
    for name, (default, text) in parameter_specs(cls).items():
        param = node.declare_parameter(
            name, default, descriptor(description=text, dynamic_typing=True)
        )
        values[name] = param.value
    return values


def current_values(node: Any, cls: type[Any]) -> dict[str, Any]:
    """``{name: value}`` of the parameters :func:`declare_config` declared, as they are now
    (a managed node reads them at configure, so ``ros2 param set`` then reconfigure applies)."""
    return {name: node.get_parameter(name).value for name in parameter_specs(cls)}
