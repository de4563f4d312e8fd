"""Programs that try to get a code reward without solving the problem get nothing.

One test per class of attack that scored 1.0 before the judge left the sandbox: objects that
compare equal to anything, rewriting the tests, forging the pass report, and reading the hidden
tests' expected values. Each attack is written as a model would write it, against the bundled
``sum_of_squares`` problem (tests: ``[1, 2, 3] -> 14``, ``[] -> 0``, ``[-4, 5] -> 41``; the first
one visible).
"""

from __future__ import annotations

import json

import pytest

from aipo_env.sandbox import Limits
from aipo_env.tasks.code import code_task

_HIDDEN = ("assert sum_of_squares([]) == 0", "assert sum_of_squares([-4, 5]) == 41")


@pytest.fixture(scope="module")
def task():
    code = code_task("builtin", timeout=1.0, limits=Limits(memory_mb=256))
    yield code
    code.close()


def _score(task, program: str):
    return task.score(task.problem(0), f"```python\n{program}\n```")


_ALWAYS_EQUAL = {
    "__eq__ always true": "class Anything:\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = object.__hash__\n"
    "def sum_of_squares(numbers):\n    return Anything()",
    "int subclass": "class Int(int):\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = int.__hash__\n"
    "def sum_of_squares(numbers):\n    return Int(-1)",
    "truthy __eq__ result": "class Yes:\n    def __bool__(self):\n        return True\n"
    "class Anything:\n    def __eq__(self, other):\n        return Yes()\n"
    "    def __ne__(self, other):\n        return Yes()\n"
    "def sum_of_squares(numbers):\n    return Anything()",
    "list subclass": "class L(list):\n    def __eq__(self, other):\n        return True\n"
    "def sum_of_squares(numbers):\n    return L()",
    "shadowed builtins and modules": "import builtins\nclass Anything:\n    def __eq__(self, other):\n"
    "        return True\nbool = lambda *a: True\nisinstance = lambda *a: True\n"
    "math = type('M', (), {'isclose': staticmethod(lambda *a, **k: True)})\n"
    "def sum_of_squares(numbers):\n    return Anything()",
}


@pytest.mark.parametrize("attack", list(_ALWAYS_EQUAL))
def test_objects_that_equal_anything_never_pass(task, attack):
    score = _score(task, _ALWAYS_EQUAL[attack])
    assert score.reward == 0 and score.details["passed"] == 0, score.details


_TAMPERING = {
    "rewrite the tests through gc": "import gc\n"
    "for obj in gc.get_objects():\n"
    "    if isinstance(obj, list) and any(isinstance(x, dict) and 'source' in x for x in obj):\n"
    "        for test in obj:\n            test['source'] = 'pass'\n"
    "    if isinstance(obj, dict) and 'tests' in obj:\n        obj['tests'] = []\n"
    "def sum_of_squares(numbers):\n    return -1",
    "rewrite the tests through frames": "import sys\n"
    "frame = sys._getframe()\n"
    "while frame is not None:\n"
    "    for scope in (frame.f_locals, frame.f_globals):\n"
    "        for key, value in list(scope.items()):\n"
    "            if isinstance(value, (list, dict)) and key not in ('__builtins__',):\n"
    "                try:\n                    value.clear()\n                except Exception:\n"
    "                    pass\n"
    "    frame = frame.f_back\n"
    "def sum_of_squares(numbers):\n    return -1",
    "forge pass reports on every descriptor": "import json, os\n"
    "lines = [json.dumps(['value', i, ['i', hex(14)]]) for i in range(1, 10)]\n"
    "lines += [repr(('test', i, 'passed', '')) for i in range(3)] + [repr(('done',))]\n"
    "for fd in list(range(0, 40)) + [int(n) for n in os.listdir('/proc/self/fd')]:\n"
    "    try:\n        os.write(fd, ('\\n'.join(lines) + '\\n').encode())\n    except OSError:\n        pass\n"
    "for pid in ('1', 'self'):\n"
    "    try:\n        for name in os.listdir(f'/proc/{pid}/fd'):\n"
    "            try:\n                fd = os.open(f'/proc/{pid}/fd/{name}', os.O_WRONLY)\n"
    "                os.write(fd, ('\\n'.join(lines) + '\\n').encode())\n"
    "            except OSError:\n                pass\n"
    "    except OSError:\n        pass\n"
    "def sum_of_squares(numbers):\n    return -1",
    "forge the report from inside the call": "import json, os\n"
    "def sum_of_squares(numbers):\n"
    "    for fd in range(3, 20):\n"
    "        for i in range(1, 5):\n"
    "            try:\n                os.write(fd, (json.dumps(['value', i, ['i', hex(14)]]) + '\\n').encode())\n"
    "            except OSError:\n                pass\n"
    "    os._exit(0)",
    "exit before the tests": "import os\nos._exit(0)",
    "SystemExit in the call": "def sum_of_squares(numbers):\n    raise SystemExit(0)",
}


@pytest.mark.parametrize("attack", list(_TAMPERING))
def test_tampering_with_tests_or_reports_never_passes(task, attack):
    score = _score(task, _TAMPERING[attack])
    assert score.reward == 0, score.details
    # the visible test's answer is in the prompt, so a forged 14 is only a hard-coded answer;
    # the hidden tests' answers are nowhere the program can reach
    hidden = [test["outcome"] for test in score.details["tests"] if not test["visible"]]
    assert "passed" not in hidden, score.details


def test_the_program_never_holds_the_hidden_tests(task):
    """Search every place a program can look; the hidden tests and their values are not there."""
    program = (
        "import gc, os, sys\n"
        "seen = []\n"
        "def look(value):\n"
        "    if isinstance(value, (str, bytes)):\n"
        "        seen.append(value if isinstance(value, str) else value.decode(errors='replace'))\n"
        "for obj in gc.get_objects():\n"
        "    if isinstance(obj, dict):\n"
        "        for key, value in list(obj.items()):\n            look(key)\n            look(value)\n"
        "    elif isinstance(obj, (list, tuple)):\n"
        "        for value in obj:\n            look(value)\n"
        "frame = sys._getframe()\n"
        "while frame is not None:\n"
        "    for value in list(frame.f_locals.values()) + list(frame.f_code.co_consts):\n        look(value)\n"
        "    frame = frame.f_back\n"
        "for pid in ('self', '1'):\n"
        "    for name in ('cmdline', 'environ'):\n"
        "        try:\n            look(open(f'/proc/{pid}/{name}', 'rb').read())\n"
        "        except OSError:\n            pass\n"
        "calls = []\n"
        "def sum_of_squares(numbers):\n"
        "    calls.append(numbers)\n"
        "    found = [text for text in seen if 'assert' in text or '== 41' in text]\n"
        "    sys.stderr.write(repr(found)[:100000])\n"
        "    return -1\n"
    )
    score = _score(task, program)
    assert score.reward == 0
    stderr = score.details["stderr"]
    assert not any(hidden in stderr for hidden in _HIDDEN)
    assert "41" not in stderr and "== 0" not in stderr


def test_honest_solutions_still_pass_and_get_useful_details(task):
    right = _score(task, "def sum_of_squares(numbers):\n    return sum(n * n for n in numbers)")
    assert right.correct and right.details["passed"] == 3
    # a generator is not a list: the same result as running the assertion directly
    lazy = _score(task, "def sum_of_squares(numbers):\n    return (n * n for n in numbers)")
    assert lazy.reward == 0 and lazy.details["tests"][0]["detail"].startswith("it returned <iterator")
    wrong = task.check(
        task.problem(0), "```python\ndef sum_of_squares(numbers):\n    return sum(numbers)\n```"
    )
    assert "returned 6, expected 14" in wrong


def test_objects_of_the_program_stay_in_the_sandbox_and_can_be_used(tmp_path):
    """A test that builds the program's own objects (MBPP's ``Pair``) and calls methods on them."""
    rows = tmp_path / "mbpp.jsonl"
    rows.write_text(
        '{"task_id": 7, "prompt": "Pairs.", "code": "class Pair:\\n    def __init__(self, a, b):\\n'
        "        self.a, self.b = a, b\\n    def total(self):\\n        return self.a + self.b\\n"
        'def longest(pairs):\\n    return max(p.b - p.a for p in pairs)", "test_list": '
        '["assert longest([Pair(1, 5), Pair(2, 3)]) == 4", "assert Pair(2, 3).total() == 5", '
        '"assert Pair(1, 2) != Pair(1, 2)"]}\n'
    )
    task = code_task("mbpp", data_path=str(rows), timeout=1.0)
    try:
        problem = task.problem(0)
        score = task.score(problem, f"```python\n{problem.answer}\n```")
        assert score.correct, score.details
    finally:
        task.close()


def test_a_program_that_blocks_its_timer_times_out_and_ends(task):
    program = (
        "import signal\n"
        "def sum_of_squares(numbers):\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\n"
        "    while True:\n        pass\n"
    )
    score = _score(task, program)
    outcomes = [test["outcome"] for test in score.details["tests"]]
    assert score.reward == 0 and outcomes[0] == "timeout" and set(outcomes[1:]) <= {"not_run"}


def test_verify_replies_cannot_carry_the_hosts_files(task):
    """The Verify agent runs code in the same sandbox: what a program can read, it could print
    into the consult's reply, so it must not be able to read the parent's files."""
    import secrets
    from pathlib import Path

    secret = secrets.token_hex(16)
    home_file = Path.home() / f".aipo-verify-leak-{secret[:8]}"
    home_file.write_text(secret)
    try:
        program = (
            "found = []\n"
            f"for path in [{str(home_file)!r}, '/etc/shadow']:\n"
            "    try:\n        found.append(open(path).read())\n    except OSError as exc:\n"
            "        found.append(type(exc).__name__)\n"
            "raise RuntimeError(' '.join(found))\n"
        )
        reply = task.check(task.problem(0), f"```python\n{program}\n```")
    finally:
        home_file.unlink()
    assert reply.startswith("Your code does not run: RuntimeError")
    assert secret not in reply and "root:" not in reply


def _is_even_task(tmp_path, *tests: str):
    """An MBPP file of one problem (``is_even``) with the given asserts."""
    rows = tmp_path / "mbpp.jsonl"
    row = {"task_id": 1, "prompt": "Is n even?", "code": "def is_even(n):\n    return n % 2 == 0"}
    rows.write_text(json.dumps({**row, "test_list": list(tests)}) + "\n")
    return code_task("mbpp", data_path=str(rows), timeout=1.0)


def test_objects_and_iterators_have_no_truth_value(tmp_path):
    """``assert f(x)`` (HumanEval has such tests) must not pass for any object at all."""
    task = _is_even_task(tmp_path, "assert is_even(4)", "assert not is_even(3)")
    try:
        problem = task.problem(0)
        assert task.score(problem, "```python\ndef is_even(n):\n    return n % 2 == 0\n```").correct
        for trick in ("object()", "iter([])", "(x for x in [1])"):
            score = task.score(problem, f"```python\ndef is_even(n):\n    return {trick}\n```")
            assert score.details["tests"][0]["outcome"] == "error", (trick, score.details)
    finally:
        task.close()


def test_a_stop_iteration_from_the_program_cannot_end_a_tests_loop_early(tmp_path):
    task = _is_even_task(tmp_path, "assert all(map(is_even, [2, 4, 6]))")
    try:
        score = task.score(task.problem(0), "```python\ndef is_even(n):\n    raise StopIteration\n```")
        assert score.reward == 0 and score.details["tests"][0]["outcome"] == "error", score.details
    finally:
        task.close()
