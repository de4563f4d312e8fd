"""The built-in arithmetic family: determinism, difficulty, reference steps, scoring."""

from __future__ import annotations

import pytest

from aipo_env.agents.claims import evaluate
from aipo_env.tasks.arithmetic import LEVELS, ArithmeticTask, extract_integer


def test_problems_are_deterministic_and_splits_differ():
    train, again, test = (
        ArithmeticTask(level=8),
        ArithmeticTask(level=8),
        ArithmeticTask(level=8, split="test"),
    )
    assert train.problem(5) == again.problem(5)
    assert train.problem(5).question != test.problem(5).question
    assert ArithmeticTask(level=8, seed=1).problem(5).question != train.problem(5).question


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_steps_are_correct_and_chain_to_the_answer(level):
    task = ArithmeticTask(level=level)
    for index in range(20):
        problem = task.problem(index)
        assert len(problem.steps) == LEVELS[level].operations and problem.difficulty == level
        previous = None
        for step in problem.steps:
            left, right = step.split("=")
            assert evaluate(left) == evaluate(right)
            if previous is not None:
                assert left.split()[0] == previous
            previous = right.strip()
        assert previous == problem.answer


def test_difficulty_grows_with_level():
    def mean_digits(level: int) -> float:
        task = ArithmeticTask(level=level)
        return sum(len(task.problem(i).answer.lstrip("-")) for i in range(50)) / 50

    assert len(ArithmeticTask(level=1).problem(0).steps) == 1
    assert mean_digits(1) < mean_digits(5) < mean_digits(10)


def test_level_ranges_cycle_through_levels():
    task = ArithmeticTask(level=(2, 4))
    assert [task.problem(i).difficulty for i in range(6)] == [2, 3, 4, 2, 3, 4]


@pytest.mark.parametrize(
    ("response", "value"),
    [
        ("so \\boxed{42}", 42),
        ("\\boxed{-1,234}", -1234),
        ("The answer is 17.", 17),
        ("answer: $-3", -3),
        ("I get 12 and then 13", None),
        ("\\boxed{twelve}", None),
        ("", None),
    ],
)
def test_extract_integer(response, value):
    assert extract_integer(response) == value


def test_score_and_bad_arguments():
    task = ArithmeticTask(level=2)
    problem = task.problem(0)
    assert task.score(problem, f"\\boxed{{{problem.answer}}}").correct
    assert task.score(problem, f"\\boxed{{{int(problem.answer) + 1}}}").reward == 0.0
    for kwargs in ({"level": 0}, {"level": (5, 3)}, {"split": "dev"}, {"size": 0}):
        with pytest.raises(ValueError):
            ArithmeticTask(**kwargs)
    with pytest.raises(IndexError):
        task.problem(len(task))
