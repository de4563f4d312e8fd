"""Action parsing: consults, finals and every kind of malformed action."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipo_env.protocol import ActionKind, Protocol

PROTOCOL = Protocol()


@pytest.mark.parametrize(
    ("action", "kind", "agent", "query", "issue"),
    [
        (
            'Check. <consult agent="verify">Is 196 = 2^2 * 7^2?</consult>',
            "consult",
            "verify",
            "Is 196 = 2^2 * 7^2?",
            None,
        ),
        ("<consult agent='Reasoning'> next? </consult>\n\n", "consult", "reasoning", "next?", None),
        ('<consult agent="knowledge">a</consult> then more text', "final", None, "", None),
        ("so there are \\boxed{9} divisors", "final", None, "", None),
        ("", "final", None, "", "empty"),
        ("   \n", "final", None, "", "empty"),
        ('<consult agent="verify">is it 3?', "final", None, "", "unclosed_consult"),
        (
            '<consult agent="oracle">answer please</consult>',
            "invalid",
            "oracle",
            "answer please",
            "unknown_agent",
        ),
        ('<consult agent="verify">   </consult>', "invalid", "verify", "   ", "empty_query"),
        (
            '<consult agent="verify"><consult agent="verify">q</consult></consult>',
            "invalid",
            "verify",
            None,
            "nested_consult",
        ),
        ("</consult>", "final", None, "", None),
        ("<consultation>fine</consultation>", "final", None, "", None),
    ],
)
def test_parse_classifies_actions(action, kind, agent, query, issue):
    parsed = PROTOCOL.parse(action)
    assert parsed.kind is ActionKind(kind)
    assert parsed.agent == agent
    assert parsed.issue == issue
    if query is not None:
        assert parsed.query == query


def test_earlier_consults_in_a_turn_are_text_and_the_last_one_counts():
    action = '<consult agent="verify">a?</consult> hmm <consult agent="knowledge">b?</consult>'
    parsed = PROTOCOL.parse(action)
    assert (parsed.kind, parsed.agent, parsed.query) == (ActionKind.CONSULT, "knowledge", "b?")
    assert PROTOCOL.strip_consult(action) == '<consult agent="verify">a?</consult> hmm '


def test_oversize_actions_are_cut_and_final_even_if_they_end_with_a_consult():
    action = "x" * 20_000 + '<consult agent="verify">q</consult>'
    parsed = Protocol(max_action_chars=1000).parse(action)
    assert parsed.kind is ActionKind.FINAL and parsed.issue == "oversize"
    assert len(parsed.text) == 1000


def test_megabyte_action_parses_quickly():
    parsed = PROTOCOL.parse('<consult agent="verify">' * 100_000 + "</consult>")
    assert parsed.kind is ActionKind.FINAL and parsed.issue == "oversize"


def test_lone_surrogates_are_replaced_and_bytes_decoded():
    assert "\ufffd" in PROTOCOL.parse("bad \ud800 escape").text
    assert PROTOCOL.parse(b"\xff\\boxed{1}").text.endswith("\\boxed{1}")
    with pytest.raises(TypeError, match="must be a str"):
        PROTOCOL.parse(42)  # type: ignore[arg-type]


def test_custom_tags_and_bad_tag_names():
    protocol = Protocol(consult_tag="ask", feedback_tag="reply")
    assert protocol.parse('<ask agent="verify">q</ask>').kind is ActionKind.CONSULT
    assert protocol.parse('<consult agent="verify">q</consult>').kind is ActionKind.FINAL
    assert protocol.feedback("verify", "ok") == '\n<reply agent="verify">ok</reply>\n'
    with pytest.raises(ValueError, match="identifiers"):
        Protocol(consult_tag="a b")


_FRAGMENTS = st.sampled_from(
    [
        "<consult",
        " agent=",
        '"verify"',
        "'knowledge'",
        "reasoning",
        '"nobody"',
        ">",
        "</consult>",
        "<",
        "\\boxed{",
        "}",
        " ",
    ]
)
_ANY_CHAR = st.characters(codec=None, categories=None, exclude_categories=())


@given(st.lists(st.one_of(_FRAGMENTS, st.text(alphabet=_ANY_CHAR, max_size=8)), max_size=30).map("".join))
def test_parse_never_raises_and_keeps_the_text(action):
    parsed = PROTOCOL.parse(action)
    assert parsed.kind in set(ActionKind)
    parsed.text.encode("utf-8")  # always encodable
    if parsed.kind is ActionKind.CONSULT:
        assert parsed.agent in PROTOCOL.agents and parsed.query.strip()
