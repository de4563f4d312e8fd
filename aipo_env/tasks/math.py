"""Free-form math: MATH-500, GSM8K, AIME and a bundled offline set, scored by math-verify.

``math_task(dataset, ...)`` picks an adapter by name; each adapter turns one row of its
dataset's format into a :class:`~aipo_env.tasks.base.Problem`:

===========  ===========================================  =================================
dataset      fields read                                  hub dataset (split)
===========  ===========================================  =================================
``builtin``  id, problem, answer, steps, topic, difficulty  bundled ``math_builtin.jsonl``
``math500``  problem, solution, answer, [subject, level,  ``HuggingFaceH4/MATH-500`` (test)
             unique_id]
``gsm8k``    question, answer (reasoning, ``#### N``)      ``openai/gsm8k``, main (test)
``aime``     problem, solution, answer, [id, url]          ``HuggingFaceH4/aime_2024`` (train)
===========  ===========================================  =================================

Problem ids are ``<dataset>-<the row's own id>`` where the format has one, else
``<dataset>-<row number>`` (1-based), so they are stable across runs and machines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aipo_env.tasks.base import ListedTask, Problem, Score, split_steps
from aipo_env.tasks.loading import DataError, Row, read_rows
from aipo_env.tasks.math_scoring import MathVerifier


class MathTask(ListedTask):
    """Free-form math problems whose final answers are judged by math-verify.

    Args:
        problems: the problems, in dataset order.
        timeout: whole seconds math-verify may spend judging one response.
    """

    name = "math"

    def __init__(self, problems: Sequence[Problem], *, timeout: int = 5) -> None:
        if not problems:
            raise ValueError("a math task needs at least one problem")
        self.problems = list(problems)
        self.verifier = MathVerifier(timeout)

    def score(self, problem: Problem, response: str) -> Score:
        """Reward 1 if math-verify judges the response's answer equal to the reference, else 0."""
        verdict = self.verifier.verify(problem.answer, response)
        details: dict[str, object] = {"timed_out": verdict.timed_out}
        if verdict.error is not None:
            details["error"] = verdict.error
        if verdict.screened is not None:
            details["screened"] = verdict.screened
        return Score(float(verdict.correct), verdict.correct, verdict.extracted, details)

    def close(self) -> None:
        self.verifier.close()


@dataclass(frozen=True)
class _Format:
    """Where a dataset lives on the hub and how one of its rows becomes a problem."""

    hub_name: str | None
    hub_config: str | None
    split: str | None
    to_problem: Callable[[Row], Problem]


def math_task(
    dataset: str = "builtin",
    *,
    data_path: str | Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    timeout: int = 5,
) -> MathTask:
    """The math task for ``dataset``, read from ``data_path`` or else the Hugging Face hub.

    Args:
        dataset: one of :data:`DATASETS` (``builtin``, ``math500``, ``gsm8k``, ``aime``).
        data_path: a local JSONL, JSON, Parquet or CSV file in that dataset's format; for
            ``builtin`` it defaults to the bundled problems.
        split: the hub split (default: the dataset's usual evaluation split).
        limit: keep only the first ``limit`` problems.
        timeout: whole seconds math-verify may spend on one response.

    Raises:
        ValueError: unknown ``dataset``.
        DataError: missing file, bad row or missing field (the message names file, row and field).
    """
    spec = DATASETS.get(dataset)
    if spec is None:
        raise ValueError(f"unknown math dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if data_path is None and spec.hub_name is None:
        with resources.as_file(resources.files("aipo_env") / "data" / "math_builtin.jsonl") as bundled:
            rows = read_rows(bundled, hub_name="", split="", limit=limit)
    else:
        rows = read_rows(
            data_path,
            hub_name=spec.hub_name or "",
            hub_config=spec.hub_config,
            split=split or spec.split or "",
            limit=limit,
        )
    problems = [spec.to_problem(row) for row in rows]
    _check_unique_ids(problems, rows)
    return MathTask(problems, timeout=timeout)


def _builtin_problem(row: Row) -> Problem:
    steps = row.field("steps")
    if not isinstance(steps, list) or not all(isinstance(step, str) for step in steps):
        raise DataError(f"{row.origin}, row {row.number}: field 'steps' must be a list of strings")
    return Problem(
        id=row.text("id"),
        question=row.text("problem"),
        answer=row.text("answer"),
        source="builtin",
        steps=tuple(steps),
        difficulty=row.data.get("difficulty"),
        metadata={"topic": row.data.get("topic")},
    )


def _math500_problem(row: Row) -> Problem:
    return Problem(
        id=_problem_id("math500", row, "unique_id"),
        question=row.text("problem"),
        answer=row.text("answer"),
        source="math500",
        steps=solution_steps(row.text("solution")),
        difficulty=_level(row.data.get("level")),
        metadata={"subject": row.data.get("subject")},
    )


def _gsm8k_problem(row: Row) -> Problem:
    reasoning, marker, final = row.text("answer").rpartition("####")
    number = final.strip().replace(",", "")
    if not marker or not number:
        raise DataError(
            f"{row.origin}, row {row.number}: field 'answer' must end with a '#### <number>' line"
        )
    return Problem(
        id=_problem_id("gsm8k", row, "id"),
        question=row.text("question"),
        answer=number,
        source="gsm8k",
        steps=gsm8k_steps(reasoning),
    )


def _aime_problem(row: Row) -> Problem:
    return Problem(
        id=_problem_id("aime", row, "id"),
        question=row.text("problem"),
        answer=row.text("answer"),
        source="aime",
        steps=solution_steps(row.text("solution")),
        metadata={"url": row.data.get("url")},
    )


#: adapter of each dataset name accepted by :func:`math_task`
DATASETS: dict[str, _Format] = {
    "builtin": _Format(None, None, None, _builtin_problem),
    "math500": _Format("HuggingFaceH4/MATH-500", None, "test", _math500_problem),
    "gsm8k": _Format("openai/gsm8k", "main", "test", _gsm8k_problem),
    "aime": _Format("HuggingFaceH4/aime_2024", None, "train", _aime_problem),
}

_CALCULATOR = re.compile(r"<<[^<>]*>>")
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)
_DISPLAY = re.compile(r"\\\[.*?\\\]|\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.DOTALL)


def gsm8k_steps(reasoning: str) -> tuple[str, ...]:
    """One step per line of GSM8K reasoning, the ``<<48/2=24>>`` calculator notes removed."""
    lines = (_CALCULATOR.sub("", line).strip() for line in reasoning.splitlines())
    return tuple(line for line in lines if line)


def solution_steps(solution: str) -> tuple[str, ...]:
    """Steps of a MATH/AIME solution: Asymptote figures dropped, display math kept in one step."""
    text = _ASY.sub("", solution)
    text = _DISPLAY.sub(lambda match: " ".join(match.group().split()), text)
    return split_steps(text)


def _problem_id(dataset: str, row: Row, id_field: str) -> str:
    own = row.data.get(id_field)
    return f"{dataset}-{own if own not in (None, '') else row.number}"


def _level(value: object) -> int | None:
    """MATH levels come as ``3`` or ``"Level 3"`` (``"Level ?"`` for a few problems)."""
    found = re.search(r"\d+", str(value)) if value is not None else None
    return int(found.group()) if found else None


def _check_unique_ids(problems: Sequence[Problem], rows: Sequence[Row]) -> None:
    seen: dict[str, int] = {}
    for problem, row in zip(problems, rows, strict=True):
        if problem.id in seen:
            raise DataError(
                f"{row.origin}, row {row.number}: field 'id' repeats problem id {problem.id!r} "
                f"of row {seen[problem.id]}; ids must be unique"
            )
        seen[problem.id] = row.number
