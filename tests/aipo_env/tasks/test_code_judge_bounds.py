"""Nothing a program sends can make the trusted judge raise, hang or grow, and the task's own
helper functions decide the tests that call them.

Each case is a class of attack that held the judge before (the cases themselves are our own):
a helper redefined by the program, integers past ``str()``'s digit limit, values whose hashes
all collide, a lazy range, a reply that costs a GiB to parse, a test loop driven by a program's
number. Every score must come back quickly with reward 0 and without an exception.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest

from aipo_env.sandbox import Limits
from aipo_env.tasks.code import code_task

HUMANEVAL_SAMPLE = Path(__file__).parent / "fixtures" / "humaneval_sample.jsonl"
#: every integer below hashes to 0: Python reduces int hashes modulo this prime
_HASH_PRIME = 2**61 - 1


def _fenced(code: str) -> str:
    return f"```python\n{code}\n```"


def _task(tmp_path, *tests: str, dataset: str = "mbpp", **options):
    rows = [
        {
            "task_id": 1,
            "prompt": "Write value(x).",
            "code": "def value(x):\n    return x",
            "test_list": list(tests),
        }
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return code_task(dataset, data_path=str(path), timeout=1.0, limits=Limits(memory_mb=256), **options)


def _timed_score(task, program: str, seconds: float = 8.0):
    started = time.monotonic()
    score = task.score(task.problem(0), _fenced(program))
    assert time.monotonic() - started < seconds, f"the judge took {time.monotonic() - started:.1f} s"
    return score


# --- the task's helpers are trusted ------------------------------------------------------------


@pytest.fixture(scope="module")
def shifted():
    """HumanEval-style: the prompt defines ``shift_letters``; the tests call it on their words."""
    task = code_task("humaneval", data_path=str(HUMANEVAL_SAMPLE), timeout=2.0)
    problem = next(p for p in task.problems if p.metadata["entry_point"] == "unshift_letters")
    yield task, problem
    task.close()


def test_a_program_that_redefines_the_prompts_helper_does_not_decide_its_grade(shifted):
    task, problem = shifted
    identity = "def shift_letters(text):\n    return text\n\ndef unshift_letters(text):\n    return text"
    score = task.score(problem, _fenced(identity))
    assert score.reward == 0 and score.details["passed"] == 0, score.details


@pytest.mark.parametrize(
    "response",
    [
        "    return ''.join(chr((ord(c) - 97 - 3) % 26 + 97) if c.islower() else c for c in text)",
        # the whole function, using the prompt's helper without repeating it
        "def unshift_letters(text):\n    for _ in range(25):\n        text = shift_letters(text)\n    return text",
        # the whole prompt repeated, helper included
        "def shift_letters(text):\n    return ''.join(chr((ord(c) - 97 + 3) % 26 + 97) if c.islower() else c for c in text)\n"
        "def unshift_letters(text):\n    return ''.join(chr((ord(c) - 97 - 3) % 26 + 97) if c.islower() else c for c in text)",
    ],
    ids=["completion", "uses the helper", "repeats the helper"],
)
def test_honest_completions_pass_with_or_without_the_helper(shifted, response):
    task, problem = shifted
    score = task.score(problem, _fenced(response))
    assert score.correct, score.details


# --- the judge never raises -----------------------------------------------------------------------


def test_an_integer_past_the_digit_limit_in_a_tests_error_is_an_error_outcome(tmp_path):
    task = _task(tmp_path, "assert value(1) == 1", "assert {1: 'one'}[value(2)] == 'one'")
    score = _timed_score(task, "def value(x):\n    return 10 ** 5000 if x == 2 else x")
    tests = score.details["tests"]
    assert score.reward == 0 and tests[0]["outcome"] == "passed" and tests[1]["outcome"] == "error"
    task.close()


def test_a_forged_load_error_with_a_huge_number_is_no_load(tmp_path):
    task = _task(tmp_path, "assert value(1) == 1")
    forged = (
        "import os\n"
        "line = ('[\"load_error\", ' + '9' * 5000 + ']\\n').encode()\n"
        "hexed = ('[\"load_error\", [\"i\", \"0x' + 'f' * 40000 + '\"]]\\n').encode()\n"
        "for fd in range(3, 30):\n"
        "    for data in (line, hexed):\n"
        "        try:\n            os.write(fd, data)\n        except OSError:\n            pass\n"
        "os._exit(0)\n"
    )
    score = _timed_score(task, forged)
    assert score.reward == 0 and score.details["tests"][0]["outcome"] == "not_run", score.details
    task.close()


# --- the judge never hangs or grows ---------------------------------------------------------------


def test_values_whose_hashes_collide_are_refused_before_any_set_is_built(tmp_path):
    task = _task(tmp_path, "assert len(set(value(1))) == 1")
    colliding = f"def value(x):\n    return [k * {_HASH_PRIME} for k in range(1, 40001)]"
    score = _timed_score(task, colliding)
    assert score.reward == 0, score.details
    honest = _timed_score(task, "def value(x):\n    return [7] * 60000")
    assert honest.correct, honest.details
    task.close()


def test_a_forged_set_of_colliding_keys_cannot_hang_the_stdin_stdout_judge(tmp_path):
    rows = [{"question": "Print the sum.", "tests": [{"input": "1 2\n", "output": "3\n"}]}]
    path = tmp_path / "stdio.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = code_task("stdin_stdout", data_path=str(path), timeout=1.0)
    keys = ",".join(f'["i","{hex(k * _HASH_PRIME)}"]' for k in range(1, 40001))
    forged = (
        "import os\n"
        f'data = (\'["value", 1, ["set", [{keys}]]]\\n\').encode()\n'
        "for fd in range(3, 30):\n"
        "    try:\n        os.write(fd, data)\n    except OSError:\n        pass\n"
        "os._exit(0)\n"
    )
    score = _timed_score(task, forged)
    assert score.reward == 0, score.details
    task.close()


def test_a_lazy_range_cannot_make_a_test_iterate_for_ever(tmp_path):
    task = _task(tmp_path, "assert list(value(5)) == [0, 1, 2, 3, 4]", "assert sum(1 for _ in value(6)) == 6")
    huge = _timed_score(task, "def value(x):\n    return range(10 ** 18)")
    assert huge.reward == 0 and [t["outcome"] for t in huge.details["tests"]] == ["error", "error"]
    honest = _timed_score(task, "def value(x):\n    return range(x)")
    assert honest.correct, honest.details
    task.close()


def test_a_test_loop_driven_by_the_programs_number_stops_at_the_deadline(tmp_path):
    task = _task(tmp_path, "total = 0\nfor _ in range(value(3)):\n    total += 1\nassert total == 3")
    score = _timed_score(task, "def value(x):\n    return 10 ** 12", seconds=6.0)
    assert score.reward == 0 and score.details["tests"][0]["outcome"] == "timeout", score.details
    task.close()


def test_a_reply_of_many_small_nodes_costs_the_judge_little_memory(tmp_path):
    task = _task(tmp_path, "assert value(1) == 1")
    # 2 MiB of empty lists: about 1 GiB to parse as a Python literal, a few MiB as JSON
    program = "def value(x):\n    return [[] for _ in range(150000)]"
    tracemalloc.start()
    try:
        score = _timed_score(task, program)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert score.reward == 0
    assert peak < 200 * 2**20, f"the judge's peak was {peak / 2**20:.0f} MiB"
    task.close()
