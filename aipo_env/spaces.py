"""A Gymnasium text space for transcripts: any unicode string up to a maximum length.

``gymnasium.spaces.Text`` only contains strings over a fixed character set and stores them in
shared memory as indices into that set, which cannot hold LaTeX, code or arbitrary unicode.
:class:`Transcript` keeps ``Text``'s interface (so ``check_env`` and ``make_vec`` treat it as a
text space) and accepts every string; in shared memory (``AsyncVectorEnv``) characters are stored
as their code points plus one (zero pads).
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium.spaces import Text
from gymnasium.spaces.utils import flatten, unflatten
from gymnasium.vector.utils import read_from_shared_memory

SAMPLE_CHARSET = string.printable + "αβγπ√∑∫≤≥≠×÷°"


class Transcript(Text):
    """Any string of at most ``max_length`` characters; samples use printable characters."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        """Any ``str`` within the length bounds belongs to the space."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"Transcript({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Transcript)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    def __hash__(self) -> int:
        return hash(("Transcript", self.min_length, self.max_length))


@flatten.register(Transcript)
def _flatten_transcript(space: Transcript, x: str) -> np.ndarray:
    codes = np.zeros(space.max_length, dtype=np.int32)
    codes[: len(x)] = [ord(character) + 1 for character in x[: space.max_length]]
    return codes


@unflatten.register(Transcript)
def _unflatten_transcript(space: Transcript, x: np.ndarray) -> str:
    return "".join(chr(code - 1) for code in x if code != 0)


@read_from_shared_memory.register(Transcript)
def _read_transcript(space: Transcript, shared_memory: Any, n: int = 1) -> tuple[str, ...]:
    data = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))
    return tuple(_unflatten_transcript(space, row) for row in data)
