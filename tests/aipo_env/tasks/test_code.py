"""The code task: extraction, MBPP and HumanEval adapters, rewards, info, and the visible-test Verify."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import aipo_env  # noqa: F401 - registers the ids
from aipo_env.sandbox import Limits
from aipo_env.tasks.code import code_task, extract_code, trim_stderr
from aipo_env.tasks.loading import DataError

HUMANEVAL_SAMPLE = Path(__file__).parent / "fixtures" / "humaneval_sample.jsonl"


def fenced(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\nDone."


@pytest.fixture(scope="module")
def builtin():
    task = code_task("builtin", timeout=2.0, limits=Limits(memory_mb=256))
    yield task
    task.close()


@pytest.fixture(scope="module")
def humaneval():
    task = code_task("humaneval", data_path=str(HUMANEVAL_SAMPLE), timeout=2.0)
    yield task
    task.close()


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("```python\na = 1\n```\ntext\n```py\nb = 2\n```", ("b = 2\n", True)),
        ("```\nplain = 1\n```", ("plain = 1\n", True)),
        ("```text\nnot code\n```\n```python\nlast = 1", ("last = 1", True)),
        ("def f():\n    return 1", ("def f():\n    return 1", False)),
    ],
)
def test_extract_code_takes_the_last_python_block_or_the_whole_response(response, expected):
    assert extract_code(response) == expected


def test_reference_solutions_pass_and_prompts_show_only_the_visible_test(builtin):
    problems = [builtin.problem(index) for index in range(len(builtin))]
    scores = builtin.score_many(problems, [fenced(problem.answer) for problem in problems])
    assert all(score.reward == 1.0 and score.correct for score in scores)
    first = problems[0]
    tests = [test["source"] for test in first.metadata["tests"]]
    prompt = builtin.prompt(first)
    assert tests[0] in prompt and not any(test in prompt for test in tests[1:])


def test_broken_solution_fails_with_per_test_outcomes(builtin):
    score = builtin.score(builtin.problem(0), fenced("def sum_of_squares(numbers):\n    return sum(numbers)"))
    assert score.reward == 0.0 and not score.correct
    details = score.details
    assert details["total"] == 3 and details["passed"] == 1
    assert [test["outcome"] for test in details["tests"]] == ["failed", "passed", "failed"]
    assert details["tests"][0]["detail"] == "it returned 6, expected 14"
    # hidden tests report their outcome only, never values that would give them away
    assert [test["detail"] for test in details["tests"][1:]] == ["passed", "failed"]
    assert details["status"] == "ok" and details["isolation"] in ("bwrap", "unshare", "none")


def test_partial_reward_is_the_fraction_of_tests_passed():
    task = code_task("builtin", partial=True, limit=1)
    try:
        score = task.score(task.problem(0), fenced("def sum_of_squares(numbers):\n    return sum(numbers)"))
    finally:
        task.close()
    assert score.reward == pytest.approx(1 / 3) and not score.correct


def test_errors_and_trimmed_stderr_are_reported(builtin):
    noisy = (
        "import sys\nsys.stderr.write('noise ' * 2000)\ndef sum_of_squares(numbers):\n    return numbers[99]"
    )
    score = builtin.score(builtin.problem(0), fenced(noisy))
    assert score.details["tests"][0] == {
        "index": 0,
        "visible": True,
        "outcome": "error",
        "detail": "IndexError: list index out of range",
    }
    stderr = score.details["stderr"]
    assert len(stderr) <= 2000 and stderr.startswith("[...] ") and stderr.endswith("noise ")
    assert trim_stderr("short") == "short"


def test_code_that_does_not_load_fails_every_test(builtin):
    score = builtin.score(builtin.problem(0), fenced("def sum_of_squares(:\n"))
    assert score.reward == 0.0 and "SyntaxError" in score.details["load_error"]
    assert {test["outcome"] for test in score.details["tests"]} == {"not_run"}


def test_verify_runs_the_visible_test_only(builtin):
    problem = builtin.problem(0)
    wrong = "def sum_of_squares(numbers):\n    return sum(numbers)"
    reply = builtin.check(problem, f"My attempt:\n{fenced(wrong)}\n")
    assert reply.startswith("Your code fails the visible example `assert sum_of_squares([1, 2, 3]) == 14`")
    assert "returned 6, expected 14" in reply
    # right on the visible test, wrong on a hidden one: Verify must not find out
    visible_only = "def sum_of_squares(numbers):\n    return 14 if numbers == [1, 2, 3] else -1"
    assert builtin.check(problem, fenced(visible_only)).startswith("Your code passes the 1 visible example")
    assert builtin.score(problem, fenced(visible_only)).reward == 0.0
    assert builtin.check(problem, "no code yet").startswith("No code to check")
    assert builtin.check(problem, fenced("1 +")).startswith("Your code does not run: SyntaxError")


def test_humaneval_tests_are_split_and_completions_of_the_body_accepted(humaneval):
    first = humaneval.problem(0)
    assert [test["source"] for test in first.metadata["tests"]][0] == "assert candidate(1) == 3"
    prompt = humaneval.prompt(first)
    assert "assert add_two(1) == 3" in prompt and "candidate" not in prompt
    problems = [humaneval.problem(index) for index in range(len(humaneval))]
    canonical = humaneval.score_many(problems, [fenced(problem.answer) for problem in problems])
    assert all(score.correct for score in canonical)
    body_only = humaneval.score(first, fenced("    return x + 2"))
    assert body_only.correct and body_only.details["total"] == 4
    broken = humaneval.score(first, fenced("def add_two(x):\n    return x + 1"))
    assert broken.details["passed"] == 1  # only the warm-up `assert True`


def test_humaneval_check_that_cannot_be_split_is_one_hidden_test(humaneval):
    problem = humaneval.problem(2)
    assert problem.metadata["visible"] == 0 and len(problem.metadata["tests"]) == 1
    assert humaneval.check(problem, fenced("def double(values):\n    return values")).startswith(
        "This problem has no visible examples"
    )
    assert humaneval.score(problem, fenced("def double(values):\n    return values * 2")).reward == 0.0
    # a whole function may use the prompt's imports without repeating them
    annotated = "def double(values: List[int]) -> List[int]:\n    return [2 * value for value in values]"
    assert humaneval.score(problem, fenced(annotated)).correct


@pytest.mark.slow
def test_canonical_mbpp_solutions_pass_and_a_broken_one_fails(shared_data):
    task = code_task("mbpp", data_path=str(shared_data / "mbpp_sanitized.jsonl"), timeout=10.0)
    try:
        problems = [task.problem(index) for index in range(len(task))]
        scores = task.score_many(problems, [fenced(problem.answer) for problem in problems])
        passed = sum(score.correct for score in scores)
        failures = [problem.id for problem, score in zip(problems, scores, strict=True) if not score.correct]
        assert len(problems) == 257 and passed / len(problems) >= 0.99, failures
        broken = problems[0].answer.replace("return s", "return s[::-1]")
        assert broken != problems[0].answer
        assert task.score(problems[0], fenced(broken)).reward == 0.0
    finally:
        task.close()


def test_bad_rows_and_arguments_get_clear_errors(tmp_path):
    rows = tmp_path / "mbpp.jsonl"
    rows.write_text(json.dumps({"prompt": "p", "code": "x = 1"}) + "\n")
    with pytest.raises(DataError, match="row 1: missing field 'test_list'"):
        code_task("mbpp", data_path=str(rows))
    rows.write_text(json.dumps({"prompt": "p", "code": "x = 1", "test_list": ["assert ("]}) + "\n")
    with pytest.raises(DataError, match="'test_list' is not valid Python"):
        code_task("mbpp", data_path=str(rows))
    with pytest.raises(ValueError, match="unknown code dataset 'apps'"):
        code_task("apps")
    with pytest.raises(ValueError, match="timeout"):
        code_task("builtin", timeout=0)


def test_code_env_passes_check_env_and_plays_an_episode_with_verify():
    env = gym.make("aipo/Code-v1", agents="reference", partial=True)
    try:
        check_env(env.unwrapped, skip_render_check=True)
        observation, info = env.reset(options={"index": 2})
        assert "is_prime" in observation and info["problem"]["source"] == "builtin"
        attempt = fenced("def is_prime(n):\n    return n % 2 == 1")
        observation, reward, terminated, _, info = env.step(f'{attempt}<consult agent="verify">ok?</consult>')
        assert (
            not terminated
            and '<feedback agent="verify">Your code passes the 1 visible example' in observation
        )
        observation, reward, terminated, _, info = env.step(attempt)
        assert terminated and 0 < reward < 1 and not info["correct"]
        assert [test["outcome"] for test in info["score_details"]["tests"]] == [
            "passed",
            "failed",
            "failed",
            "passed",
        ]
        assert info["episode"].consults["verify"] == 1
    finally:
        env.close()
