"""Answers that would keep math-verify busy for seconds score 0 at once; ordinary ones as before."""

from __future__ import annotations

import time

import pytest

from aipo_env.tasks.math_scoring import judge

KIB = 1024
PATHOLOGICAL = {
    "deep parentheses": "\\boxed{" + "(" * 40 + "1" + ")" * 40 + "}",
    "deep braces": "\\boxed{" + "{" * 300 + "1" + "}" * 300 + "}",
    "unclosed parentheses": "\\boxed{" + "(" * (64 * KIB - 8),
    "power tower": "\\boxed{" + "^".join(["9"] * 12) + "}",
    "braced power tower": "\\boxed{10^{10^{10^{10}}}}",
    "tower outside a box": "the answer is " + "9^" * 20 + "9",
    "tower behind an unparsable box": "so $10^{10^{10}}$ hence \\boxed{\\%}",
    "nesting behind an unparsable box": "$" + "(" * 40 + "1" + ")" * 40 + "$ so \\boxed{\\%\\%}",
    "huge exponent": "\\boxed{2^{100000000}}",
    "long formula": "$" + "+".join(["1"] * 8000) + "$",
    "tall chain of ones": "1^" * (32 * KIB - 1) + "1",
    "64 KiB of digits": "\\boxed{" + "1" * (64 * KIB - 8) + "}",
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_answers_score_zero_within_a_second(name: str) -> None:
    response = PATHOLOGICAL[name]
    assert len(response.encode()) <= 64 * KIB
    judge("1", "\\boxed{1}", timeout=5)  # the LaTeX grammar loads on the first parse
    worst = 0.0
    for gold in ("1", "\\frac{1}{2}", "10^{10^{10^{10}}}"):
        started = time.perf_counter()
        verdict = judge(gold, response, timeout=5)
        worst = max(worst, time.perf_counter() - started)
        assert not verdict.correct
    assert worst < 1.0  # the requirement itself: no answer of at most 64 KiB is judged for over 1 s


@pytest.mark.parametrize(
    ("gold", "response"),
    [
        ("1024", "so $\\boxed{2^{10}}$"),
        ("512", "\\boxed{2^{3^{2}}}"),
        ("\\frac{1}{2}", "\\boxed{\\frac{1}{2}}"),
        ("(1, 2)", "The point is \\boxed{(1, 2)}."),
        ("x^2+1", "\\boxed{x^2+1}"),
        ("e^{x^2}", "\\boxed{e^{x^2}}"),
        ("10^{100}", "\\boxed{10^{100}}"),
        ("\\frac{\\sqrt{3}}{2}", "$\\left(\\frac{\\sqrt{3}}{2}\\right)$ so \\boxed{\\frac{\\sqrt{3}}{2}}"),
    ],
)
def test_ordinary_answers_are_still_judged(gold: str, response: str) -> None:
    verdict = judge(gold, response, timeout=5)
    assert verdict.correct and verdict.screened is None
