"""Whole programs judged by their output: LiveCodeBench rows and a generic stdin/stdout format.

**LiveCodeBench** (``dataset="livecodebench"``), in its public layout: ``question_title``,
``question_content``, ``starter_code``, ``public_test_cases`` and ``private_test_cases`` (each a
JSON list of ``{"input", "output", "testtype"}``; the private ones may also come as the release's
base64 of zlib-compressed pickled JSON), ``metadata`` (JSON; ``func_name`` for functional
problems), ``question_id``, ``platform``, ``difficulty``.

* ``testtype: "stdin"``: the program reads standard input and prints; it is run once per test
  and its output compared with the expected one up to whitespace (``code_judge.same_output``).
* ``testtype: "functional"`` (LeetCode): the program defines ``class Solution`` with the method
  ``func_name``; the input is one JSON value per line (the arguments) and the output a JSON value.
  Each becomes ``assert Solution().func_name(*args) == expected``, judged like MBPP's asserts;
  the program runs after ``from typing import *``, as in LiveCodeBench's own harness.

**Generic** (``dataset="stdin_stdout"``): ``question`` (or ``prompt``), ``tests``: a list of
``{"input", "output"}``, optional ``task_id``.

Public tests come first, so with ``visible_tests=1`` the first public test is visible (shown in
the prompt and run by Verify) and every private test is hidden.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from typing import Any

from aipo_env.tasks.base import Problem
from aipo_env.tasks.code_formats import test_case
from aipo_env.tasks.loading import DataError, Row

#: put before a functional program, as LiveCodeBench's own harness does (starter code uses ``List``)
_PREAMBLE = "from typing import *\n"


def livecodebench_problem(row: Row, *, source: str, visible: int) -> Problem:
    """A LiveCodeBench row (see the module docstring)."""
    statement = row.text("question_content")
    title = str(row.data.get("question_title") or "")
    starter = str(row.data.get("starter_code") or "")
    cases = _cases(row, "public_test_cases") + _cases(row, "private_test_cases", optional=True)
    if not cases:
        raise DataError(
            f"{row.origin}, row {row.number}: no test cases in public_test_cases/private_test_cases"
        )
    kinds = {case.get("testtype", "stdin") for case in cases}
    if len(kinds) != 1 or not kinds <= {"stdin", "functional"}:
        raise DataError(
            f"{row.origin}, row {row.number}: test cases must all be 'stdin' or all 'functional', got {sorted(kinds)}"
        )
    question = f"{title}\n\n{statement}".strip()
    identifier = f"{source}-{row.data.get('question_id') or row.number}"
    if kinds == {"stdin"}:
        question += "\n\nRead the input from standard input and print the answer to standard output."
        return _stdio(identifier, question, cases, source, visible)
    function = _function_name(row)
    tests = [_functional_test(row, function, case) for case in cases]
    question += f"\n\nComplete this code:\n\n```python\n{starter.rstrip()}\n```" if starter else ""
    return _problem(
        identifier,
        question,
        source,
        tests,
        min(visible, len(tests)),
        targets=["Solution"],
        preamble=_PREAMBLE,
    )


def stdio_problem(row: Row, *, source: str, visible: int) -> Problem:
    """A generic row: ``question`` (or ``prompt``), ``tests`` as ``[{"input", "output"}]``."""
    question = row.text("question", "prompt")
    tests = row.field("tests")
    if not isinstance(tests, list) or not tests or not all(_is_case(case) for case in tests):
        raise DataError(
            f"{row.origin}, row {row.number}: field 'tests' must be a non-empty list of "
            "{'input': str, 'output': str}"
        )
    identifier = f"{source}-{row.data.get('task_id') or row.number}"
    return _stdio(identifier, question, tests, source, visible)


def _stdio(identifier: str, question: str, cases: list[dict], source: str, visible: int) -> Problem:
    tests = [
        {
            "source": None,
            "stdin": case["input"],
            "stdout": case["output"],
            "shown": f"input:\n{case['input']}\nexpected output:\n{case['output']}",
            "probe": None,
            "expected": repr(case["output"]),
        }
        for case in cases
    ]
    count = min(visible, len(tests))
    if count:
        examples = "\n\n".join(test["shown"] for test in tests[:count])
        question += f"\n\nYour program should pass {'this example' if count == 1 else 'these examples'}:\n\n{examples}"
    return _problem(identifier, question, source, tests, count, format="stdio")


def _problem(
    identifier: str, question: str, source: str, tests: list[dict], visible: int, **extra: Any
) -> Problem:
    """A problem without a reference solution, in the code task's metadata layout."""
    metadata = {"tests": tests, "setup": "", "visible": visible, "entry_point": None, "prefix": "", **extra}
    return Problem(id=identifier, question=question, answer="", source=source, metadata=metadata)


def _cases(row: Row, field: str, *, optional: bool = False) -> list[dict[str, Any]]:
    raw = row.data.get(field)
    if raw in (None, "", []) and optional:
        return []
    if raw is None:
        raise DataError(f"{row.origin}, row {row.number}: missing field {field!r}")
    try:
        cases = raw if isinstance(raw, list) else json.loads(raw) if raw.lstrip()[:1] == "[" else _unpack(raw)
    except (ValueError, TypeError, zlib.error, pickle.UnpicklingError, AttributeError) as exc:
        raise DataError(
            f"{row.origin}, row {row.number}: field {field!r} is not a list of test cases ({exc})"
        ) from exc
    if not isinstance(cases, list) or not all(_is_case(case) for case in cases):
        raise DataError(
            f"{row.origin}, row {row.number}: field {field!r} must be a list of {{'input', 'output'}}"
        )
    return cases


def _unpack(raw: str) -> Any:
    """The release's compressed form: base64 of zlib of a pickled JSON string. The unpickler
    refuses every global, so only plain strings can come out of it."""
    payload = zlib.decompress(base64.b64decode(raw.encode("utf-8")))
    text = _StringsOnly(io.BytesIO(payload)).load()
    if not isinstance(text, str):
        raise TypeError("the compressed test cases are not a JSON string")
    return json.loads(text)


class _StringsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name} in compressed test cases")


def _is_case(case: Any) -> bool:
    return (
        isinstance(case, dict) and isinstance(case.get("input"), str) and isinstance(case.get("output"), str)
    )


def _function_name(row: Row) -> str:
    metadata = row.data.get("metadata") or {}
    try:
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    except ValueError as exc:
        raise DataError(f"{row.origin}, row {row.number}: field 'metadata' is not JSON") from exc
    name = metadata.get("func_name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name.isidentifier():
        raise DataError(f"{row.origin}, row {row.number}: functional tests need metadata.func_name")
    return name


def _functional_test(row: Row, function: str, case: dict[str, str]) -> dict[str, Any]:
    try:
        arguments = [json.loads(line) for line in case["input"].splitlines() if line.strip()]
        expected = json.loads(case["output"])
    except ValueError as exc:
        raise DataError(
            f"{row.origin}, row {row.number}: a functional test case is not JSON ({exc})"
        ) from exc
    call = f"Solution().{function}({', '.join(map(repr, arguments))})"
    return test_case(f"assert {call} == {expected!r}")
