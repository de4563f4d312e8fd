"""MBPP and HumanEval rows as :class:`~aipo_env.tasks.base.Problem` objects with separate tests.

Every code problem carries, in ``metadata``:

* ``tests``: a list of ``{"source", "probe", "expected"}``; ``source`` is one test (statements
  that raise on failure), ``probe`` the expression whose value is reported when an
  ``assert probe == expected`` fails (``None`` for other shapes);
* ``setup``: code run after the candidate and before the tests (MBPP's ``test_imports``,
  HumanEval's helpers and ``candidate = <entry point>``);
* ``visible``: how many tests, counted from the first, are *visible*: shown in the prompt and
  run by the Verify agent. The others are *hidden*: only the final score runs them;
* ``entry_point`` and ``prefix``: HumanEval's function name, and the prompt that is put before
  a response that does not define that function (a completion of the body);
* ``helpers`` and ``targets`` (HumanEval): what the prompt defines besides the entry point
  (imports, helper functions such as HumanEval/38's ``encode_cyclic``), and the one name the
  program is asked to write. A test that calls a helper gets the prompt's own definition, run
  by the judge, never the program's: a program that redefines ``encode_cyclic`` cannot decide
  its own grade. The program runs after the helpers, so it may use them without repeating them.
  MBPP's prompt defines nothing, and its tests call only the function it asks for (all 257
  rows of the sanitized test split), so every name they use is the program's.

**Which tests are visible.** MBPP: the first ``test_list`` assert (the one MBPP's own
``prompt_w_code_header`` shows); the other asserts are hidden. HumanEval: ``check(candidate)``
is split into tests at its top-level statements that contain an ``assert`` (statements before
an assert, like imports or loops building inputs, belong to its test); the first test that
calls ``candidate`` is moved to the front and is visible, shown with ``candidate`` renamed to
the entry point. A ``check`` that cannot be split this way is one hidden test, ``check(f)``.
"""

from __future__ import annotations

import ast
from typing import Any

from aipo_env.tasks.base import Problem
from aipo_env.tasks.loading import DataError, Row

_MAX_STEPS = 24


def test_case(source: str, shown: str | None = None) -> dict[str, Any]:
    """One test with its probe: for ``assert A == B``, ``A`` is probed and ``B`` is expected.

    ``shown`` is how the test is displayed to the policy (default: ``source``).
    """
    probe = expected = None
    try:
        body = ast.parse(source).body
    except SyntaxError:
        body = []
    if len(body) == 1 and isinstance(body[0], ast.Assert):
        compared = body[0].test
        if (
            isinstance(compared, ast.Compare)
            and len(compared.ops) == 1
            and isinstance(compared.ops[0], ast.Eq)
        ):
            probe, expected = ast.unparse(compared.left), ast.unparse(compared.comparators[0])
    return {
        "source": source,
        "shown": source if shown is None else shown,
        "probe": probe,
        "expected": expected,
    }


def mbpp_problem(row: Row, *, source: str, visible: int) -> Problem:
    """An MBPP row (``prompt`` or ``text``, ``code``, ``test_list``, ``test_imports``)."""
    statement = row.text("prompt", "text")
    reference = row.text("code")
    tests = row.field("test_list")
    if not isinstance(tests, (list, tuple)) or not tests or not all(isinstance(t, str) for t in tests):
        raise DataError(
            f"{row.origin}, row {row.number}: field 'test_list' must be a non-empty list of asserts"
        )
    for test in tests:
        _require_python(row, "test_list", test)
    imports = row.data.get("test_imports") or []
    setup = "\n".join(imports) if isinstance(imports, (list, tuple)) else str(imports)
    _require_python(row, "test_imports", setup)
    shown = "\n".join(tests[:visible])
    question = statement
    if shown:
        question += f"\n\nYour code should pass {'this test' if visible == 1 else 'these tests'}:\n\n```python\n{shown}\n```"
    task_id = row.data.get("task_id")
    return Problem(
        id=f"{source}-{task_id if task_id is not None else row.number}",
        question=question,
        answer=reference,
        source=source,
        steps=_steps(reference),
        metadata={
            "tests": [test_case(test) for test in tests],
            "setup": setup,
            "visible": min(visible, len(tests)),
            "entry_point": None,
            "prefix": "",
        },
    )


def humaneval_problem(row: Row, *, source: str, visible: int) -> Problem:
    """A HumanEval row (``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``)."""
    prompt = str(row.field("prompt"))
    entry_point = row.text("entry_point")
    if not entry_point.isidentifier():
        raise DataError(f"{row.origin}, row {row.number}: entry_point {entry_point!r} is not a Python name")
    reference = prompt + str(row.field("canonical_solution"))
    test_source = str(row.field("test"))
    _require_python(row, "prompt", prompt)
    _require_python(row, "test", test_source)
    setup, tests, parameter = split_check(test_source, entry_point)
    displayed = [rename(test, parameter, entry_point) if parameter else test for test in tests]
    shown = displayed[:visible] if parameter else []
    question = f"Complete this Python function:\n\n```python\n{prompt.rstrip()}\n```"
    if shown:
        question += f"\n\nIt should pass {'this test' if len(shown) == 1 else 'these tests'}:\n\n"
        question += "```python\n" + "\n".join(shown) + "\n```"
    return Problem(
        id=str(row.data.get("task_id") or f"{source}-{row.number}"),
        question=question,
        answer=reference,
        source=source,
        steps=_steps(str(row.field("canonical_solution"))),
        metadata={
            "tests": [test_case(test, display) for test, display in zip(tests, displayed, strict=True)],
            "setup": setup,
            "visible": len(shown),
            "entry_point": entry_point,
            "prefix": prompt,
            "helpers": task_helpers(prompt, entry_point),
            "targets": [entry_point],
        },
    )


def split_check(test_source: str, entry_point: str) -> tuple[str, list[str], str | None]:
    """HumanEval's ``test`` as ``(setup, tests, check's parameter name)``; see the module docstring.

    The parameter is ``None`` when ``check`` could not be split and the only test is ``check(f)``.
    """
    tree = ast.parse(test_source)
    check = next(
        (node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "check"), None
    )
    whole = (test_source, [f"check({entry_point})"], None)
    if check is None or len(check.args.args) != 1 or check.args.vararg or check.args.kwonlyargs:
        return whole
    if any(
        isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom, ast.Nonlocal, ast.Global))
        for node in ast.walk(check)
    ):
        return whole  # statements that only make sense inside the function body
    units: list[list[ast.stmt]] = []
    pending: list[ast.stmt] = []
    for statement in check.body:
        pending.append(statement)
        if any(isinstance(node, ast.Assert) for node in ast.walk(statement)):
            units.append(pending)
            pending = []
    if not units:
        return whole
    units[-1].extend(pending)
    parameter = check.args.args[0].arg
    tests = [ast.unparse(ast.Module(body=unit, type_ignores=[])) for unit in units]
    first_call = next((i for i, test in enumerate(tests) if _names(test, ast.Load) & {parameter}), 0)
    earlier = set().union(*(_names(test, ast.Store) for test in tests[:first_call]))
    if not earlier & _names(tests[first_call], ast.Load):  # it must not need what earlier tests set up
        tests.insert(0, tests.pop(first_call))
    helpers = [node for node in tree.body if node is not check]
    setup = ast.unparse(ast.Module(body=helpers, type_ignores=[]))
    return f"{setup}\n{parameter} = {entry_point}\n", tests, parameter


def task_helpers(prompt: str, entry_point: str) -> str:
    """The top-level statements of ``prompt`` other than the definition of ``entry_point``."""
    body = ast.parse(prompt).body
    kept = [
        node
        for node in body
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)
    ]
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n" if kept else ""


def rename(source: str, old: str, new: str) -> str:
    """``source`` with the variable ``old`` renamed to ``new`` (for showing HumanEval tests)."""

    class Renamer(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            return ast.Name(new, node.ctx) if node.id == old else node

    return ast.unparse(Renamer().visit(ast.parse(source)))


def _names(source: str, context: type[ast.expr_context]) -> set[str]:
    """The variable names that ``source`` reads (``ast.Load``) or assigns (``ast.Store``)."""
    return {
        node.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Name) and isinstance(node.ctx, context)
    }


def _steps(code: str) -> tuple[str, ...]:
    """The reference code one non-blank line per step (the Reasoning agent reveals them in order)."""
    lines = [line.rstrip() for line in code.splitlines() if line.strip()]
    if len(lines) > _MAX_STEPS:
        lines = [*lines[: _MAX_STEPS - 1], "\n".join(lines[_MAX_STEPS - 1 :])]
    return tuple(lines)


def _require_python(row: Row, field: str, source: str) -> None:
    try:
        ast.parse(source)
    except SyntaxError as exc:
        raise DataError(
            f"{row.origin}, row {row.number}: field {field!r} is not valid Python ({exc.msg}, line {exc.lineno})"
        ) from exc
