"""Parsing one action text into a consult request or a final response.

The default protocol: a turn that *ends* with

    <consult agent="verify|knowledge|reasoning">query</consult>

(trailing whitespace allowed) is a consult; any other turn is the final response. Helper replies
are written into the transcript as ``<feedback agent="NAME">reply</feedback>``.

Parsing never raises. Every outcome is one of the :class:`ActionKind` values, and anything
unusual about the text is named in :attr:`ParsedAction.issue`:

=================  ==========================================================================
kind               when
=================  ==========================================================================
``consult``        a closing consult tag ends the turn, the agent is known, the query is not
                   empty and holds no nested consult tag
``final``          anything else that is not an invalid consult: scored by the task. Issues:
                   ``empty`` (blank turn), ``oversize`` (cut to ``max_action_chars``; a cut
                   turn is always final), ``unclosed_consult`` (an opening tag with no closing
                   one: the text is scored as it is)
``invalid``        a consult tag ends the turn but cannot be honoured. Issues:
                   ``unknown_agent``, ``empty_query``, ``nested_consult``. The env answers with
                   a system note and applies ``invalid_action_penalty``
=================  ==========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

AGENT_NAMES: tuple[str, ...] = ("verify", "knowledge", "reasoning")


class ActionKind(str, Enum):
    """What one action turned out to be."""

    CONSULT = "consult"
    FINAL = "final"
    INVALID = "invalid"


@dataclass(frozen=True)
class ParsedAction:
    """The result of parsing one action.

    Attributes:
        kind: consult, final or invalid.
        text: the action text as it enters the transcript (sanitised, possibly cut).
        agent: the consulted agent's name, for consult and invalid-consult actions.
        query: the consult's question (empty for final actions).
        issue: why the action is unusual (``None`` for a clean action); see the module docstring.
    """

    kind: ActionKind
    text: str
    agent: str | None = None
    query: str = ""
    issue: str | None = None


@dataclass(frozen=True)
class Protocol:
    """The tags of the action protocol; change them to fit a model's chat conventions.

    Args:
        consult_tag: element name of a consult request.
        feedback_tag: element name of a helper's reply in the transcript.
        agents: the agent names a consult may address.
        max_action_chars: longer actions are cut to this many characters and scored as final.
    """

    consult_tag: str = "consult"
    feedback_tag: str = "feedback"
    agents: tuple[str, ...] = AGENT_NAMES
    max_action_chars: int = 8192

    def __post_init__(self) -> None:
        if self.max_action_chars < 1:
            raise ValueError(f"max_action_chars must be at least 1, got {self.max_action_chars}")
        for tag in (self.consult_tag, self.feedback_tag):
            if not re.fullmatch(r"[A-Za-z][\w-]*", tag):
                raise ValueError(f"tag names must be XML-like identifiers, got {tag!r}")

    def consult(self, agent: str, query: str) -> str:
        """Format a consult request, as a policy would write it."""
        return f'<{self.consult_tag} agent="{agent}">{query}</{self.consult_tag}>'

    def instructions(self, names: Sequence[str]) -> str:
        """The sentence that tells the policy how to consult ``names``."""
        return f"To consult a helper, end your turn with {self.consult('|'.join(names) or 'verify', 'your question')}."

    def feedback(self, agent: str, reply: str) -> str:
        """Format a helper's reply as it is spliced into the transcript."""
        opening, closing = self.feedback_wrapper(agent)
        return f"{opening}{reply}{closing}"

    def feedback_wrapper(self, agent: str) -> tuple[str, str]:
        """The text :meth:`feedback` puts before and after a reply."""
        return f'\n<{self.feedback_tag} agent="{agent}">', f"</{self.feedback_tag}>\n"

    def parse(self, action: str) -> ParsedAction:
        """Parse one action text; never raises for any ``str``."""
        text, unusable = screened(action, self.max_action_chars)
        if unusable is not None:
            return unusable
        found = self._trailing_consult(text)
        if found is None:
            opened = re.search(rf"<{self.consult_tag}\b", text) is not None
            closed = f"</{self.consult_tag}>" in text
            issue = "unclosed_consult" if opened and not closed else None
            return ParsedAction(ActionKind.FINAL, text, issue=issue)
        agent, query, _ = found
        if agent not in self.agents:
            return ParsedAction(ActionKind.INVALID, text, agent=agent, query=query, issue="unknown_agent")
        if f"</{self.consult_tag}>" in query:
            return ParsedAction(ActionKind.INVALID, text, agent=agent, query=query, issue="nested_consult")
        if not query.strip():
            return ParsedAction(ActionKind.INVALID, text, agent=agent, query=query, issue="empty_query")
        return ParsedAction(ActionKind.CONSULT, text, agent=agent, query=query.strip())

    def strip_consult(self, text: str) -> str:
        """Return ``text`` without a consult request at its end (the rest is what gets scored)."""
        found = self._trailing_consult(text)
        return text if found is None else text[: found[2]]

    def _trailing_consult(self, text: str) -> tuple[str, str, int] | None:
        """Find a consult request that ends ``text``: ``(agent, query, start)`` or ``None``.

        Linear in ``len(text)``: the closing tag must end the text, and the request opens at the
        last opening tag before it (earlier requests in the same turn are ordinary text).
        """
        closing = f"</{self.consult_tag}>"
        body = text.rstrip()
        if not body.endswith(closing):
            return None
        inner_end = len(body) - len(closing)
        start = body.rfind(f"<{self.consult_tag}", 0, inner_end)
        if start < 0:
            return None
        opening = _OPENING.match(body, start + len(self.consult_tag) + 1, inner_end)
        if opening is None:
            return None
        return opening.group("agent").strip().lower(), body[opening.end() : inner_end], start


_OPENING = re.compile(r"""\s+agent\s*=\s*["']?(?P<agent>[^"'>]*)["']?\s*>""")


def screened(action: str, max_chars: int) -> tuple[str, ParsedAction | None]:
    """``action`` sanitized, and the final action it is before any parsing when it cannot hold a
    consult: longer than ``max_chars`` (cut, ``oversize``) or blank (``empty``); else ``None``.
    The first step of every protocol's ``parse``."""
    text = sanitize(action)
    if len(text) > max_chars:
        return text, ParsedAction(ActionKind.FINAL, text[:max_chars], issue="oversize")
    if not text.strip():
        return text, ParsedAction(ActionKind.FINAL, text, issue="empty")
    return text, None


def sanitize(text: str) -> str:
    """Return ``text`` with lone surrogates (invalid unicode escapes) replaced by U+FFFD.

    Such strings exist in Python (``"\\ud800"``) but cannot be encoded, logged or tokenised; every
    other character, NUL included, is kept.
    """
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(
            f"an action must be a str (the policy's text for one turn), got {type(text).__name__}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")
    return text
