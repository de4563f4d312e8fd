"""Reference agents: what Verify, Knowledge and Reasoning answer, deterministically."""

from __future__ import annotations

import pytest

from aipo_env.agents import ConsultRequest, ReferenceKnowledge, ReferenceReasoning, ReferenceVerify
from aipo_env.agents.claims import evaluate, find_equations
from aipo_env.episode import Segment
from aipo_env.tasks.arithmetic import ArithmeticTask

TASK = ArithmeticTask(level=4)
PROBLEM = TASK.problem(0)  # three steps


def request(agent: str, query: str, policy: str = "", agent_text: str = "") -> ConsultRequest:
    segments = [Segment("prompt", None, TASK.prompt(PROBLEM)), Segment("policy", None, policy)]
    if agent_text:
        segments.append(Segment("agent", "reasoning", agent_text))
    return ConsultRequest(agent, query, PROBLEM, TASK, tuple(segments))


def test_reasoning_walks_through_the_steps():
    agent = ReferenceReasoning()
    first = agent.reply(request("reasoning", "next?")).text
    assert first == f"Step 1: {PROBLEM.steps[0]}"
    second = agent.reply(request("reasoning", "next?", agent_text=first)).text
    assert second == f"Step 2: {PROBLEM.steps[1]}"
    written = " ".join(step.replace(" ", "") for step in PROBLEM.steps)
    assert "already written" in agent.reply(request("reasoning", "next?", policy=written)).text


def test_verify_judges_candidate_answers_with_the_task_scorer():
    agent = ReferenceVerify()
    right = agent.reply(request("verify", f"Is the answer \\boxed{{{PROBLEM.answer}}}?")).text
    wrong = agent.reply(request("verify", "Is the answer \\boxed{123456}?")).text
    assert right.startswith("Correct") and wrong.startswith("Incorrect")
    from_policy = agent.reply(request("verify", "is this right?", policy=f"\\boxed{{{PROBLEM.answer}}}")).text
    assert from_policy.startswith("Correct")


def test_verify_checks_equations_and_reference_steps():
    agent = ReferenceVerify()
    assert "is a step of the solution" in agent.reply(request("verify", f"Is {PROBLEM.steps[0]}?")).text
    assert agent.reply(request("verify", "Is 2 + 2 = 5?")).text.startswith("Incorrect: 2 + 2 = 5")
    assert "not a step" in agent.reply(request("verify", "Is 1 + 1 = 2?")).text
    assert agent.reply(request("verify", "Am I on track?")).text.startswith("Nothing to check")


def test_knowledge_finds_the_relevant_entry_and_admits_ignorance():
    agent = ReferenceKnowledge()
    assert "Quadratic formula" in agent.reply(request("knowledge", "roots of a quadratic equation?")).text
    empty = ReferenceKnowledge(entries=[{"title": "Zebras", "text": "striped", "tags": ["animals"]}])
    assert "No entry" in empty.reply(request("knowledge", "qqq")).text


def test_replies_are_deterministic():
    for agent in (ReferenceVerify(), ReferenceKnowledge(), ReferenceReasoning()):
        assert agent.reply(request(agent.name, "help with multiply")) == agent.reply(
            request(agent.name, "help with multiply")
        )


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("12 * 3 = 36", [True]),
        ("2^10 = 1024 = 1000", [True, False]),
        ("1,000 + 1 = 1001", [True]),
        ("x = 3", []),
    ],
)
def test_find_equations(text, holds):
    assert [equation.holds for equation in find_equations(text)] == holds


@pytest.mark.parametrize("expression", ["__import__('os')", "2**10**10", "1/0", "a + 1", "9" * 500])
def test_evaluate_refuses_anything_but_bounded_arithmetic(expression):
    assert evaluate(expression) is None
