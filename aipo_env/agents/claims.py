"""Reading checkable claims out of free text: equations between arithmetic expressions.

The evaluator walks Python's AST and allows only numbers, ``+ - * / ^ **``, unary signs and
parentheses, with exact rational arithmetic; it never calls ``eval`` on model-written text.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction

_EXPRESSION = r"[-+]?[\d(][\d\s+\-*/×÷·^().,]*"
_MAX_EXPONENT = 64
_MAX_DIGITS = 200


@dataclass(frozen=True)
class Equation:
    """A claimed equation ``left = right`` with both sides evaluated exactly."""

    text: str
    left: Fraction
    right: Fraction

    @property
    def holds(self) -> bool:
        return self.left == self.right


def find_equations(text: str) -> list[Equation]:
    """Every ``expression = expression`` in ``text`` whose sides are plain arithmetic.

    Chains ``a = b = c`` yield ``a = b`` and ``b = c``.
    """
    cleaned = text.replace("\\times", "*").replace("\\cdot", "*").replace("\\div", "/")
    cleaned = re.sub(r"(?<=\d),(?=\d{3}\b)", "", cleaned)
    equations = []
    for chain in re.finditer(rf"{_EXPRESSION}(?:=\s*{_EXPRESSION})+", cleaned):
        sides = [side.strip().rstrip(".,") for side in chain.group().split("=")]
        for left, right in zip(sides, sides[1:], strict=False):
            left_value, right_value = evaluate(left), evaluate(right)
            if left_value is not None and right_value is not None:
                equations.append(Equation(f"{left} = {right}", left_value, right_value))
    return equations


def evaluate(expression: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or ``None`` if it is not one."""
    source = expression.replace("×", "*").replace("·", "*").replace("÷", "/").replace("^", "**")
    if not source.strip() or len(source) > 400:
        return None
    try:
        tree = ast.parse(source.strip(), mode="eval")
        return _value(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def format_number(value: Fraction) -> str:
    """``12`` for integers, ``7/3`` otherwise."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _value(node: ast.AST) -> Fraction:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _value(node.operand)
        return operand if isinstance(node.op, ast.UAdd) else -operand
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return _bounded(left * right)
        if isinstance(node.op, ast.Div):
            return left / right
        if isinstance(node.op, ast.Pow) and right.denominator == 1 and abs(right) <= _MAX_EXPONENT:
            return _bounded(left ** int(right))
    raise ValueError("not plain arithmetic")


def _bounded(value: Fraction) -> Fraction:
    if len(str(value.numerator)) > _MAX_DIGITS:
        raise OverflowError("number too large to check")
    return value
