"""Cheap checks that keep pathological answers away from math-verify.

Some short answers make math-verify (its LaTeX grammar, then sympy) work for seconds: deep
nesting (``\\boxed{((((1))))}`` at depth 20 takes 2 s, at 40 the whole time limit), exponent
towers that sympy evaluates (``10^{10^{10}}``, ``9^9^9``), huge exponents (``2^{100000000}``)
and long formulas (a 16 KB sum in ``$...$``: 2 s). math-verify also falls back from an
unparsable ``\\boxed{}`` to the other formulas of the response, so a checked box is not enough:
:func:`costly_answer` looks at the whole response, in one linear pass plus a few regexes, and
names what makes it costly. Such a response scores 0, as a policy that writes one deserves.

Limits, each well inside one second of math-verify on a busy machine:

* the response is at most ``MAX_RESPONSE_CHARS`` (64 KiB) long;
* brackets ``( [ {`` nest at most ``MAX_DEPTH`` deep;
* one formula (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, the last box) is at most
  ``MAX_FORMULA_CHARS`` long;
* a power of numbers ``a^b`` has ``b <= MAX_EXPONENT``, and no exponent is itself a power whose
  value exceeds ``MAX_EXPONENT`` (``2^{3^{2}}`` passes, ``10^{10^{10}}`` does not), and no
  chain of powers of numbers is more than ``MAX_TOWER`` high.
"""

from __future__ import annotations

import math
import re

from aipo_env.tasks.base import last_boxed

MAX_RESPONSE_CHARS = 64 * 1024
MAX_DEPTH = 8
MAX_FORMULA_CHARS = 2048
MAX_EXPONENT = 100_000
MAX_TOWER = 6

_FORMULA = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
# the rightmost power of two numbers in a chain (its exponent is not raised again): a^b, a^{b}
_POWER = re.compile(r"(\d+(?:\.\d+)?)\s*\^\s*(?:\{\s*(\d+)\s*\}|(\d+))(?!\s*\^)")
_HUGE = "\uffff"  # stands for a power too large to write out; only a base may hold one
_HUGE_EXPONENT = re.compile(r"\^\s*\{?\s*-?\s*" + _HUGE)


def costly_answer(response: str) -> str | None:
    """Why math-verify could take too long on ``response``; ``None`` when it is safe to judge."""
    if len(response) > MAX_RESPONSE_CHARS:
        return f"the response is longer than {MAX_RESPONSE_CHARS} characters"
    depth = nesting_depth(response)
    if depth > MAX_DEPTH:
        return f"brackets nest {depth} deep (at most {MAX_DEPTH})"
    longest = max((len(formula) for formula in formulas(response)), default=0)
    if longest > MAX_FORMULA_CHARS:
        return f"a formula is {longest} characters long (at most {MAX_FORMULA_CHARS})"
    return costly_power(response)


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``( [ {`` in ``text``; a stray closing bracket never goes below 0."""
    depth = deepest = 0
    for character in text:
        if character in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in ")]}" and depth:
            depth -= 1
    return deepest


def formulas(text: str) -> list[str]:
    """The delimited formulas of ``text`` and the content of its last ``\\boxed{}``."""
    found = [
        next(group for group in match.groups() if group is not None) for match in _FORMULA.finditer(text)
    ]
    boxed = last_boxed(text)
    return found if boxed is None else [*found, boxed]


def costly_power(text: str) -> str | None:
    """Why a power of numbers in ``text`` is too large to evaluate; ``None`` if none is.

    Chains are folded from the right, as ``^`` associates: each pass replaces every innermost
    ``a^b`` by its value, or by a placeholder when the value is itself over ``MAX_EXPONENT``; a
    placeholder that ends up in an exponent is a tower. A chain still unfolded after
    ``MAX_TOWER`` passes is a tower too.
    """
    too_large: list[str] = []

    def fold(match: re.Match[str]) -> str:
        base, exponent = float(match.group(1)), int(match.group(2) or match.group(3))
        if exponent > MAX_EXPONENT:
            too_large.append(match.group(0))
            return _HUGE
        if base <= 1 or exponent * math.log10(base) <= math.log10(MAX_EXPONENT):
            return str(round(base**exponent))
        return _HUGE

    for _ in range(MAX_TOWER):
        text, folded = _POWER.subn(fold, text)
        if too_large:
            return f"{too_large[0]} has an exponent over {MAX_EXPONENT}"
        if _HUGE_EXPONENT.search(text):
            return f"an exponent tower is too large to evaluate (an exponent exceeds {MAX_EXPONENT})"
        if not folded:
            return None
    return f"a tower of powers is more than {MAX_TOWER} high"
