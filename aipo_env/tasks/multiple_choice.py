"""Multiple-choice questions in the GPQA format: deterministic option shuffling and letter scoring.

A GPQA row has ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3`` and (optionally)
``Explanation``. The four options are put in an order that depends only on ``shuffle_seed`` and
the row's position, through SHA-256 rather than ``hash()`` or :mod:`random`, so the same seed
gives the same order on every machine and Python version. The question shown to the policy
lists them as ``(A) ...`` lines; ``Problem.answer`` holds the correct letter and
``Problem.metadata["choices"]`` the option texts in display order.

Answers are read by :func:`extract_choice` (see :mod:`aipo_env.tasks.choice_extraction`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from aipo_env.tasks.base import ListedTask, Problem, Score, split_steps
from aipo_env.tasks.choice_extraction import LETTERS, extract_choice
from aipo_env.tasks.loading import Row, read_rows

HUB_NAME = "Idavidrein/gpqa"
HUB_CONFIG = "gpqa_diamond"
HUB_SPLIT = "train"
DATASETS = ("builtin", "gpqa")
_INCORRECT_FIELDS = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")

_KNOWLEDGE: tuple[dict[str, Any], ...] = (
    {
        "title": "Eliminating options",
        "text": "Rule out options that violate units, limiting cases or conservation laws; "
        "check the survivors against the question's exact wording.",
        "tags": ["option", "options", "choice", "eliminate", "multiple", "strategy"],
    },
    {
        "title": "Free fall",
        "text": "Dropped from rest with no air resistance: v = g t, h = g t^2 / 2, and v^2 = 2 g h.",
        "tags": ["fall", "dropped", "gravity", "speed", "height", "kinematics"],
    },
    {
        "title": "Kinetic energy",
        "text": "A mass m moving at speed v has kinetic energy E = m v^2 / 2 (joules for kg and m/s).",
        "tags": ["energy", "kinetic", "mass", "speed", "joule"],
    },
    {
        "title": "pH of a strong acid",
        "text": "pH = -log10[H+]; a strong monoprotic acid dissociates fully, so [H+] equals its "
        "concentration.",
        "tags": ["ph", "acid", "concentration", "hydrogen", "log"],
    },
    {
        "title": "Resistors in series and parallel",
        "text": "In series resistances add; in parallel 1/R = 1/R1 + 1/R2 + ..., so n equal "
        "resistors R in parallel give R/n.",
        "tags": ["resistor", "resistors", "parallel", "series", "resistance", "ohm"],
    },
    {
        "title": "Monohybrid cross",
        "text": "Aa x Aa gives AA : Aa : aa in the ratio 1 : 2 : 1, so 3/4 show the dominant and "
        "1/4 the recessive phenotype.",
        "tags": ["genetics", "cross", "dominant", "recessive", "heterozygous", "offspring"],
    },
    {
        "title": "Syllogisms",
        "text": "From 'all X are Y' and 'all Y are Z' it follows that all X are Z; 'all X are Y' "
        "does not imply 'all Y are X'.",
        "tags": ["logic", "all", "syllogism", "implies", "must", "true"],
    },
)


class MultipleChoiceTask(ListedTask):
    """GPQA-format questions with options shuffled per ``shuffle_seed``.

    Args:
        rows: GPQA-format records (see :func:`read_rows`); every row is checked here, so a
            missing field is reported before any episode runs.
        source: the dataset name recorded in each problem (``gpqa``, ``builtin``).
        shuffle_seed: seed of the option order.

    Raises:
        DataError: a row lacks a required field; the message names the file, row and field.
    """

    name = "multiple_choice"
    answer_format = "Give the letter of the correct option as your final answer, in \\boxed{}."

    def __init__(self, rows: Sequence[Row], *, source: str = "gpqa", shuffle_seed: int = 0) -> None:
        self.source, self.shuffle_seed = source, shuffle_seed
        self.problems = [
            gpqa_problem(row, index, source=source, shuffle_seed=shuffle_seed)
            for index, row in enumerate(rows)
        ]

    def score(self, problem: Problem, response: str) -> Score:
        """1 if the letter read from ``response`` is ``problem.answer``, else 0."""
        letter, how = extract_choice(response, problem.metadata["choices"])
        correct = letter is not None and letter == problem.answer
        return Score(float(correct), correct, letter, {"matched_by": how})

    def knowledge(self) -> Sequence[Mapping[str, Any]]:
        return _KNOWLEDGE


def multiple_choice_task(
    dataset: str = "builtin",
    *,
    data_path: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    shuffle_seed: int = 0,
) -> MultipleChoiceTask:
    """Build the multiple-choice task named ``dataset``.

    Args:
        dataset: ``"builtin"`` (a dozen bundled questions, offline) or ``"gpqa"``.
        data_path: a local CSV, JSONL, JSON or Parquet file in the GPQA format; without it
            ``gpqa`` is loaded from the Hugging Face hub (``Idavidrein/gpqa``, ``gpqa_diamond``).
        split: the hub split (default ``train``, GPQA's only split).
        limit: keep the first ``limit`` questions.
        shuffle_seed: seed of the option order.

    Raises:
        ValueError: an unknown dataset, or ``data_path`` given with ``builtin``.
        DataError: a missing file or field.
    """
    if dataset == "builtin":
        if data_path is not None:
            raise ValueError(
                "dataset='builtin' uses the bundled questions; pass dataset='gpqa' to read data_path"
            )
        bundled = resources.files("aipo_env").joinpath("data/multiple_choice_builtin.jsonl")
        with resources.as_file(bundled) as path:
            rows = read_rows(path, hub_name=HUB_NAME, split=HUB_SPLIT, limit=limit)
    elif dataset == "gpqa":
        rows = read_rows(
            data_path, hub_name=HUB_NAME, hub_config=HUB_CONFIG, split=split or HUB_SPLIT, limit=limit
        )
    else:
        raise ValueError(f"unknown multiple-choice dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return MultipleChoiceTask(rows, source=dataset, shuffle_seed=shuffle_seed)


def option_order(count: int, shuffle_seed: int, row_index: int) -> list[int]:
    """The display order of ``count`` options: position ``k`` shows original option ``order[k]``.

    Each option gets the key ``SHA-256(f"{shuffle_seed}:{row_index}:{option}")`` and the options
    are sorted by it, which draws a uniformly random permutation that only depends on its inputs.
    """

    def key(option: int) -> bytes:
        return hashlib.sha256(f"{shuffle_seed}:{row_index}:{option}".encode()).digest()

    return sorted(range(count), key=key)


def gpqa_problem(row: Row, index: int, *, source: str, shuffle_seed: int) -> Problem:
    """One GPQA row as a :class:`Problem`; the correct answer is original option 0."""
    question = row.text("Question")
    options = [row.text("Correct Answer"), *(row.text(name) for name in _INCORRECT_FIELDS)]
    order = option_order(len(options), shuffle_seed, index)
    choices = [options[original] for original in order]
    letter = LETTERS[order.index(0)]
    listed = "\n".join(f"({LETTERS[position]}) {choice}" for position, choice in enumerate(choices))
    explanation = str(row.data.get("Explanation") or "").strip()
    record_id = row.data.get("Record ID") or row.data.get("id")
    return Problem(
        id=f"{source}-{record_id}" if record_id else f"{source}-{index}",
        question=f"{question}\n\n{listed}",
        answer=letter,
        source=source,
        steps=split_steps(explanation) if explanation else (),
        difficulty=_optional_text(row, "Writer's Difficulty Estimate"),
        metadata={
            "choices": choices,
            "letters": list(LETTERS[: len(choices)]),
            "domain": _optional_text(row, "High-level domain"),
            "subdomain": _optional_text(row, "Subdomain"),
        },
    )


def _optional_text(row: Row, name: str) -> str | None:
    value = row.data.get(name)
    if value is None:
        return None
    return str(value).strip() or None
