"""The built-in step-by-step family: chains of arithmetic operations with worked solutions.

A problem reads "Start with 7. Add 5, then multiply by 3, then subtract 4. What number do you
get?" and its reference solution has one step per operation (``7 + 5 = 12``, ``12 * 3 = 36``,
``36 - 4 = 32``). ``level`` sets the difficulty from trivially easy (level 1: one addition of
digits) to far beyond a small model (level 10: ten operations on four-digit numbers with
two-digit factors). Problems are generated from ``(seed, split, index)`` alone, so problem ``i``
is the same on every machine and the ``train`` and ``test`` splits are drawn independently.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aipo_env.tasks.base import Problem, Score, Task, last_boxed


@dataclass(frozen=True)
class Level:
    """How one difficulty level draws a chain.

    Attributes:
        operations: number of operations in the chain.
        operand_max: largest start value and largest addend or subtrahend.
        factor_max: largest multiplier; ``0`` means no multiplications.
    """

    operations: int
    operand_max: int
    factor_max: int


LEVELS: dict[int, Level] = {
    1: Level(1, 9, 0),
    2: Level(2, 9, 0),
    3: Level(2, 9, 5),
    4: Level(3, 20, 9),
    5: Level(4, 50, 9),
    6: Level(5, 99, 9),
    7: Level(6, 99, 12),
    8: Level(7, 999, 12),
    9: Level(8, 999, 19),
    10: Level(10, 9999, 99),
}
_PRODUCT_LIMIT = 10**6
VERBS = {"+": "add {n}", "-": "subtract {n}", "*": "multiply by {n}"}


class ArithmeticTask(Task):
    """Arithmetic chains at one level or a range of levels.

    Args:
        level: one level (1-10) or an inclusive ``(low, high)`` range; problem ``i`` of a range
            has level ``low + i % (high - low + 1)``.
        size: number of problems (they are generated on demand).
        split: ``"train"`` or ``"test"``; the splits use independent random streams.
        seed: base seed of the generator.
    """

    name = "arithmetic"

    def __init__(
        self, level: int | tuple[int, int] = (1, 3), size: int = 10_000, split: str = "train", seed: int = 0
    ) -> None:
        low, high = (level, level) if isinstance(level, int) else tuple(level)
        if not (low in LEVELS and high in LEVELS and low <= high):
            raise ValueError(f"level must be in 1..{max(LEVELS)} (or a range low <= high), got {level!r}")
        if split not in {"train", "test"}:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.levels = (low, high)
        self.size, self.split, self.seed = size, split, seed

    def __len__(self) -> int:
        return self.size

    def problem(self, index: int) -> Problem:
        if not 0 <= index < self.size:
            raise IndexError(f"problem index {index} is out of range for {self.size} problems")
        low, high = self.levels
        level = low + index % (high - low + 1)
        rng = random.Random(f"arithmetic:{self.seed}:{self.split}:{level}:{index}")
        start, operations = _draw_chain(rng, LEVELS[level])
        steps, value = worked_steps(start, operations)
        return Problem(
            id=f"arithmetic-{self.split}-L{level}-{index}",
            question=chain_question(start, operations),
            answer=str(value),
            source="arithmetic",
            steps=steps,
            difficulty=level,
            metadata={"start": start, "operations": [list(op) for op in operations]},
        )

    def score(self, problem: Problem, response: str) -> Score:
        return integer_score(problem, response)


def chain_question(start: int, operations: Sequence[Sequence], verbs: Mapping[str, str] = VERBS) -> str:
    """ "Start with 7. Add 5, then multiply by 3. What number do you get?" for ``operations``
    ``[(operator, operand), ...]``, each phrased by ``verbs[operator]`` (``{n}``: the operand)."""
    phrases = ", then ".join(verbs[operator].format(n=operand) for operator, operand in operations)
    return f"Start with {start}. {phrases[0].upper()}{phrases[1:]}. What number do you get?"


def written_step(value: int, operator: str, operand: int) -> tuple[str, int]:
    """One reference step, ``"7 + 5 = 12"``, and its result."""
    result = apply_operation(value, operator, operand)
    return f"{value} {operator} {operand} = {result}", result


def worked_steps(
    start: int,
    operations: Sequence[Sequence],
    write: Callable[[int, str, int], tuple[str, int]] = written_step,
) -> tuple[tuple[str, ...], int]:
    """The reference steps of a chain from ``start`` (each written by ``write``) and its value."""
    steps, value = [], start
    for operator, operand in operations:
        step, value = write(value, operator, operand)
        steps.append(step)
    return tuple(steps), value


def integer_score(problem: Problem, response: str) -> Score:
    """1 when the response's integer (:func:`extract_integer`) equals the problem's answer."""
    extracted = extract_integer(response)
    correct = extracted is not None and extracted == int(problem.answer)
    return Score(float(correct), correct, None if extracted is None else str(extracted))


def extract_integer(response: str) -> int | None:
    """The integer in the last ``\\boxed{}``, else after the last "answer is"/"answer:"."""
    candidate = last_boxed(response)
    if candidate is None:
        found = re.findall(r"answer\s*(?:is|:|=)\s*\$?(-?[\d,]+)", response, flags=re.IGNORECASE)
        candidate = found[-1] if found else None
    if candidate is None:
        return None
    cleaned = candidate.replace(",", "").replace(" ", "").replace("$", "")
    return int(cleaned) if re.fullmatch(r"[+-]?\d{1,40}", cleaned) else None


def _draw_chain(rng: random.Random, level: Level) -> tuple[int, list[tuple[str, int]]]:
    start = rng.randint(1, level.operand_max)
    operations, value = [], start
    for _ in range(level.operations):
        choices = ["+", "-"]
        if level.factor_max and abs(value) * level.factor_max <= _PRODUCT_LIMIT:
            choices.append("*")
        operator = rng.choice(choices)
        operand = rng.randint(2, level.factor_max) if operator == "*" else rng.randint(1, level.operand_max)
        operations.append((operator, operand))
        value = apply_operation(value, operator, operand)
    return start, operations


def apply_operation(value: int, operator: str, operand: int) -> int:
    """``value operator operand`` for the family's operators ``+``, ``-`` and ``*``."""
    if operator == "+":
        return value + operand
    if operator == "-":
        return value - operand
    return value * operand
