"""What every task provides: problems, a prompt, a scorer, and knowledge for the helpers.

A task is a finite, indexable collection of :class:`Problem` objects plus the rules to judge an
answer. Procedural families generate problem ``i`` deterministically from a seed, so they too
are indexable and ``reset(options={"index": i})`` works the same everywhere.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem.

    Attributes:
        id: stable identifier, unique within its dataset.
        question: the problem statement shown to the policy.
        answer: the reference answer (never shown unless the env is asked to reveal it).
        source: the dataset or family it comes from (``math500``, ``arithmetic``, ...).
        steps: the reference solution split into steps, when one exists.
        difficulty: level or difficulty where known.
        metadata: anything else the task's scorer needs (choices, tests, generator state).
    """

    id: str
    question: str
    answer: str
    source: str
    steps: tuple[str, ...] = ()
    difficulty: float | int | str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def describe(self, reveal_answer: bool = False) -> dict[str, Any]:
        """The public description of the problem, as put into ``info["problem"]``."""
        described: dict[str, Any] = {"id": self.id, "source": self.source, "difficulty": self.difficulty}
        if reveal_answer:
            described["answer"] = self.answer
        return described


@dataclass(frozen=True)
class Score:
    """A task's judgement of a final response.

    Attributes:
        reward: the task reward, in ``[0, 1]``.
        correct: whether the response counts as correct.
        extracted: the answer read from the response, if any.
        details: task-specific extras (per-test outcomes, timeouts, ...), JSON-ready.
    """

    reward: float
    correct: bool
    extracted: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class Task(ABC):
    """A family of problems with a scorer.

    Subclasses set :attr:`name` and implement :meth:`__len__`, :meth:`problem` and :meth:`score`.
    """

    name: str = "task"
    #: the instruction appended to every question, saying how to give the answer
    answer_format: str = "Put your final answer in \\boxed{}."

    @abstractmethod
    def __len__(self) -> int:
        """The number of problems."""

    @abstractmethod
    def problem(self, index: int) -> Problem:
        """Problem ``index`` (``0 <= index < len(self)``)."""

    @abstractmethod
    def score(self, problem: Problem, response: str) -> Score:
        """Judge a final response to ``problem``. Never raises on any response text."""

    def prompt(self, problem: Problem) -> str:
        """The text shown to the policy at the start of an episode."""
        return f"{problem.question.strip()}\n\n{self.answer_format}"

    def check(self, problem: Problem, claim: str) -> str | None:
        """A task-specific reply of the reference Verify agent to ``claim``, or ``None``.

        Tasks whose answers cannot be judged by :meth:`score` alone without leaking hidden
        information (code: run only the visible examples) override this; ``None`` lets the
        agent use its generic checks (candidate answers via :meth:`score`, equations).
        """
        return None

    def knowledge(self) -> Sequence[Mapping[str, Any]]:
        """Extra knowledge-base entries (``title``, ``text``, ``tags``) this task brings."""
        return ()

    def close(self) -> None:
        """Release resources (worker processes, files). Safe to call twice."""


class ListedTask(Task):
    """A task over a fixed list of problems loaded from a dataset (``self.problems``)."""

    problems: list[Problem]

    def __len__(self) -> int:
        return len(self.problems)

    def problem(self, index: int) -> Problem:
        if not 0 <= index < len(self.problems):
            raise IndexError(f"problem index {index} is out of range for {len(self.problems)} problems")
        return self.problems[index]


def written_solution(problem: Problem) -> str:
    """The problem's complete reference solution as one turn: its steps, then the boxed answer::

        Step 1: 7 + 5 = 12
        Step 2: 12 * 3 = 36
        \\boxed{36}

    This is the Reasoning agent's step format, one step per line, and the turn of a warm-up
    demonstration that consults no agent. Reference episodes of RL play it
    (``rollout.reference_per_group``, :mod:`algorithms.rollout`).

    Raises:
        ValueError: the problem has no reference steps (the task has no worked solutions).
    """
    if not problem.steps:
        raise ValueError(
            f"problem {problem.id!r} of {problem.source!r} has no reference steps: the task has no worked "
            "solutions for rollout.reference_per_group"
        )
    lines = "".join(f"Step {number}: {step}\n" for number, step in enumerate(problem.steps, start=1))
    return f"{lines}\\boxed{{{problem.answer}}}"


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_brace = text.find("{", start)
    if open_brace < 0 or text[start:open_brace].strip() not in {"\\boxed", "\\fbox"}:
        return None
    return braced_content(text, open_brace)


def braced_content(text: str, open_brace: int, max_chars: int | None = None) -> str | None:
    """The text inside the braces that open at ``open_brace``, nesting respected.

    ``None`` if they never close (within ``max_chars`` characters, when given).
    """
    end = len(text) if max_chars is None else min(len(text), open_brace + max_chars)
    depth = 0
    for position in range(open_brace, end):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : position]
    return None


def split_steps(solution: str, max_steps: int = 24) -> tuple[str, ...]:
    """Split a worked solution into steps: by lines, then by sentences outside ``$...$``.

    Sentences that end inside an inline formula are kept whole; very short fragments are merged
    into the step before them. At most ``max_steps`` steps are returned (the rest is merged into
    the last one) so that a Reasoning agent reveals solutions in a bounded number of consults.
    """
    steps: list[str] = []
    for line in solution.splitlines():
        line = line.strip()
        if not line:
            continue
        steps.extend(_sentences(line))
    merged: list[str] = []
    for step in steps:
        if merged and len(step) < 12:
            merged[-1] = f"{merged[-1]} {step}"
        else:
            merged.append(step)
    if len(merged) > max_steps:
        merged = merged[: max_steps - 1] + [" ".join(merged[max_steps - 1 :])]
    return tuple(merged)


def _sentences(line: str) -> list[str]:
    pieces, start, in_math = [], 0, False
    for match in re.finditer(r"\$|[.!?](?=\s+[A-Z(\\])", line):
        if match.group() == "$":
            in_math = not in_math
        elif not in_math:
            pieces.append(line[start : match.end()].strip())
            start = match.end()
    pieces.append(line[start:].strip())
    return [piece for piece in pieces if piece]
