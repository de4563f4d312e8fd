"""Procedural problems from reasoning-gym: any of its datasets by name, scored by its own scorer.

``reasoning_gym.create_dataset(name, size=..., seed=..., **config)`` generates problem ``i``
deterministically from ``(seed, i)``; each entry has ``question``, ``answer`` and ``metadata``,
and the dataset's ``score_answer(answer, entry)`` returns a score in ``[0, 1]``.

Difficulty: most reasoning-gym datasets register a *curriculum*, a set of attributes (number
of terms, digits, words, ...) each with a list of levels. ``level=L`` sets every attribute to
``min(L, its last level)`` and turns the curriculum into a config the way reasoning-gym's
default curriculum context does (``RangeAttributeMode.INCLUSIVE``: a range attribute spans
its level-0 value up to its level-``L`` value), so a higher level adds harder problems to the
mix. ``config`` is applied on top, key by key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import reasoning_gym
from reasoning_gym.factory import CURRICULA, DATASETS, create_curriculum

from aipo_env.tasks.base import Problem, Score, Task, last_boxed

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_PREFIX = re.compile(r"^(?:final\s+answer|answer)\s*[:=]\s*", re.IGNORECASE)
_ENTRY_CACHE = 256  # generated entries kept for scoring, most recent first
_LIST_HINT = "list them with: python -c 'from aipo_env.tasks.procedural import available_tasks; print(available_tasks())'"


def available_tasks() -> list[str]:
    """The names of every reasoning-gym dataset, sorted."""
    return sorted(DATASETS)


def max_level(task: str) -> int | None:
    """The highest curriculum level of ``task`` (0 is the easiest), or ``None`` without a curriculum."""
    _check_name(task)
    if task not in CURRICULA:
        return None
    return max(len(attribute.levels) for attribute in create_curriculum(task).attributes.values()) - 1


class ProceduralTask(Task):
    """One reasoning-gym dataset as a task.

    Args:
        task: the reasoning-gym dataset name (see :func:`available_tasks`).
        size: number of problems.
        seed: generator seed; problem ``i`` depends only on ``(task, config, seed, i)``.
        config: that dataset's settings, e.g. ``{"min_terms": 2, "max_terms": 4}``.
        level: a curriculum level (0 = easiest, up to :func:`max_level`), applied before ``config``.

    Raises:
        ValueError: an unknown task (with close matches), an unknown config key, a level out of
            range or on a dataset without curriculum, or settings the dataset rejects.
    """

    answer_format = "Give your final answer between <answer> and </answer> tags."

    def __init__(
        self,
        task: str = "basic_arithmetic",
        *,
        size: int = 500,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
        level: int | None = None,
    ) -> None:
        _check_name(task)
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.name, self.size, self.seed, self.level = task, size, seed, level
        settings = {**_level_settings(task, level), **_checked_config(task, config or {})}
        try:
            self.dataset = reasoning_gym.create_dataset(task, size=size, seed=seed, **settings)
        except (AssertionError, TypeError, ValueError) as exc:
            raise ValueError(f"reasoning-gym rejected the settings {settings} for {task!r}: {exc}") from exc
        self.settings = settings
        self._entries: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return self.size

    def problem(self, index: int) -> Problem:
        if not 0 <= index < self.size:
            raise IndexError(f"problem index {index} is out of range for {self.size} problems")
        entry = self._entry(index)
        answer = entry.get("answer")
        return Problem(
            id=f"{self.name}-{self.seed}-{index}",
            question=str(entry["question"]),
            answer="" if answer is None else str(answer),
            source=self.name,
            difficulty=self.level,
            metadata={"index": index, "reasoning_gym": json_ready(entry.get("metadata", {}))},
        )

    def score(self, problem: Problem, response: str) -> Score:
        """reasoning-gym's ``score_answer`` of the extracted answer; correct when it is 1."""
        extracted = extract_answer(response)
        entry = self._entry(int(problem.metadata["index"]))
        try:
            value = float(self.dataset.score_answer(extracted, entry))
        except Exception as exc:  # a scorer bug must not crash an episode: score 0 and say why
            return Score(0.0, False, extracted, {"scorer_error": f"{type(exc).__name__}: {exc}"[:300]})
        reward = min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0
        return Score(reward, reward >= 1.0, extracted)

    def _entry(self, index: int) -> dict[str, Any]:
        """Entry ``index`` as reasoning-gym made it (the scorer needs its original types)."""
        if index in self._entries:
            self._entries.move_to_end(index)
        else:
            self._entries[index] = self.dataset[index]
            if len(self._entries) > _ENTRY_CACHE:
                self._entries.popitem(last=False)
        return self._entries[index]


def extract_answer(response: str) -> str | None:
    """The answer a response gives, or ``None`` for a blank response.

    The last ``<answer>...</answer>``, else the last ``\\boxed{}``, else the last non-empty
    line without a leading ``Answer:``.
    """
    tagged = _ANSWER_TAG.findall(response)
    if tagged:
        return tagged[-1].strip()
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed.strip()
    lines = [line.strip() for line in response.splitlines() if line.strip()]
    return _ANSWER_PREFIX.sub("", lines[-1]) if lines else None


def json_ready(value: Any) -> Any:
    """``value`` with tuples and sets as lists, string keys, and anything exotic as its ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_ready(item) for item in value), key=repr)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return json_ready(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _check_name(task: str) -> None:
    if task in DATASETS:
        return
    close = difflib.get_close_matches(task, DATASETS, n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown reasoning-gym task {task!r}; {hint}{len(DATASETS)} tasks exist, {_LIST_HINT}")


def _config_fields(task: str) -> list[str]:
    _, config_class = DATASETS[task]
    return [field.name for field in dataclasses.fields(config_class) if field.name not in ("size", "seed")]


def _checked_config(task: str, config: Mapping[str, Any]) -> dict[str, Any]:
    fields = _config_fields(task)
    for key in config:
        if key in ("size", "seed"):
            raise ValueError(f"config key {key!r}: pass {key}= to the env or task instead of inside config")
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(
                f"config key {key!r} is not a setting of reasoning-gym task {task!r}{hint}; "
                f"its settings are: {', '.join(fields)}"
            )
    return dict(config)


def _level_settings(task: str, level: int | None) -> dict[str, Any]:
    """The config fields that curriculum level ``level`` sets (none for ``level=None``)."""
    if level is None:
        return {}
    top = max_level(task)
    if top is None:
        raise ValueError(
            f"reasoning-gym task {task!r} has no curriculum, so level= cannot be used; "
            f"set its difficulty with config= (settings: {', '.join(_config_fields(task))})"
        )
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= top:
        raise ValueError(f"level for {task!r} must be an integer from 0 (easiest) to {top}, got {level!r}")
    curriculum = create_curriculum(task)
    curriculum.set_global_level(level)
    generated = curriculum.generate_configuration({})
    attributes = curriculum.attributes.values()
    names = {getattr(a, "field_name", None) for a in attributes}
    names |= {getattr(a, name, None) for a in attributes for name in ("lower_field_name", "upper_field_name")}
    return {name: getattr(generated, name) for name in sorted(names - {None})}
