"""Settings dataclasses as command lines: one ``--flag`` (or positional) per field, checked.

Every ``her`` command declares its settings as a dataclass whose fields carry their type,
range (:mod:`her_goals.checks`) and a docstring (the string right after the field, which
becomes ``--help``), in CleanRL's style. :func:`add_settings_arguments` builds the argparse
options from it; :func:`settings_from_args` turns the parsed namespace back into the
dataclass through :func:`her_goals.config.from_mapping`, so a flag gets exactly the checks a
YAML key or a node parameter gets, before any work starts, and an error names the flag.

A field is positional with ``field(default=..., metadata={"positional": True})``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from her_goals.checks import declared_ranges
from her_goals.config import from_mapping

T = TypeVar("T")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Docstrings of a dataclass's fields: the string literal right after each annotation."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef)).body
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of an annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), True
    return annotation, False


def _none_or(convert: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def is_positional(field: dataclasses.Field[Any]) -> bool:
    return bool(field.metadata.get("positional"))


def add_settings_arguments(
    parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()
) -> None:
    """One option per field of ``cls``, typed, with the field docstring and range as help.

    Options default to SUPPRESS, so :func:`given_settings` sees only what was typed and
    the dataclass defaults (one place) fill in the rest.
    """
    hints = typing.get_type_hints(cls)
    ranges = declared_ranges(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        base, optional = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        allowed = f"; {ranges[f.name]}" if f.name in ranges else ""
        shown = "" if is_positional(f) and default is None else f" (default: {default}{allowed})"
        if is_positional(f) and allowed and not shown:
            shown = f" ({ranges[f.name]})"
        help_text = f"{docs.get(f.name, '')}{shown}".replace("%", "%%")
        kwargs: dict[str, Any] = {"help": help_text, "default": argparse.SUPPRESS}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is Literal:
            kwargs["choices"] = list(typing.get_args(base))
        elif typing.get_origin(base) is tuple:
            item = typing.get_args(base)[0]
            item_base = _base_type(item)[0]
            # Paths stay text until from_mapping checks them, so errors quote what was typed.
            convert = str if item_base is Path else item_base
            kwargs.update(nargs="+", type=convert, metavar=item_base.__name__.upper())
        elif base in (int, float, str, Path):
            convert = str if base is Path else base
            kwargs["type"] = _none_or(convert) if optional else convert
            kwargs["metavar"] = base.__name__.upper()
        if is_positional(f):
            kwargs["metavar"] = f.name.upper()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                kwargs.pop("default")
            elif "nargs" not in kwargs:
                kwargs["nargs"] = "?"
            parser.add_argument(f.name, **kwargs)
        else:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                kwargs["required"] = True
            parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kwargs)


def given_settings(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line, as a plain mapping."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in vars(namespace).items():
        if key in names:
            out[key] = str(value) if isinstance(value, Path) else value
    return out


def settings_from_args(cls: type[T], namespace: argparse.Namespace) -> T:
    """The settings the command line gave, typed and range-checked (errors name the flag)."""
    return from_mapping(cls, given_settings(namespace, cls), where="--")
