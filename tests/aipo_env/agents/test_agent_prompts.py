"""Role prompts and the messages a model agent sends: what it sees, what it must not see, trimming."""

from __future__ import annotations

import pytest

from aipo_env.agents.model_agent import clean_reply, looks_garbled, trim_reply
from aipo_env.agents.prompts import SYSTEM_PROMPTS, build_messages, system_prompt, trim_head, trim_tail


def test_each_role_gets_its_own_system_prompt_and_the_question(make_request):
    texts = {}
    for role in ("verify", "knowledge", "reasoning"):
        system, user = build_messages(make_request(role, "Is 14 a divisor?", work="So 196 = 14^2."))
        assert system["role"] == "system" and user["role"] == "user"
        assert system["content"] == SYSTEM_PROMPTS[role]
        assert "How many divisors does 196 have?" in user["content"]
        assert "So 196 = 14^2." in user["content"] and "Is 14 a divisor?" in user["content"]
        texts[role] = system["content"]
    assert len(set(texts.values())) == 3
    assert "first wrong step" in texts["verify"]
    assert "final answer" in texts["knowledge"] and "final answer" in texts["reasoning"]


def test_reference_solution_is_shown_only_with_reference_access(make_request):
    request = make_request("reasoning", "What next?")
    hidden = " ".join(message["content"] for message in build_messages(request))
    shown = " ".join(message["content"] for message in build_messages(request, reference_access=True))
    problem = request.problem
    assert problem.answer not in hidden and problem.steps[0] not in hidden
    assert problem.answer in shown and problem.steps[0] in shown


def test_the_problem_is_not_repeated_as_work_and_empty_work_is_said(make_request):
    user = build_messages(make_request(work=""))[1]["content"]
    assert "(nothing yet)" in user
    assert user.count("How many divisors") == 1


def test_long_inputs_are_trimmed_to_the_budget_keeping_the_latest_work(make_request):
    work = " ".join(f"line{number}" for number in range(5000)) + " FINAL-CLAIM"
    user = build_messages(make_request(work=work), max_prompt_chars=2000)[1]["content"]
    assert len(user) <= 2000
    assert "FINAL-CLAIM" in user and "line0 " not in user and "omitted" in user
    assert "How many divisors" in user


def test_a_configured_system_prompt_replaces_the_built_in_one(make_request):
    assert build_messages(make_request(), system="Be terse.")[0]["content"] == "Be terse."
    with pytest.raises(ValueError, match="no built-in system prompt for role 'critic'"):
        system_prompt("critic")


@pytest.mark.parametrize("limit", [5, 30, 100])
def test_trim_helpers_respect_the_limit(limit):
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi " * 3
    head, tail = trim_head(text, limit), trim_tail(text, limit)
    assert len(head) <= limit and len(tail) <= limit
    assert trim_head("short", limit) == "short" and trim_tail("short", limit) == "short"


def test_trim_reply_marks_a_cut_reply_and_keeps_words_whole():
    text = "The claim holds because 196 is the square of 14 and fourteen is two times seven. " * 10
    trimmed = trim_reply(text, 100)
    assert len(trimmed) <= 100 and trimmed.endswith(" [trimmed]")
    assert text.startswith(trimmed.removesuffix(" [trimmed]"))
    assert not trimmed.removesuffix(" [trimmed]").endswith("fourt")


def test_garbled_and_thinking_replies_are_recognised():
    assert looks_garbled("Ҷnt\ufffdex\ufffd\x0cninc\ufffd\ufffd\ufffdf\ufffd8")
    assert looks_garbled("... !!! ???")
    assert not looks_garbled("Incorrect: 196 = 14^2, so 2^2 * 7^2 is right.")
    assert clean_reply("<think>let me see</think> Correct.") == "Correct."
    assert clean_reply("<think>never closed, cut by the token limit") == ""
