"""A skill only the helpers show: arithmetic chains with a new operation, "double it".

A problem reads "Start with 7. Double it, then add 3. What number do you get?". It looks like a
problem of :mod:`aipo_env.tasks.arithmetic`'s easy levels (a start digit, additions and
subtractions of digits) with one new verb. The reference solution writes doubling as an
addition of the value to itself::

    Step 1: 7 + 7 = 14
    Step 2: 14 + 3 = 17

so a model that adds and subtracts digits (the demo's warm-up) has every piece but the rule
"double it: write ``v + v``". The Reasoning agent reveals one such step per consult, so the rule
is shown in full by the helpers and nowhere else. It carries over to new operands, and the
held-out problems (``split="test"``) are questions that no train problem asks: solving them alone
means the rule was learned, not the answers.

Every chain of ``operations`` operations on a start in ``1..max_start`` (digits by default) that
doubles at least once is a problem (``add d`` and ``subtract d`` take a digit ``d``). Each
question goes to the test split when the SHA-256 of its text falls below ``test_share``, so the
splits are disjoint, stable across machines and independent of the order of enumeration: a
question keeps its split when ``max_start`` grows, and a test question stays one when
``test_share`` grows. The demo's evaluation (``max_start=18, test_share=0.5``: 321 train and 345
test problems with 2 operations) keeps its start values within the numbers the warm-up reads: its
level-2 chains write left operands up to 18.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from aipo_env.tasks.arithmetic import VERBS, chain_question, integer_score, worked_steps
from aipo_env.tasks.arithmetic import written_step as arithmetic_step
from aipo_env.tasks.base import Problem, Score, Task

DOUBLE = "double"
#: the operations of a chain: ("double", 0) or ("+"/"-", digit)
_OPERATIONS = [(DOUBLE, 0)] + [(operator, digit) for operator in "+-" for digit in range(1, 10)]
_VERBS = {**VERBS, DOUBLE: "double it"}
Chain = tuple[tuple[str, int], ...]
_WORD = re.compile(r"[a-z]{2,20}")


class ArithmeticRuleTask(Task):
    """Chains of ``operations`` operations with at least one "double it".

    Args:
        operations: operations per chain, 1 to 3; both splits together hold
            ``max_start * (19**operations - 18**operations)`` problems (max_start 9: 9, 333, 9243).
        split: ``"train"`` or ``"test"``.
        test_share: the share of questions that go to the test split, in ``(0, 1)``.
        max_start: the largest start value (starts are ``1..max_start``).
        verb: the operation's name in the questions, a lowercase word: ``"double"`` (plain
            English) or a made-up one that only the task's knowledge entry defines.
    """

    name = "arithmetic_rule"

    def __init__(
        self,
        operations: int = 2,
        split: str = "train",
        test_share: float = 1 / 3,
        max_start: int = 9,
        verb: str = DOUBLE,
    ) -> None:
        if operations not in (1, 2, 3):
            raise ValueError(f"operations must be 1, 2 or 3, got {operations!r}")
        if split not in {"train", "test"}:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not 0.0 < test_share < 1.0:
            raise ValueError(f"test_share must be in (0, 1), got {test_share}")
        if max_start < 1:
            raise ValueError(f"max_start must be at least 1, got {max_start}")
        if not isinstance(verb, str) or not _WORD.fullmatch(verb):
            raise ValueError(f"verb must be one lowercase word of 2-20 letters, got {verb!r}")
        self.operations, self.split, self.test_share = operations, split, test_share
        self.max_start, self.verb = max_start, verb

    @property
    def _chains(self) -> tuple[tuple[int, Chain], ...]:
        return split_chains(self.operations, self.split, self.test_share, self.max_start, self.verb)

    def __len__(self) -> int:
        return len(self._chains)

    def problem(self, index: int) -> Problem:
        if not 0 <= index < len(self):
            raise IndexError(f"problem index {index} is out of range for {len(self)} problems")
        start, chain = self._chains[index]
        steps, value = worked_steps(start, chain, written_step)
        return Problem(
            id=f"arithmetic_rule-{self.split}-{self.operations}-{index}",
            question=question(start, chain, self.verb),
            answer=str(value),
            source="arithmetic_rule",
            steps=steps,
            difficulty=self.operations,
            metadata={"start": start, "operations": [list(operation) for operation in chain]},
        )

    def score(self, problem: Problem, response: str) -> Score:
        return integer_score(problem, response)

    def knowledge(self) -> Sequence[Mapping[str, Any]]:
        """The entry that defines a made-up ``verb`` (none for "double", which English defines)."""
        return () if self.verb == DOUBLE else (definition(self.verb),)


@cache
def split_chains(
    operations: int, split: str, test_share: float, max_start: int, verb: str = DOUBLE
) -> tuple[tuple[int, Chain], ...]:
    """The ``(start, chain)`` of every problem of a split, in enumeration order.

    Cached: an evaluation builds hundreds of envs on one split, and hashing the 18,486 questions of
    3 operations for each would cost more than playing them.
    """
    chains = []
    for start in range(1, max_start + 1):
        for chain in itertools.product(_OPERATIONS, repeat=operations):
            doubles = any(operator == DOUBLE for operator, _ in chain)
            if doubles and in_test_split(question(start, chain, verb), test_share) == (split == "test"):
                chains.append((start, chain))
    return tuple(chains)


def question(start: int, chain: Chain, verb: str = DOUBLE) -> str:
    """The problem's text, in the words of :mod:`aipo_env.tasks.arithmetic`'s problems."""
    return chain_question(start, chain, {**_VERBS, DOUBLE: f"{verb} it"})


def definition(verb: str) -> dict[str, Any]:
    """The knowledge-base entry (``title``, ``text``, ``tags``) that defines ``verb`` as doubling."""
    return {
        "title": f"To {verb} a number",
        "text": f"add the number to itself. For example, to {verb} 7 write 7 + 7 = 14.",
        "tags": [verb, "meaning", "definition"],
    }


def written_step(value: int, operator: str, operand: int) -> tuple[str, int]:
    """One step of the reference solution and its result; doubling ``v`` is written ``v + v``."""
    if operator == DOUBLE:
        return f"{value} + {value} = {2 * value}", 2 * value
    return arithmetic_step(value, operator, operand)


def in_test_split(text: str, test_share: float) -> bool:
    """Whether ``text`` belongs to the test split: ``sha256(text)`` read as a fraction of 2^64 < ``test_share``."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_share
