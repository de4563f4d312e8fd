"""A Gymnasium text space for transcripts: any unicode string up to a maximum length.

``gymnasium.spaces.Text`` only contains strings over a fixed character set and stores them in
shared memory as indices into that set, which cannot hold LaTeX, code or arbitrary unicode.
:class:`Transcript` keeps ``Text``'s interface (so ``check_env`` and ``make_vec`` treat it as a
text space) and accepts every string; in shared memory (``AsyncVectorEnv``) characters are stored
as their code points plus one (zero pads).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
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
    points = np.frombuffer(x[: space.max_length].encode("utf-32-le", "surrogatepass"), dtype="<u4")
    codes[: len(points)] = points.astype(np.int32) + 1
    return codes


@unflatten.register(Transcript)
def _unflatten_transcript(space: Transcript, x: np.ndarray) -> str:
    length = int(np.count_nonzero(x))  # zeros only pad the end
    points = (np.asarray(x[:length], dtype=np.int64) - 1).astype("<u4")
    return points.tobytes().decode("utf-32-le", "surrogatepass")


class SharedTranscripts(Sequence[str]):
    """A live view of the transcripts in an ``AsyncVectorEnv``'s shared memory.

    Gymnasium reads a shared buffer once and relies on the result being a view (as NumPy arrays
    are); strings are not, so this sequence decodes the buffer on every access. ``deepcopy`` (what
    ``AsyncVectorEnv(copy=True)``, the default, returns) gives a plain tuple of strings.
    """

    def __init__(self, space: Transcript, shared_memory: Any, n: int) -> None:
        self._space = space
        self._codes = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return _unflatten_transcript(self._space, self._codes[index])

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(Transcript)
def _read_transcript(space: Transcript, shared_memory: Any, n: int = 1) -> SharedTranscripts:
    return SharedTranscripts(space, shared_memory, n)
