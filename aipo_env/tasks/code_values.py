"""The trusted side of the value encoding that crosses the sandbox's boundary.

The encoding is described in :mod:`aipo_env.tasks.code_harness` (tagged trees of exact builtin
types). A reply line from the sandbox is JSON, parsed with :func:`json.loads`, which builds
builtin data only, runs no code and costs a few dozen bytes a node (``ast.literal_eval`` of a
2 MiB reply of small nodes took a GiB). The tree is then checked node by node: a wrong tag, a
wrong type, too many nodes or too deep a tree is a :class:`BadReply`. So a candidate can never
hand the judge an object of its own: no ``__eq__`` that is always true, no ``int`` subclass, no
truthy stand-in. Anything that is not plain data stays in the sandbox as a :class:`Handle`.

**Bounded work.** Whatever the program sends, what the judge builds from it, and what the
trusted test code can then do with it in linear time, is bounded:

* at most ``MAX_NODES`` nodes (a range counts its length) nested at most ``MAX_DEPTH`` deep;
* integers of at most ``MAX_INT_BITS`` bits (``str()`` of a longer one raises, and arithmetic
  on it is slow);
* no lazy object: a range crosses with at most ``MAX_ITEMS`` items, an iterator as the list of
  what it yielded;
* at most ``MAX_SAME_HASH`` distinct values share one hash in a reply. Values whose hashes all
  collide make every set or dict built from them (here, or by a test) quadratic: 10^5 of them
  hold a CPU for minutes. Honest data has almost no full-hash collisions (``hash(-1) ==
  hash(-2)`` is the classic one).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from typing import Any

MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 48
MAX_ITEMS = 100_000
MAX_INT_BITS = 1 << 17
MAX_SAME_HASH = 16
#: hex digits of the longest integer allowed, with its sign and ``0x``
_MAX_HEX_CHARS = MAX_INT_BITS // 4 + 3
_CONTAINERS: dict[str, type] = {"l": list, "t": tuple, "set": set, "fs": frozenset}
_KINDS = {list: "l", tuple: "t", set: "set", frozenset: "fs"}
#: decoded values that cannot be hashed (or whose hash is their identity), never checked
_UNHASHED = (list, set, dict, collections.deque)


class BadReply(ValueError):
    """The sandbox sent something that is not a well-formed reply."""


class Handle:
    """An object that lives in the sandbox (a class instance, a function), known by number, or a
    name of the program's namespace (what the judge's tests call), known by that name.

    It equals only itself, so it can never pass as an expected value, and it has no truth
    value (``assert f(x)`` with an object for ``f(x)`` is an error, not a pass). Calling it, or
    one of its attributes, is a call into the sandbox through ``remote``.
    """

    __slots__ = ("_number", "_remote")

    def __init__(self, number: int | str, remote: Any) -> None:
        object.__setattr__(self, "_number", number)
        object.__setattr__(self, "_remote", remote)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._remote.call(self._number, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._remote.getattr(self._number, name)

    def __bool__(self) -> bool:
        raise TypeError("the program returned an object where a value was tested")

    def __repr__(self) -> str:
        if isinstance(self._number, str):
            return f"<{self._number} of the program>"
        return f"<object #{self._number} of the program>"


class ProgramIterator:
    """What the program's iterator yielded, to iterate once; like a handle, it has no truth value
    (a generator is truthy in Python, which would let ``return iter([])`` pass ``assert f(x)``)."""

    def __init__(self, items: list[Any]) -> None:
        self._items = iter(items)

    def __iter__(self) -> ProgramIterator:
        return self

    def __next__(self) -> Any:
        return next(self._items)

    def __bool__(self) -> bool:
        raise TypeError("the program returned an iterator where a value was tested")

    def __repr__(self) -> str:
        return "<iterator of the program>"


def encode(value: Any, depth: int = 0) -> tuple:
    """``value`` (an argument built by a test) as a tree; handles go back as their number.

    Raises:
        TypeError: a value that is neither plain data nor a handle (a lambda of the test).
    """
    if depth > MAX_DEPTH:
        raise TypeError("an argument is nested too deeply to send to the program")
    kind = type(value)
    if value is None:
        return ("n",)
    if kind is bool:
        return ("b", value)
    if kind is int:
        return ("i", hex(value))
    if kind is float:
        return ("f", value.hex())
    if kind is complex:
        return ("c", value.real.hex(), value.imag.hex())
    if kind is str:
        return ("s", value)
    if kind is bytes:
        return ("y", value.hex())
    if kind in _KINDS:
        return (_KINDS[kind], [encode(item, depth + 1) for item in value])
    if kind is dict:
        return ("d", [(encode(k, depth + 1), encode(v, depth + 1)) for k, v in value.items()])
    if kind is range:
        return ("r", hex(value.start), hex(value.stop), hex(value.step))
    if kind is Handle and type(value._number) is int:  # a name of the program is not an object it holds
        return ("h", value._number)
    if kind is collections.deque:
        return ("dq", [encode(item, depth + 1) for item in value])
    raise TypeError(f"a {kind.__name__} argument cannot be sent to the program (plain data only)")


def parse_reply(line: bytes) -> list:
    """One reply line: a JSON array whose first item is a string.

    Raises:
        BadReply: not one well-formed JSON array within the size bounds.
    """
    if len(line) > MAX_LINE_BYTES:
        raise BadReply("a reply of the program was too long")
    try:
        record = json.loads(line)
    except (ValueError, RecursionError, MemoryError, TypeError) as exc:
        raise BadReply(f"the program sent a malformed reply ({type(exc).__name__})") from exc
    if type(record) is not list or not record or type(record[0]) is not str:
        raise BadReply("the program sent a malformed reply")
    return record


def decode(tree: Any, handle: Callable[[int], Handle]) -> Any:
    """The value of a reply's tree, checking every node (see the module docstring).

    Raises:
        BadReply: a node that is not one of the encoding's, or a value past the bounds.
    """
    return _Decoder(handle).value(tree, 0)


class _Decoder:
    """One reply's tree to its value, counting nodes and hash collisions as it goes."""

    def __init__(self, handle: Callable[[int], Handle]) -> None:
        self.handle = handle
        self.budget = MAX_NODES
        self.by_hash: dict[int, list[Any]] = {}

    def value(self, tree: Any, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0 or depth > MAX_DEPTH:
            raise BadReply("the program's value is too large or too deeply nested")
        if type(tree) is not list or not tree or type(tree[0]) is not str:
            raise BadReply("the program's value is not an encoded tree")
        try:
            value = self._build(tree[0], tree[1:], depth)
        except (ValueError, TypeError, OverflowError) as exc:  # a bad number, an unhashable key
            if isinstance(exc, BadReply):
                raise
            raise BadReply(f"the program sent a malformed value ({type(exc).__name__})") from exc
        if not isinstance(value, _UNHASHED) and type(value) not in (Handle, ProgramIterator):
            self._count_hash(value)
        return value

    def _build(self, tag: str, rest: list, depth: int) -> Any:
        if tag == "n" and not rest:
            return None
        if tag == "b" and _shape(rest, bool):
            return rest[0]
        if tag == "s" and _shape(rest, str):
            return rest[0]
        if tag == "y" and _shape(rest, str):
            return bytes.fromhex(rest[0])
        if tag == "i" and _shape(rest, str):
            return _integer(rest[0])
        if tag == "f" and _shape(rest, str):
            return float.fromhex(rest[0])
        if tag == "c" and _shape(rest, str, str):
            return complex(float.fromhex(rest[0]), float.fromhex(rest[1]))
        if tag == "r" and _shape(rest, str, str, str):
            span = range(*(_integer(bound) for bound in rest))
            if len(span) > MAX_ITEMS:
                raise BadReply("the program sent a range too long to iterate")
            self.budget -= len(span)
            return span
        if tag == "h" and _shape(rest, int):
            return self.handle(rest[0])
        if tag in _CONTAINERS and _shape(rest, list):
            return _CONTAINERS[tag]([self.value(item, depth + 1) for item in rest[0]])
        if tag == "dq" and _shape(rest, list):
            return collections.deque(self.value(item, depth + 1) for item in rest[0])
        if tag == "it" and _shape(rest, list):
            return ProgramIterator([self.value(item, depth + 1) for item in rest[0]])
        if tag == "d" and _shape(rest, list):
            pairs = rest[0]
            if not all(type(pair) is list and len(pair) == 2 for pair in pairs):
                raise BadReply("the program sent a malformed dictionary")
            items = [(self.value(k, depth + 1), self.value(v, depth + 1)) for k, v in pairs]
            return dict(items)
        raise BadReply(f"the program sent an unknown value tag {tag!r}")

    def _count_hash(self, value: Any) -> None:
        """Remember ``value`` under its hash; too many distinct values under one is a
        :class:`BadReply` (checked before any set or dict is built from them)."""
        try:
            digest = hash(value)
        except TypeError:  # a tuple that holds a list: no set or dict can be built from it
            return
        known = self.by_hash.setdefault(digest, [])
        if any(value == other for other in known):
            return
        known.append(value)  # at most MAX_SAME_HASH stay: one more is refused
        if len(known) > MAX_SAME_HASH:
            raise BadReply("the program's value holds too many distinct values with one hash")


def _integer(text: str) -> int:
    if len(text) > _MAX_HEX_CHARS:
        raise BadReply(f"the program sent an integer of more than {MAX_INT_BITS} bits")
    return int(text, 16)


def _shape(rest: list, *types: type) -> bool:
    return len(rest) == len(types) and all(type(item) is kind for item, kind in zip(rest, types, strict=True))
