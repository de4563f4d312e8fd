from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest

from aipo_env.tasks.arithmetic_rule import ArithmeticRuleTask
from algorithms.evaluation import evaluate, pass_at_k, spread_problems, write_result
from policies import ConsultFirst, NeverConsult


@pytest.mark.parametrize(("n", "c"), [(4, 0), (4, 1), (5, 2), (6, 6)])
def test_pass_at_k_is_the_chance_that_some_of_k_draws_is_correct(n: int, c: int) -> None:
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        draws = list(combinations(outcomes, k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(d) for d in draws) / len(draws))
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_evaluation_turns_consults_off_and_writes_json_and_png(tmp_path: Path) -> None:
    kwargs = {"level": 1, "max_turns": 3, "consult": "agents"}
    result = evaluate(
        ConsultFirst("reasoning"),
        "aipo/Arithmetic-v0",
        kwargs,
        problems=range(6),
        samples=2,
        batch_size=4,
        progress=False,
    )
    assert result.settings["env_kwargs"]["consult"] == "off"
    assert result.consults_attempted == 1.0  # asked once per episode, never answered
    assert [problem.index for problem in result.problems] == list(range(6))
    assert set(result.pass_at_k) == {1, 2} and result.pass_at_k[1] == pytest.approx(result.accuracy)
    json_path, png_path = write_result(result, tmp_path)
    saved = json.loads(json_path.read_text())
    assert saved["accuracy"] == result.accuracy and len(saved["problems"]) == 6
    assert png_path.read_bytes()[:4] == b"\x89PNG"


def test_a_policy_that_answers_right_scores_one() -> None:
    answers = NeverConsult(answer=lambda observation: _solve(observation))
    result = evaluate(
        answers, "aipo/Arithmetic-v0", {"level": 2}, problems=range(5), samples=1, progress=False
    )
    assert result.accuracy == 1.0 and result.accuracy_by_difficulty == {"2": 1.0}


def _solve(observation: str) -> str:
    import re

    start = int(re.search(r"Start with (-?\d+)", observation).group(1))
    for verb, number in re.findall(r"(add|subtract|multiply by) (\d+)", observation, flags=re.IGNORECASE):
        value = int(number)
        start = (
            start + value
            if verb.lower() == "add"
            else start - value
            if verb.lower() == "subtract"
            else start * value
        )
    return f"\\boxed{{{start}}}"


def test_a_sample_of_problems_spreads_over_the_whole_dataset() -> None:
    kwargs = {"operations": 2, "split": "test"}  # 116 problems, enumerated start by start
    sample = spread_problems("aipo/ArithmeticRule-v0", kwargs, 10)
    assert sample == [0, 11, 23, 34, 46, 58, 69, 81, 92, 104]
    task = ArithmeticRuleTask(2, "test")
    assert {task.problem(index).metadata["start"] for index in sample} >= {1, 5, 9}  # not the first 10
    assert spread_problems("aipo/ArithmeticRule-v0", kwargs, None) == list(range(116))
    assert spread_problems("aipo/ArithmeticRule-v0", kwargs, 500) == list(range(116))


def test_evaluation_with_the_helpers_answers_consults() -> None:
    kwargs = {"level": 1, "max_turns": 3}
    alone = evaluate(
        ConsultFirst("reasoning"), "aipo/Arithmetic-v0", kwargs, problems=range(4), progress=False
    )
    helped = evaluate(
        ConsultFirst("reasoning"),
        "aipo/Arithmetic-v0",
        kwargs,
        problems=range(4),
        progress=False,
        consult="agents",
    )
    assert (
        helped.settings["env_kwargs"]["consult"] == "agents"
        and alone.settings["env_kwargs"]["consult"] == "off"
    )
    assert alone.consults_attempted == helped.consults_attempted == 1.0  # counted, answered or not
    assert helped.accuracy == 1.0 > alone.accuracy  # the policy copies the Reasoning agent's answer
