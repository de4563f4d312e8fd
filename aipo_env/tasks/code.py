"""Code tasks: write a Python function that passes the problem's tests, run in a sandbox.

The final response's code is its last fenced block marked ``python``/``py`` or unmarked (an
unclosed last fence counts up to the end), or the whole response when it has no such block.
For HumanEval, a response that does not define the entry point is taken as a completion of the
function body and put after the prompt. The code runs once per scoring, with every test, in an
:class:`~aipo_env.sandbox.Sandbox`, where :mod:`aipo_env.tasks.code_harness` serves the judge's calls.

**Who decides.** The sandboxed process only loads the program and answers calls on it; the
tests, their expected values and their assertions run in this process, the trusted judge of
:mod:`aipo_env.tasks.code_judge`, and only plain data crosses between the two. So a program
can neither see what it is tested against nor hand back an object that games the comparison.

Reward: 1 when every test passes, else 0; with ``partial=True``, the fraction of tests passed.
``Score.details`` lists each test's outcome (``passed``, ``failed``, ``error``, ``timeout`` or
``not_run``), the execution status and the end of its standard error.

Visible and hidden tests are described in :mod:`aipo_env.tasks.code_formats` (MBPP, HumanEval)
and :mod:`aipo_env.tasks.code_livecodebench` (LiveCodeBench, whole programs on stdin/stdout). The Verify agent
(:meth:`CodeTask.check`) runs the policy's latest code on the visible tests only and reports
the first failure; hidden tests never reach the policy, not even their outcome details.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from aipo_env.sandbox import ExecutionResult, Job, Limits, Mode, Sandbox
from aipo_env.tasks.base import ListedTask, Problem, Score
from aipo_env.tasks.code_formats import humaneval_problem, mbpp_problem
from aipo_env.tasks.code_judge import Verdict, defined_names, judge, judge_output
from aipo_env.tasks.code_livecodebench import livecodebench_problem, stdio_problem
from aipo_env.tasks.loading import read_rows

DATASETS = ("builtin", "mbpp", "humaneval", "livecodebench", "stdin_stdout")
_HUB = {
    "mbpp": ("google-research-datasets/mbpp", "sanitized", "test"),
    "humaneval": ("openai/openai_humaneval", None, "test"),
    "livecodebench": ("livecodebench/code_generation_lite", None, "test"),
}
_ADAPTERS = {
    "mbpp": mbpp_problem,
    "humaneval": humaneval_problem,
    "livecodebench": livecodebench_problem,
    "stdin_stdout": stdio_problem,
}
_HARNESS = Path(__file__).with_name("code_harness.py").read_text(encoding="utf-8")
_PYTHON_FENCES = frozenset({"python", "python3", "py", ""})
_STDERR_CHARS = 2000
_CODE_CHARS = 4000
_STARTUP_SECONDS = 2.0

_KNOWLEDGE: tuple[dict[str, Any], ...] = (
    {
        "title": "Testing a function",
        "text": "Run the examples by hand: call the function on each example input and compare "
        "with the expected output, including edge cases such as empty inputs and single elements.",
        "tags": ["test", "tests", "assert", "example", "edge", "function", "code"],
    },
    {
        "title": "Python sorting",
        "text": "sorted(items, key=f, reverse=False) returns a new list and is stable; list.sort() "
        "sorts in place and returns None.",
        "tags": ["sort", "sorted", "order", "list", "python", "key"],
    },
    {
        "title": "Python strings",
        "text": "Strings are immutable: s.replace(a, b), s[::-1], ''.join(parts) and s.split() return "
        "new objects; s[i:j] excludes index j.",
        "tags": ["string", "strings", "reverse", "replace", "split", "join", "slice", "python"],
    },
    {
        "title": "Python dictionaries and counting",
        "text": "collections.Counter(items) counts occurrences; dict.get(key, default) avoids "
        "KeyError; iterating a dict yields its keys in insertion order.",
        "tags": ["count", "counter", "dictionary", "dict", "frequency", "occurrence", "python"],
    },
)


class CodeTask(ListedTask):
    """Python programming problems scored by their tests in a sandbox.

    Args:
        problems: the problems (see :mod:`aipo_env.tasks.code_formats` for their metadata).
        partial: reward the fraction of tests passed instead of all-or-nothing.
        timeout: seconds each test may take; one execution may take ``timeout * (tests + 1)``
            plus two seconds of start-up, wall-clock and CPU.
        limits: the other sandbox limits (memory, processes, output, files).
        isolation: the sandbox's isolation mode (``"auto"`` picks the strongest that works).
        unsafe_run_as_root: let model code run as root where no mode can drop privileges
            (see :class:`~aipo_env.sandbox.Sandbox`); without it such a machine refuses here.
        workers: sandboxed executions that may run at once (:meth:`score_many`).
    """

    name = "code"
    answer_format = (
        "Write your complete solution in one ```python code block; the last such block in your "
        "final response is run against the tests."
    )

    def __init__(
        self,
        problems: Sequence[Problem],
        *,
        partial: bool = False,
        timeout: float = 4.0,
        limits: Limits | None = None,
        isolation: Mode | Literal["auto"] = "auto",
        workers: int = 2,
        unsafe_run_as_root: bool = False,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds per test, got {timeout!r}")
        self.problems = list(problems)
        self.partial, self.timeout = partial, float(timeout)
        self.limits = limits or Limits()
        self.sandbox = Sandbox(
            self.limits, workers=workers, isolation=isolation, unsafe_run_as_root=unsafe_run_as_root
        )
        self.sandbox.isolation  # noqa: B018 - refuse now, not at the first answer, when nothing is safe

    def score(self, problem: Problem, response: str) -> Score:
        """Run the response's code against all of the problem's tests."""
        program = self.program(problem, response)
        job = self._job(problem, program, problem.metadata["tests"])
        run, verdict = self.sandbox.converse(job.source, job.dialogue, limits=job.limits)
        return self._score(problem, program, run, verdict)

    def score_many(
        self, problems: Sequence[Problem], responses: Sequence[str], *, progress: bool = False
    ) -> list[Score]:
        """Score many responses, ``workers`` sandboxed executions at a time."""
        if len(problems) != len(responses):
            raise ValueError(f"got {len(problems)} problems but {len(responses)} responses")
        programs = [
            self.program(problem, response) for problem, response in zip(problems, responses, strict=True)
        ]
        jobs = [
            self._job(problem, code, problem.metadata["tests"])
            for problem, code in zip(problems, programs, strict=True)
        ]
        runs = self.sandbox.run_many(jobs, progress=progress)
        return [
            self._score(problem, code, run, verdict)
            for problem, code, (run, verdict) in zip(problems, programs, runs, strict=True)
        ]

    def check(self, problem: Problem, claim: str) -> str:
        """The Verify agent's reply: the policy's latest code run on the visible tests only."""
        code, fenced = extract_code(claim)
        if not fenced:
            return "No code to check yet: write your solution in a ```python block, then ask again."
        visible = problem.metadata["tests"][: problem.metadata["visible"]]
        if not visible:
            return "This problem has no visible examples to run your code on."
        program = self.program(problem, claim)
        job = self._job(problem, program, visible)
        run, verdict = self.sandbox.converse(job.source, job.dialogue, limits=job.limits)
        loaded, outcomes = outcomes_of(verdict)
        if isinstance(loaded, str):
            return f"Your code does not run: {loaded}."
        for test, (outcome, detail) in zip(visible, outcomes, strict=True):
            if outcome != "passed":
                return f"Your code fails the visible example `{_shown(test)}`: {_explain(outcome, detail, test, run)}."
        count = len(visible)
        return (
            f"Your code passes the {count} visible example{'s' if count > 1 else ''}. "
            "The hidden tests were not run."
        )

    def program(self, problem: Problem, response: str) -> str:
        """The program that is run for ``response``.

        HumanEval: a response that defines the entry point runs after the prompt's imports and
        helpers (it may use ``List`` or a helper function without repeating it, as the prompt
        did); any other response is a completion of the body and runs after the whole prompt.
        """
        code, _ = extract_code(response)
        entry_point = problem.metadata.get("entry_point")
        if not entry_point:
            return problem.metadata.get("preamble", "") + code
        prefix = problem.metadata["prefix"]
        if re.search(rf"^[ \t]*(async[ \t]+)?def[ \t]+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
            helpers = problem.metadata.get("helpers")
            if helpers is None:  # a problem built before helpers were recorded: its imports
                helpers = "".join(
                    line for line in prefix.splitlines(True) if re.match(r"(import|from)\s", line)
                )
            return f"{helpers}\n{code}" if helpers else code
        return prefix + code

    def knowledge(self) -> Sequence[Mapping[str, Any]]:
        return _KNOWLEDGE

    def close(self) -> None:
        self.sandbox.close()

    def _job(self, problem: Problem, program: str, tests: Sequence[Mapping[str, Any]]) -> Job:
        seconds = self.timeout * (len(tests) + 1) + _STARTUP_SECONDS
        limits = replace(self.limits, wall_seconds=seconds, cpu_seconds=seconds)
        load_seconds = self.timeout + _STARTUP_SECONDS
        if problem.metadata.get("format") == "stdio":
            cases = [(test["stdin"], test["stdout"]) for test in tests]
            dialogue = judge_output(program, cases, timeout=self.timeout, load_seconds=load_seconds)
        else:
            dialogue = judge(
                program,
                problem.metadata["setup"],
                [test["source"] for test in tests],
                targets=frozenset(problem.metadata.get("targets") or defined_names(problem.answer)),
                helpers=problem.metadata.get("helpers", ""),
                timeout=self.timeout,
                load_seconds=load_seconds,
            )
        return Job(_HARNESS, limits=limits, dialogue=dialogue)

    def _score(self, problem: Problem, code: str, run: ExecutionResult, verdict: Verdict) -> Score:
        tests = problem.metadata["tests"]
        visible = problem.metadata["visible"]
        loaded, outcomes = outcomes_of(verdict)
        passed = sum(outcome == "passed" for outcome, _ in outcomes)
        total = len(tests)
        reward = passed / total if self.partial else float(passed == total)
        details = {
            "passed": passed,
            "total": total,
            "tests": [
                {
                    "index": index,
                    "visible": index < visible,
                    "outcome": outcome,
                    # a hidden test's detail would leak its expected values
                    "detail": _explain(outcome, detail, test, run) if index < visible else outcome,
                }
                for index, (test, (outcome, detail)) in enumerate(zip(tests, outcomes, strict=True))
            ],
            "load_error": loaded if isinstance(loaded, str) else None,
            "status": run.status,
            "execution": run.describe(),
            "isolation": run.isolation,
            "stderr": trim_stderr(run.stderr),
        }
        return Score(reward, passed == total, code[:_CODE_CHARS], details)


def extract_code(response: str) -> tuple[str, bool]:
    """The last fenced Python (or unmarked) block of ``response``, and whether there was one.

    Fences are lines that start with three backticks; the opening one may name a language, and
    only ``python``, ``python3``, ``py`` or no name count. An unclosed last block runs to the end.
    """
    blocks: list[str] = []
    language: str | None = None  # None: outside a block
    lines: list[str] = []
    for line in response.splitlines(keepends=True):
        fence = line.strip()
        if language is None and fence.startswith("```"):
            language, lines = fence[3:].strip().lower(), []
        elif language is not None and fence == "```":
            if language in _PYTHON_FENCES:
                blocks.append("".join(lines))
            language = None
        elif language is not None:
            lines.append(line)
    if language in _PYTHON_FENCES:
        blocks.append("".join(lines))
    if blocks:
        return blocks[-1], True
    return response, False


def outcomes_of(verdict: Verdict) -> tuple[bool | str, list[tuple[str, str]]]:
    """The judge's ``(loaded, [(outcome, detail)])``; a load error is every test's detail."""
    loaded, outcomes = verdict.loaded, verdict.outcomes
    if isinstance(loaded, str):
        outcomes = [(outcome, detail or f"the code did not load: {loaded}") for outcome, detail in outcomes]
    return loaded, outcomes


def trim_stderr(stderr: str, limit: int = _STDERR_CHARS) -> str:
    """The end of ``stderr`` (where tracebacks end), at most ``limit`` characters."""
    return stderr if len(stderr) <= limit else "[...] " + stderr[-(limit - 6) :]


def code_task(
    dataset: str = "builtin",
    *,
    data_path: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    visible_tests: int = 1,
    **options: Any,
) -> CodeTask:
    """Build the code task named ``dataset``.

    Args:
        dataset: ``"builtin"`` (a few bundled problems in the MBPP format, offline), ``"mbpp"``,
            ``"humaneval"``, ``"livecodebench"`` or ``"stdin_stdout"`` (whole programs judged
            by their output; see :mod:`aipo_env.tasks.code_livecodebench`, and its bundled
            sample ``aipo_env/data/livecodebench_sample.jsonl``).
        data_path: a local JSONL, JSON, Parquet or CSV file in that format; without it the
            Hugging Face hub is used (``google-research-datasets/mbpp`` ``sanitized``,
            ``openai/openai_humaneval``, ``livecodebench/code_generation_lite``;
            ``stdin_stdout`` needs a file).
        split: the hub split (default ``test``).
        limit: keep the first ``limit`` problems.
        visible_tests: how many tests, from the first, are shown and checked by Verify.
        options: :class:`CodeTask` keywords (``partial``, ``timeout``, ``limits``, ...).

    Raises:
        ValueError: an unknown dataset, a negative ``visible_tests``, or ``data_path`` with ``builtin``.
        DataError: a missing file or field, or a test that is not valid Python.
    """
    if visible_tests < 0:
        raise ValueError(f"visible_tests must be >= 0, got {visible_tests}")
    if dataset == "builtin":
        if data_path is not None:
            raise ValueError(
                "dataset='builtin' uses the bundled problems; pass dataset='mbpp' to read data_path"
            )
        bundled = resources.files("aipo_env").joinpath("data/code_builtin.jsonl")
        with resources.as_file(bundled) as path:
            rows = read_rows(path, hub_name="builtin", split="test", limit=limit)
        problems = [mbpp_problem(row, source="builtin", visible=visible_tests) for row in rows]
    elif dataset in _ADAPTERS:
        if dataset not in _HUB and data_path is None:
            raise ValueError(f"dataset={dataset!r} reads a local file: pass data_path=")
        hub_name, hub_config, hub_split = _HUB.get(dataset, (dataset, None, "test"))
        rows = read_rows(
            data_path, hub_name=hub_name, hub_config=hub_config, split=split or hub_split, limit=limit
        )
        adapter = _ADAPTERS[dataset]
        problems = [adapter(row, source=dataset, visible=visible_tests) for row in rows]
    else:
        raise ValueError(f"unknown code dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return CodeTask(problems, **options)


def _explain(outcome: str, detail: str, test: Mapping[str, Any], run: ExecutionResult) -> str:
    if outcome == "failed" and detail.startswith(("returned", "printed")) and test.get("expected"):
        return f"it {detail}, expected {test['expected']}"
    if outcome == "not_run":
        return detail or f"the test did not run: the program {run.describe()} before reaching it"
    return detail or outcome


def _shown(test: Mapping[str, Any]) -> str:
    source = test["shown"].strip()
    return source if len(source) <= 300 else source[:297] + "..."
