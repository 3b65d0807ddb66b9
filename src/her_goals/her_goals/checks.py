"""Declared ranges of settings: one vocabulary for CLI options, YAML keys and node parameters.

A settings dataclass states each field's allowed values in its type::

    actor_lr: PositiveFloat = 1e-3
    eval_episodes: Count = 50
    out: OutputDir | None = None

``her_goals.config.from_mapping`` (which loads YAML, node parameters and the ``her``
command's flags) checks every value against its type *and* its range before anything
runs, and the error names the key, the bad value, the allowed range and the default.
A plain ``float`` field is finite: NaN and inf are refused everywhere unless a field
says otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from her_goals.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """Bounds of a number (each optional); NaN and inf are out of range."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def describe(self) -> str:
        """``> 0``, ``in [0, 1]``, ``>= 1 and < 1000``..."""
        if self.ge is not None and self.le is not None:
            return f"in [{self.ge:g}, {self.le:g}]"
        parts = []
        if self.gt is not None:
            parts.append(f"> {self.gt:g}")
        if self.ge is not None:
            parts.append(f">= {self.ge:g}")
        if self.lt is not None:
            parts.append(f"< {self.lt:g}")
        if self.le is not None:
            parts.append(f"<= {self.le:g}")
        return " and ".join(parts) or "finite"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range, or None."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"must be a number {self.describe()}, not {type(value).__name__}"
        v = float(value)
        if not math.isfinite(v):
            bounds = self.describe()
            return "must be a finite number" + ("" if bounds == "finite" else f" {bounds}")
        if (
            (self.gt is not None and not v > self.gt)
            or (self.ge is not None and not v >= self.ge)
            or (self.lt is not None and not v < self.lt)
            or (self.le is not None and not v <= self.le)
        ):
            return f"must be {self.describe()}"
        return None


@dataclass(frozen=True)
class PathKind:
    """What a path must be: an existing file or directory, or a directory we can create."""

    kind: Literal["file", "dir", "any", "output_dir"]

    def describe(self) -> str:
        return {
            "file": "an existing file",
            "dir": "an existing directory",
            "any": "an existing file or directory",
            "output_dir": "a directory that exists or can be created (not a file)",
        }[self.kind]

    def problem(self, value: Any) -> str | None:
        path = Path(value).expanduser()
        if self.kind == "file" and not path.is_file():
            return "is a directory, not a file" if path.is_dir() else "does not exist"
        if self.kind == "dir" and not path.is_dir():
            return "is a file, not a directory" if path.exists() else "does not exist"
        if self.kind == "any" and not path.exists():
            return "does not exist"
        if self.kind == "output_dir":
            if path.exists() and not path.is_dir():
                return "is a file, not a directory: choose a directory to write into"
            ancestor = path
            while not ancestor.exists():
                ancestor = ancestor.parent
            if not ancestor.is_dir():
                return f"cannot be created: {ancestor} is a file"
            if not os.access(ancestor, os.W_OK | os.X_OK):
                return f"cannot be written: no permission in {ancestor}"
        return None


@dataclass(frozen=True)
class Registered:
    """A name in a registry (a task): one of ``names()``, a typo answered with the closest."""

    what: str
    """What the registry holds, singular ("task")."""
    names: Callable[[], Iterable[str]]
    """The registered names, read when a value is checked (tasks may be registered later)."""

    def describe(self) -> str:
        return f"a registered {self.what}: {', '.join(self.names())}"

    def problem(self, value: Any) -> str | None:
        names = tuple(self.names())
        if value in names:
            return None
        close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.what} {value!r}.{hint} {self.what.capitalize()}s: {', '.join(names)}."


@dataclass(frozen=True)
class Size:
    """How many items a tuple holds: exactly ``n``, or at least ``at_least``; ``hint`` says what
    the items are (it ends the error)."""

    n: int | None = None
    at_least: int | None = None
    hint: str = ""

    def describe(self) -> str:
        count = self.n if self.n is not None else self.at_least
        return ("" if self.n is not None else "at least ") + f"{count} value{'' if count == 1 else 's'}"

    def problem(self, value: Any) -> str | None:
        count = len(value)
        if (self.n is not None and count != self.n) or (self.at_least is not None and count < self.at_least):
            return f"needs {self.describe()}, got {count}" + (f": {self.hint}" if self.hint else "")
        return None


Constraint = Range | PathKind | Registered | Size

FiniteFloat = Annotated[float, Range()]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Fraction = Annotated[float, Range(ge=0, le=1)]
"""A share or probability, in [0, 1]."""
Count = Annotated[int, Range(ge=1)]
"""A number of things, at least one."""
NonNegativeInt = Annotated[int, Range(ge=0)]
MAX_EPISODES = 100_000
"""The most episodes (or goals) one command runs in one go: 5 M steps of a 50-step task, hours
on a CPU; a count beyond it is a typo, and its goals would be allocated up front."""
EpisodeCount = Annotated[int, Range(ge=1, le=MAX_EPISODES)]
"""A number of episodes or goals to run, in [1, MAX_EPISODES]."""
ExistingFile = Annotated[Path, PathKind("file")]
ExistingDir = Annotated[Path, PathKind("dir")]
ExistingPath = Annotated[Path, PathKind("any")]
OutputDir = Annotated[Path, PathKind("output_dir")]


def constraints_of(metadata: tuple[Any, ...]) -> tuple[Constraint, ...]:
    """The constraints among an ``Annotated`` type's metadata."""
    return tuple(m for m in metadata if isinstance(m, Range | PathKind | Registered | Size))


def check_fields(instance: Any, *, where: str | None = None) -> None:
    """Check every field of a settings dataclass against its declared range and finiteness.

    Call it from ``__post_init__``, so a settings object built in code is held to the same
    ranges as one loaded from YAML, flags or node parameters.
    """
    cls = type(instance)
    hints = _hints(cls)
    name = where or cls.__name__
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        for problem in _problems(value, hints.get(f.name, Any)):
            # where="--": the settings of a command line, named as its flags (--task).
            key = "--" + f.name.replace("_", "-") if name == "--" else f"{name}.{f.name}"
            raise ConfigError(f"{key} = {value!r}: {problem}")



_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def _problems(value: Any, annotation: Any) -> list[str]:
    """Range problems of an already-typed value (unions, tuples and mapping values looked into)."""
    if value is None:
        return []
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        out = _problems(value, args[0])
        for c in constraints_of(annotation.__metadata__):
            problem = c.problem(value)
            if problem is not None:
                out.append(problem)
        return out
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        for a in options:
            if _matches(value, a):
                return _problems(value, a)
        return []
    if origin in (tuple, list) and isinstance(value, tuple | list):
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) == len(value):
            return [p for v, a in zip(value, args) for p in _problems(v, a)]
        item = args[0] if args else Any
        return [p for v in value for p in _problems(v, item)]
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return [p for v in value.values() for p in _problems(v, args[1])]
    if annotation is float and isinstance(value, float) and not math.isfinite(value):
        return ["must be a finite number"]
    return []


def _matches(value: Any, annotation: Any) -> bool:
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation
    base_origin = typing.get_origin(base) or base
    return isinstance(base_origin, type) and isinstance(value, base_origin)


def declared_ranges(cls: type) -> dict[str, str]:
    """``{field: "> 0"}`` for the fields of a settings dataclass that declare a range or path kind."""
    out: dict[str, str] = {}
    for name, annotation in _hints(cls).items():
        texts = []
        stack = [annotation]
        while stack:
            a = stack.pop()
            if typing.get_origin(a) is Annotated:
                # Ranges and path kinds (a registered name or a tuple size is said by its error).
                texts += [c.describe() for c in constraints_of(a.__metadata__) if isinstance(c, Range | PathKind)]
                stack.append(typing.get_args(a)[0])
            else:
                stack.extend(x for x in typing.get_args(a) if x is not type(None))
        if texts:
            out[name] = ", ".join(dict.fromkeys(texts))
    return out
