"""Reading the chosen option letter out of a free-text response to a multiple-choice question.

Every way of stating an answer is found with its position in the response, and the last one
wins, so "Answer: A ... no, wait: the answer is (C)" reads as C. Accepted statements:

* ``\\boxed{C}``, ``\\boxed{(C)}``, ``\\boxed{\\text{C}}``, or the boxed text of an option;
* ``Answer: C``, ``the answer is (C)``, ``the correct option is C``, ``Final answer: **C**``,
  or such a phrase followed by the exact text of an option;
* a bold letter ending a line, ``**C**``;
* on the last non-empty line only: a final ``(C)``, ``C``, ``C.`` or ``(C)?`` when that line names no other
  option and the letter is not negated ("not (C)", "(B) or (C)"); a bare letter must end a short
  line ("So, C."), because long sentences end in capitals by accident ("vitamin C.");
* the last line being exactly the text of one option.

A response that mentions options in passing but states none yields ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from aipo_env.tasks.base import braced_content

LETTERS = "ABCDEFGHIJ"
_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_NEGATED = re.compile(
    r"(?i:\b(?:not|never|nor|or|and|than|except|unlike|between|isn't|is\s*n't|versus|vs\.?))\s*[(*]*$"
)
_SHORT_LINE_WORDS = 4
_MAX_SPAN = 1000  # longest boxed content, stated option text or final line read, in characters
_MAX_TRIES = 32  # how many of the last boxes or "answer is" phrases are read


def extract_choice(response: str, choices: Sequence[str]) -> tuple[str | None, str | None]:
    """The letter stated last in ``response`` and how it was stated, or ``(None, None)``.

    Args:
        response: the policy's final text.
        choices: the option texts in display order (option ``k`` has letter ``LETTERS[k]``).

    Returns:
        ``(letter, how)`` with ``how`` one of ``boxed``, ``stated``, ``bold``, ``final_line``.
    """
    if not choices or len(choices) > len(LETTERS):
        return None, None
    letters = LETTERS[: len(choices)]
    patterns = _patterns(letters)
    found: list[tuple[int, str, str]] = []
    found += _boxed(response, choices)
    found += _stated(response, choices, patterns)
    found += [(match.start(), match.group(1), "bold") for match in patterns.bold.finditer(response)]
    found += _final_line(response, choices, patterns)
    if not found:
        return None, None
    _, letter, how = max(found, key=lambda item: item[0])
    return letter, how


class _Patterns:
    """The regular expressions for one set of option letters."""

    def __init__(self, letters: str) -> None:
        letter = f"([{letters}])"
        self.stated = re.compile(
            r"(?i:\b(?:final\s+answer|answer|correct\s+(?:option|choice)|best\s+(?:option|choice)))"
            r"[*_\s]{0,6}(?i::|=|is|would\s+be|should\s+be|must\s+be|will\s+be)[*_\s]{0,6}"
            rf"(?i:(?:option|choice)\s+)?[*_\s$(\[{{]{{0,6}}{letter}[)\]}}$*_]{{0,6}}(?![A-Za-z0-9-])"
        )
        self.stated_text = re.compile(r"(?i:\banswer\b)[*_\s]{0,6}(?i::|is)[*_ \t]{0,6}")
        self.bold = re.compile(rf"\*\*\s*\(?{letter}\)?[.:]?\s*\*\*[.!]?[ \t]*$", re.MULTILINE)
        self.trailing = re.compile(rf"(?:^|[\s:(*])(\(?){letter}\)?\**[.!?]?\**\s*$")
        # every way a line can name an option; "A" followed by a lowercase word is the article
        self.mention = re.compile(
            rf"\({letter}\)|\b{letter}\)|(?i:option|choice)\s+{letter}\b|\b(?!A\s+[a-z]){letter}\b"
        )
        self.leading = re.compile(rf"\(?{letter}[).:]\s*(.+)")
        self.bare = re.compile(rf"\(?{letter}\)?")


@lru_cache(maxsize=8)
def _patterns(letters: str) -> _Patterns:
    return _Patterns(letters)


def _boxed(response: str, choices: Sequence[str]) -> list[tuple[int, str, str]]:
    """The last ``\\boxed{}`` that names an option (only the last few boxes are read)."""
    for match in reversed(list(_BOXED.finditer(response))[-_MAX_TRIES:]):
        content = braced_content(response, match.end() - 1, _MAX_SPAN)
        letter = None if content is None else _letter_of(content, choices, trust_leading=True)
        if letter is not None:
            return [(match.start(), letter, "boxed")]
    return []


def _stated(response: str, choices: Sequence[str], patterns: _Patterns) -> list[tuple[int, str, str]]:
    """The last "answer is C" and the last "answer is <option text>"."""
    found = [(match.start(1), match.group(1), "stated") for match in patterns.stated.finditer(response)][-1:]
    for match in reversed(list(patterns.stated_text.finditer(response))[-_MAX_TRIES:]):
        end = response.find("\n", match.end())
        rest = response[match.end() : end if end >= 0 else len(response)]
        letter = _letter_of(rest, choices, trust_leading=False) if len(rest) <= _MAX_SPAN else None
        if letter is not None:
            return [*found, (match.end(), letter, "stated")]
    return found


def _final_line(response: str, choices: Sequence[str], patterns: _Patterns) -> list[tuple[int, str, str]]:
    """The last non-empty line, read as an answer when it is a clean statement of one option."""
    stripped = response.rstrip()
    position = stripped.rfind("\n") + 1
    line = stripped[position:].strip()
    if not line or len(line) > _MAX_SPAN:
        return []
    position = response.rfind(line)
    letter = _letter_of(line, choices, trust_leading=False)
    if letter is not None:
        return [(position, letter, "final_line")]
    match = patterns.trailing.search(line)
    if match is None:
        return []
    mentioned = {
        next(group for group in mention.groups() if group) for mention in patterns.mention.finditer(line)
    }
    bare = not match.group(1)
    too_long = bare and len(line.split()) > _SHORT_LINE_WORDS
    if mentioned - {match.group(2)} or too_long or _NEGATED.search(line[: match.start(2)]):
        return []
    return [(position + match.start(2), match.group(2), "final_line")]


def _letter_of(span: str, choices: Sequence[str], *, trust_leading: bool) -> str | None:
    """The option a short span names: a lone letter, ``(C) text``, or exactly one option's text.

    ``trust_leading`` accepts ``C) anything`` (inside ``\\boxed{}``); otherwise the text after
    the letter must be that option's text.
    """
    letters = LETTERS[: len(choices)]
    patterns = _patterns(letters)
    cleaned = _unwrap(span).replace("*", "").strip().rstrip(".").strip()
    bare = patterns.bare.fullmatch(cleaned)
    if bare:
        return bare.group(1)
    leading = patterns.leading.fullmatch(cleaned)
    if leading:
        letter, text = leading.group(1), leading.group(2)
        if trust_leading or _normal(text) == _normal(choices[letters.index(letter)]):
            return letter
    same = [letters[k] for k, choice in enumerate(choices) if _normal(choice) == _normal(cleaned)]
    return same[0] if len(same) == 1 else None


def _unwrap(text: str) -> str:
    while True:
        unwrapped = _LATEX_WRAPPERS.sub(r"\1", text)
        if unwrapped == text:
            return text.replace("$", "")
        text = unwrapped


def _normal(text: str) -> str:
    """Option text compared without case, spaces, ``$`` signs, LaTeX text wrappers or final period."""
    return re.sub(r"[\s$]", "", _unwrap(text).lower()).rstrip(".")
