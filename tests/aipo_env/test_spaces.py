"""The transcript space holds any text, in memory and in shared memory."""

from __future__ import annotations

import copy
import multiprocessing as mp

from gymnasium.spaces.utils import flatten, unflatten
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory
from hypothesis import given
from hypothesis import strategies as st

from aipo_env.spaces import Transcript

SPACE = Transcript(64)


@given(st.text(max_size=64))
def test_any_text_round_trips_through_flatten(text):
    assert SPACE.contains(text)
    assert unflatten(SPACE, flatten(SPACE, text)) == text


def test_contains_checks_type_and_length():
    assert SPACE.contains("\\frac{1}{2} ∑ é 😀")
    assert not SPACE.contains("x" * 65) and not SPACE.contains(3)
    assert SPACE.contains(SPACE.sample())


def test_shared_memory_view_follows_writes_and_copies_are_snapshots():
    memory = create_shared_memory(SPACE, n=2, ctx=mp)
    view = read_from_shared_memory(SPACE, memory, n=2)
    write_to_shared_memory(SPACE, 1, "∫ x dx", memory)
    snapshot = copy.deepcopy(view)
    write_to_shared_memory(SPACE, 1, "changed", memory)
    assert snapshot == ("", "∫ x dx") and tuple(view) == ("", "changed")
