"""LiveCodeBench and generic stdin/stdout problems: whole programs judged by what they print."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from importlib import resources

import pytest

from aipo_env.tasks.code import code_task
from aipo_env.tasks.code_judge import same_output
from aipo_env.tasks.loading import DataError

SAMPLE = str(resources.files("aipo_env").joinpath("data/livecodebench_sample.jsonl"))
SUM = "a, b = map(int, input().split())\nprint(a + b)"
TOTALS = (
    "import sys\ndata = sys.stdin.buffer.read().split()\ntotal = 0\n"
    "for x in data[1:]:\n    total += int(x)\n    print(total)\nexit()"
)
TWO_SUM = (
    "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
    "        seen = {}\n        for i, x in enumerate(nums):\n"
    "            if target - x in seen:\n                return [seen[target - x], i]\n"
    "            seen[x] = i\n"
)


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.fixture(scope="module")
def task():
    code = code_task("livecodebench", data_path=SAMPLE, timeout=1.0)
    yield code
    code.close()


def test_stdin_and_functional_solutions_pass_public_and_private_tests(task):
    scores = task.score_many(
        [task.problem(i) for i in range(3)], [fenced(SUM), fenced(TOTALS), fenced(TWO_SUM)]
    )
    assert [score.reward for score in scores] == [1.0, 1.0, 1.0], [score.details for score in scores]
    assert [score.details["total"] for score in scores] == [3, 3, 3]  # 1 public + 2 private each
    prompt = task.prompt(task.problem(0))
    assert "1 2" in prompt and "-5 5" not in prompt  # private tests stay hidden


def test_wrong_output_fails_and_verify_shows_what_was_printed(task):
    wrong = task.score(task.problem(0), fenced("a, b = map(int, input().split())\nprint(a - b)"))
    assert wrong.reward == 0 and wrong.details["tests"][0]["outcome"] == "failed"
    reply = task.check(task.problem(0), fenced("print(4)"))
    assert "it printed '4\\n', expected '3\\n'" in reply


def test_output_is_compared_up_to_whitespace():
    assert same_output("1 2\n3  \n\n", "1 2\n3")
    assert same_output("  1   2\r\n", "1 2\n")
    assert not same_output("1 2 3", "1 2\n3")
    assert not same_output("3.0", "3")


def test_each_test_has_its_own_time_limit(task):
    looping_on_zero = "a, b = map(int, input().split())\nwhile a + b == 0:\n    pass\nprint(a + b)"
    score = task.score(task.problem(0), fenced(looping_on_zero))
    assert [test["outcome"] for test in score.details["tests"]] == ["passed", "timeout", "passed"]


def test_a_program_that_exits_early_or_crashes_passes_nothing(task):
    for program in ("import os\nos._exit(0)", "import sys\nsys.exit(3)", "raise SystemExit('3')"):
        score = task.score(task.problem(0), fenced(program))
        assert score.details["passed"] == 0, (program, score.details)


def test_generic_stdin_stdout_rows(tmp_path):
    rows = tmp_path / "problems.jsonl"
    rows.write_text(
        json.dumps(
            {
                "task_id": "echo",
                "question": "Print the input upper-cased.",
                "tests": [{"input": "abc\n", "output": "ABC\n"}, {"input": "x y\n", "output": "X Y\n"}],
            }
        )
        + "\n"
    )
    task = code_task("stdin_stdout", data_path=str(rows), timeout=1.0)
    try:
        assert task.score(task.problem(0), fenced("print(input().upper())")).correct
        assert task.problem(0).id == "stdin_stdout-echo"
    finally:
        task.close()
    with pytest.raises(ValueError, match="pass data_path="):
        code_task("stdin_stdout")


def test_bad_rows_get_clear_errors_and_pickled_objects_are_refused(tmp_path):
    rows = tmp_path / "lcb.jsonl"

    def write(**fields):
        row = {"question_content": "q", "public_test_cases": "[]", "private_test_cases": ""}
        rows.write_text(json.dumps({**row, **fields}) + "\n")

    write()
    with pytest.raises(DataError, match="no test cases"):
        code_task("livecodebench", data_path=str(rows))
    evil = base64.b64encode(zlib.compress(pickle.dumps(pickle.PickleError("x")))).decode()
    write(
        public_test_cases=json.dumps([{"input": "1", "output": "1", "testtype": "stdin"}]),
        private_test_cases=evil,
    )
    with pytest.raises(DataError, match="refusing"):
        code_task("livecodebench", data_path=str(rows))
    functional = [{"input": "1", "output": "1", "testtype": "functional"}]
    write(public_test_cases=json.dumps(functional), metadata="{}")
    with pytest.raises(DataError, match="func_name"):
        code_task("livecodebench", data_path=str(rows))
