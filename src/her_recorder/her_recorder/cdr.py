"""Precompiled CDR encoders and decoders for the messages the recorder writes every step.

rosbags' ``Typestore.serialize_cdr`` walks a message object field by field, computing its
size first and packing every primitive with its own call; before it, the recorder built
the message objects themselves (a ``Header``, a ``Time``, the ``Step``). For our messages
the shape only changes with a few lengths (observation, action and goal sizes, the frame,
the policy name, the safety reasons), so an encoder here compiles, once per set of lengths,
one :class:`struct.Struct` with every field and every alignment pad in place, and packs a
message with a single call from plain values.

The layout rules are rosbags' own (``rosbags.serde.cdr.generate_serialize_cdr``), so the
bytes are identical to ``serialize_cdr`` of the same message, little endian:
tests/her_recorder/test_cdr.py compares them on random messages (empty and non-ASCII
strings, empty arrays, every length up to a few dozen) and reads bags written through
these encoders back with rosbags' own reader. In particular, rosbags decides statically
(at code generation) whether a field is preceded by a pad, from the alignment the
previous field guarantees, and pads an ``float64[]``'s data to 8 only when it is not empty.

:class:`Decoder` goes the other way for the reader (rosbags' ``deserialize_cdr`` values).

Per Step message of the push task (obs 25, action 4, goal 3), ``bench/bench_bags.py`` prints
the encode and decode times beside ``serialize_cdr``'s and ``deserialize_cdr``'s of the same
message, measured in the same run.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype

_CDR_LE = b"\x00\x01\x00\x00"
"""The encapsulation header rosbags writes: CDR, little endian."""

# Field kinds of a flattened message, with their size and alignment.
_SCALAR = {"i32": ("i", 4), "u32": ("I", 4), "f32": ("f", 4), "u8": ("B", 1),
           "bool": ("?", 1), "f64": ("d", 8), "i64": ("q", 8)}  # fmt: skip
# Flattened field kinds (nested messages inlined: the alignment rules give the same bytes).
HEADER = ("i32", "u32", "str")
"""``std_msgs/Header``: ``stamp.sec``, ``stamp.nanosec``, ``frame_id``."""
STEP = (*HEADER, "u32", "u32", "f64[]", "f64[]", "f64[]", "f64[]", "f64[]", "f64[]", "f64[]",
        "f32", "bool", "bool", "bool", "u32", "f32", "str[]", "str")  # fmt: skip
"""``her_interfaces/Step``, field by field (Step.msg)."""
STEP_REWARD, STEP_IS_SUCCESS = 12, 15
"""Indices in :data:`STEP` of ``reward`` (float32) and ``is_success`` (bool)."""
GOAL = (*HEADER, "str", "f64[]", "f64", "u32")
"""``her_interfaces/Goal``."""
EVENT = (*HEADER, "u8", "u32", "str", "str", "f64[]", "u32", "bool", "str", "str", "i64")
"""``her_interfaces/EpisodeEvent``."""
JOINT_STATE = (*HEADER, "str[]", "f64[]", "f64[]", "f64[]")
"""``sensor_msgs/JointState``."""
POSE_STAMPED = (*HEADER, "f64", "f64", "f64", "f64", "f64", "f64", "f64")
"""``geometry_msgs/PoseStamped``: position x, y, z, orientation x, y, z, w."""


def _align_of(kind: str) -> int:
    return _SCALAR[kind][1] if kind in _SCALAR else 4


def compile_layout(kinds: Sequence[str], lengths: Sequence[int | tuple[int, ...]]) -> struct.Struct:
    """One ``Struct`` for a message of field ``kinds`` with the given variable lengths.

    See :func:`compile_layout_offsets`, which also gives where each field starts."""
    return compile_layout_offsets(kinds, lengths)[0]


def compile_layout_offsets(
    kinds: Sequence[str], lengths: Sequence[int | tuple[int, ...]]
) -> tuple[struct.Struct, tuple[int, ...]]:
    """One ``Struct`` for a message of field ``kinds`` with the given variable lengths, and
    the byte offset of each field in the message (the 4-byte encapsulation header included,
    after any pad before the field).

    ``lengths`` has one entry per ``str`` (its UTF-8 byte count), ``f64[]`` (its item
    count) and ``str[]`` (the byte counts of its items), in field order. The struct's
    arguments are the field values in order: a string as its length + 1 and its bytes, an
    array as its count and its items, a string array as its count and each item's
    length + 1 and bytes.
    """
    fmt = ["<"]
    pos = 0
    offsets: list[int] = []
    aligned = 8  # rosbags: no pad before the first field
    it = iter(lengths)

    def pad(to: int) -> None:
        nonlocal pos
        gap = -pos % to
        if gap:
            fmt.append(f"{gap}x")
            pos += gap

    def string(n: int) -> None:
        nonlocal pos
        fmt.append(f"I{n}sx")
        pos += 4 + n + 1

    for kind in kinds:
        if aligned < _align_of(kind):
            pad(_align_of(kind))
        offsets.append(len(_CDR_LE) + pos)
        if kind in _SCALAR:
            code, size = _SCALAR[kind]
            fmt.append(code)
            pos += size
            aligned = size
        elif kind == "str":
            n = next(it)
            assert isinstance(n, int)
            string(n)
            aligned = 1
        elif kind == "f64[]":
            n = next(it)
            assert isinstance(n, int)
            fmt.append("I")
            pos += 4
            if n:
                pad(8)
            fmt.append(f"{8 * n}s")  # "0s" takes the empty bytes of an empty array
            pos += 8 * n
            aligned = 4  # rosbags: min(4, 8) after a sequence
        elif kind == "str[]":
            items = next(it)
            assert isinstance(items, tuple)
            fmt.append("I")
            pos += 4
            for n in items:
                pad(4)
                string(n)
            aligned = 1
        else:
            raise ValueError(f"unknown CDR field kind {kind!r}")
    return struct.Struct("".join(fmt)), tuple(offsets)


def _strings(encoded: list[bytes]) -> list[Any]:
    """The struct arguments of a ``str[]``'s items: each one's length + 1 and bytes."""
    return [x for b in encoded for x in (len(b) + 1, b)]


class Encoder:
    """CDR bytes of one message type from its flattened field values; layouts cached.

    ``encode(*values)`` takes the values of :attr:`kinds` in order: ints, floats and bools
    for scalars, ``str`` for strings, a float64 numpy array (or a sequence of floats) for
    ``f64[]``, a sequence of ``str`` for ``str[]``.

    ``encode`` is generated once per message type as straight-line code (no loop over the
    fields, no branch per kind), as rosbags generates its own serialisers: measured on the
    push task's Step (obs 25, action 4, goal 3), one run on the loaded 2-core machine,
    2.9 us per message against 4.6 us for the loop over the fields it replaced.
    """

    max_layouts = 256
    """Compiled layouts kept; past it the cache starts over (lengths that never repeat)."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = tuple(kinds)
        self._layouts: dict[tuple[Any, ...], tuple[struct.Struct, tuple[int, ...]]] = {}
        self.last_offsets: tuple[int, ...] = ()
        """Byte offset of each field in the message :meth:`encode` returned last."""
        self.encode: Callable[..., bytes] = self._generate()

    def _layout(self, key: tuple[Any, ...]) -> tuple[struct.Struct, tuple[int, ...]]:
        if len(self._layouts) >= self.max_layouts:
            self._layouts.clear()
        compiled = self._layouts[key] = compile_layout_offsets(self.kinds, key)
        return compiled

    def _generate(self) -> Any:
        params, prep, key, args = [], [], [], []
        for i, kind in enumerate(self.kinds):
            v = f"v{i}"
            params.append(v)
            if kind == "str":
                prep.append(f"    b{i} = {v}.encode()")
                key.append(f"len(b{i})")
                args += [f"len(b{i}) + 1", f"b{i}"]
            elif kind == "f64[]":
                prep.append(f"    a{i} = asarray({v}, dtype='<f8')")
                key.append(f"a{i}.size")
                args += [f"a{i}.size", f"a{i}.tobytes()"]
            elif kind == "str[]":  # the last one's encoding kept: joint names repeat
                prep += [
                    f"    m = memo[{i}]",
                    f"    if {v} != m[0]:",
                    f"        e = [s.encode() for s in {v}]",
                    f"        m = memo[{i}] = (list({v}), tuple(map(len, e)), strings(e))",
                    f"    k{i}, s{i} = m[1], m[2]",
                ]
                key.append(f"k{i}")
                args += [f"len(k{i})", f"*s{i}"]
            elif kind in _SCALAR:
                args.append(v)
            else:
                raise ValueError(f"unknown CDR field kind {kind!r}")
        source = "\n".join(
            [
                f"def encode({', '.join(params)}):",
                *prep,
                f"    k = ({''.join(k + ', ' for k in key)})",
                "    compiled = layouts.get(k) or make(k)",
                "    enc.last_offsets = compiled[1]",
                f"    return HEAD + compiled[0].pack({', '.join(args)})",
            ]
        )
        scope: dict[str, Any] = {
            "asarray": np.asarray, "strings": _strings, "layouts": self._layouts,
            "make": self._layout, "enc": self, "HEAD": _CDR_LE,
            "memo": {i: (None, (), []) for i, k in enumerate(self.kinds) if k == "str[]"},
        }  # fmt: skip
        exec(compile(source, f"<cdr encoder {'/'.join(self.kinds)}>", "exec"), scope)
        return scope["encode"]


def split_stamp(stamp_ns: int) -> tuple[int, int]:
    """``builtin_interfaces/Time`` (sec, nanosec) of integer nanoseconds >= 0."""
    return divmod(int(stamp_ns), 1_000_000_000)


# -- decoding ------------------------------------------------------------------------------

_BASE_KINDS = {"int32": "i32", "uint32": "u32", "float32": "f32", "uint8": "u8", "bool": "bool",
               "float64": "f64", "int64": "i64", "string": "str"}  # fmt: skip


_LEAF = re.compile(r"@(\d+)@")


def _renumber(expr: str, offset: int) -> str:
    """``expr`` with every ``@i@`` placeholder moved to ``@offset + i@``."""
    return _LEAF.sub(lambda m: f"@{offset + int(m.group(1))}@", expr)


def _flatten(store: Any, msgtype: str, path: str) -> tuple[list[str], list[str], str]:
    """Kinds and attribute paths of ``msgtype``'s leaves, and a constructor expression over
    ``@i@`` placeholders (one per leaf) and ``C[...]`` classes, from the typestore."""
    kinds: list[str] = []
    paths: list[str] = []
    parts: list[str] = []
    for name, (node, args) in store.fielddefs[msgtype][1]:
        if node == Nodetype.NAME:
            k, p, expr = _flatten(store, args, f"{path}.{name}")
            offset = len(kinds)
            kinds += k
            paths += p
            parts.append(f"{name}=" + _renumber(expr, offset))
            continue
        if node == Nodetype.BASE and args[0] in _BASE_KINDS:
            kind = _BASE_KINDS[args[0]]
        elif node == Nodetype.SEQUENCE and args[0][0] == Nodetype.BASE and args[0][1][0] in (
            "float64", "string"
        ):
            kind = "f64[]" if args[0][1][0] == "float64" else "str[]"
        else:
            raise ValueError(f"{msgtype}.{name}: no precompiled CDR layout for {node.name} {args}")
        parts.append(f"{name}=@{len(kinds)}@")
        kinds.append(kind)
        paths.append(f"{path}.{name}")
    return kinds, paths, f"C[{msgtype!r}](" + ", ".join(parts) + ")"


class Decoder:
    """Messages of one type from their CDR bytes (little endian), one ``unpack_from`` each.

    The layouts are learnt: a message whose lengths (strings, arrays) match the last layout
    is unpacked with its precompiled struct, its arrays as read-only float64 views of the
    bytes (as rosbags gives them); any other is decoded by rosbags' ``deserialize_cdr``
    (which also raises for a malformed message), and its layout compiled for the next.
    A fast-path message is accepted only when every length field it carries is the layout's,
    every string has its terminator and its size is the layout's (up to 3 trailing pad
    bytes, as rosbags allows);
    tests/her_recorder/test_cdr.py compares the decoded values with ``deserialize_cdr``'s on
    random messages. Measured per Step: ``bench/bench_bags.py`` prints it beside
    ``deserialize_cdr``'s, in the same run.
    """

    max_layouts = 64
    """Decoders kept per type; past it the cache starts over."""

    def __init__(self, store: Any, msgtype: str) -> None:
        self.store = store
        self.msgtype = msgtype
        kinds, paths, expr = _flatten(store, msgtype, "m")
        self.kinds = tuple(kinds)
        self._build = expr
        self._classes = {
            t: store.types[t] for t in set(re.findall(r"C\['([^']+)'\]", expr))
        }
        self._key = eval(
            "lambda m: (" + "".join(
                f"len({p}.encode()), " if k == "str" else f"len({p}), " if k == "f64[]"
                else f"tuple(len(s.encode()) for s in {p}), " if k == "str[]" else ""
                for k, p in zip(kinds, paths, strict=True)
            ) + ")"
        )  # fmt: skip
        self._decoders: dict[tuple[Any, ...], Callable[[bytes], Any]] = {}
        self._last: Callable[[bytes], Any] | None = None

    def decode(self, data: bytes) -> Any:
        """The message of ``data``; raises rosbags' ``SerdeError`` for a malformed one."""
        last = self._last
        if last is not None:
            try:
                msg = last(data)
            except UnicodeDecodeError:  # rosbags' decode below says it as its SerdeError
                msg = None
            if msg is not None:
                return msg
        msg = self.store.deserialize_cdr(data, self.msgtype)
        key = self._key(msg)
        fn = self._decoders.get(key)
        if fn is None:
            if len(self._decoders) >= self.max_layouts:
                self._decoders.clear()
            fn = self._decoders[key] = self._compile(key)
        self._last = fn
        return msg

    def _compile(self, key: tuple[Any, ...]) -> Callable[[bytes], Any]:
        _, offsets = compile_layout_offsets(self.kinds, key)
        fmt = ["<"]
        pos = len(_CDR_LE)
        n_values = 0
        checks: list[tuple[int, int | bytes]] = []  # (tuple index, expected length or byte)
        leaves: list[str] = []
        lengths = iter(key)

        def take(code: str, size: int, at: int) -> int:
            nonlocal pos, n_values
            if at > pos:
                fmt.append(f"{at - pos}x")
            fmt.append(code)
            pos = at + size
            n_values += 1
            return n_values - 1

        def string(at: int, n: int) -> str:
            checks.append((take("I", 4, at), n + 1))
            value = take(f"{n}s", n, at + 4)
            checks.append((take("c", 1, at + 4 + n), b"\x00"))  # the terminator, as rosbags checks
            return f"v[{value}].decode()"

        for kind, at in zip(self.kinds, offsets, strict=True):
            if kind in _SCALAR:
                code, size = _SCALAR[kind]
                leaves.append(f"v[{take(code, size, at)}]")
            elif kind == "str":
                leaves.append(string(at, next(lengths)))
            elif kind == "f64[]":
                n = next(lengths)
                checks.append((take("I", 4, at), n))
                data_at = at + 4
                if n:
                    data_at += -(data_at - len(_CDR_LE)) % 8
                leaves.append(f"frombuffer(d, F8, {n}, {data_at})")
                if n:
                    fmt.append(f"{data_at - pos + 8 * n}x")
                    pos = data_at + 8 * n
            else:  # str[]
                items = next(lengths)
                checks.append((take("I", 4, at), len(items)))
                names = []
                for n in items:
                    at_item = pos + (-(pos - len(_CDR_LE)) % 4)
                    names.append(string(at_item, n))
                leaves.append("[" + ", ".join(names) + "]")
        size = pos
        source = "\n".join(
            [
                "def decode(d):",
                f"    if not {size} <= len(d) <= {size + 3}:",
                "        return None",
                f"    v = S.unpack_from(d, {len(_CDR_LE)})",
                f"    if ({''.join(f'v[{i}], ' for i, _ in checks)}) != "
                f"({''.join(f'{n!r}, ' for _, n in checks)}):",
                "        return None",
                "    return " + _LEAF.sub(lambda m: leaves[int(m.group(1))], self._build),
            ]
        )
        scope: dict[str, Any] = {
            "S": struct.Struct("".join(fmt)), "frombuffer": np.frombuffer,
            "F8": np.dtype("<f8"), "C": self._classes,
        }  # fmt: skip
        exec(compile(source, f"<cdr decoder {self.msgtype}>", "exec"), scope)
        fn: Callable[[bytes], Any] = scope["decode"]
        return fn
