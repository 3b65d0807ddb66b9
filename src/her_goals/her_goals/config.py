"""Strict loading of typed configuration dataclasses from YAML or mappings.

A typo in a config key is the most common way to run an experiment that is not
the one you meant; every loader here rejects unknown keys and suggests the
closest valid one. Values are checked against their declared type and range
(:mod:`her_goals.checks`); a float is finite unless its field says otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from her_goals.checks import constraints_of
from her_goals.errors import ConfigError

T = TypeVar("T")


def suggest(name: str, valid: typing.Iterable[str]) -> str:
    """Return ' Did you mean X?' for the closest valid name, or ''."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is typing.Annotated:
        coerced = _coerce(value, args[0], where)
        if coerced is not None:
            for constraint in constraints_of(annotation.__metadata__):
                problem = constraint.problem(coerced)
                if problem is not None:
                    raise ConfigError(f"{where} = {value!r}: {problem}")
        return coerced
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        return from_mapping(annotation, value, where=where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{where}: {value!r} is not one of {list(args)}.{suggest(str(value), map(str, args))}"
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        if len(args) == 2 and typing.get_origin(args[1]) is typing.Annotated:
            # Values that declare a range (dict[str, Fraction]) are checked like any field.
            return {k: _coerce(v, args[1], f"{where}[{k!r}]") for k, v in value.items()}
        return dict(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r}: must be a finite number")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if annotation is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{where}: expected a path, got {type(value).__name__} {value!r}")
        return Path(value)
    return value


def label(where: str, name: str) -> str:
    """How an error names key ``name`` of ``where``: ``--name-like-this`` for the command
    line (``where == "--"``), ``file.yaml: key name`` for a file, ``where.name`` otherwise."""
    if where == "--":
        return "--" + name.replace("_", "-")
    if where.endswith((".yaml", ".yml", ".json")):
        return f"{where}: {name}"
    return f"{where}.{name}"


def check_value(cls: type, name: str, value: Any, where: str) -> Any:
    """Field ``name`` of settings class ``cls`` from ``value``: typed and range-checked.

    An error names the key as given (``label(where, name)``), the value, what is allowed
    and the field's default.
    """
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    annotation = typing.get_type_hints(cls, include_extras=True)[name]
    named = name.upper() if where == "--" and field.metadata.get("positional") else label(where, name)
    try:
        return _coerce(value, annotation, named)
    except ConfigError as exc:
        default = field.default if field.default is not dataclasses.MISSING else None
        hint = f"; the default is {to_plain(default)!r}" if default is not None else ""
        raise ConfigError(f"{exc}{hint}") from None


def from_mapping(cls: type[T], data: Mapping[str, Any], *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys, wrong types and values
    out of their declared range (``where="--"`` names keys as command-line flags)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key {key!r}.{suggest(str(key), fields)} "
                f"Valid keys: {', '.join(sorted(fields))}."
            )
    kwargs = {name: check_value(cls, name, data[name], where) for name in fields if name in data}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # A check of the class itself (__post_init__): say which file or flag gave the values.
        message = str(exc)
        if message.startswith(where) or where == "--":
            raise
        section = where.rsplit(": ", 1)[-1].rsplit(".", 1)[-1]
        message = message.removeprefix(f"{section}: ")
        raise ConfigError(f"{where}: {message}") from None
    except TypeError as exc:
        missing = [
            n
            for n, f in fields.items()
            if n not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        raise ConfigError(f"{where}: missing required key(s) {missing}") from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text (YAML) file; give a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    return data


def load_dataclass(cls: type[T], path: str | Path, *, section: str | None = None) -> T:
    """Load dataclass ``cls`` from a YAML file (optionally one top-level section)."""
    data = load_yaml(path)
    if section is not None:
        if section not in data:
            raise ConfigError(
                f"config file {path}: no section {section!r}.{suggest(section, data)}"
            )
        data = data[section]
    return from_mapping(cls, data, where=f"{path}" + (f":{section}" if section else ""))


def to_plain(obj: Any) -> Any:
    """Convert dataclasses, paths, tuples and numpy values to YAML/JSON-safe values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


def config_hash(obj: Any) -> str:
    """A short, stable hash of a config (dataclass or mapping), for provenance."""
    text = json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
