"""Reference agents: deterministic helpers that read the ground truth instead of running a model.

They are the offline default: every env works with them on a fresh machine, and their replies are
short and reproducible, which makes them the right helpers for tests and for the CPU demo.

* **Verify** checks, in this order: a candidate answer in the query (``\\boxed{..}`` or the word
  "answer"), judged by the task's own scorer; an arithmetic equation in the query (``a = b``),
  checked exactly and, when the problem has reference steps, matched against them; the last
  ``\\boxed{}`` answer the policy wrote so far.
* **Knowledge** returns the best-matching entries of a small knowledge base (word overlap
  between the query plus the problem and each entry's title, text and tags).
* **Reasoning** reveals the first reference step that does not yet appear in the transcript
  (whitespace and case ignored), so repeated consults walk through the solution.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from aipo_env.agents.base import Agent, AgentReply, ConsultRequest
from aipo_env.agents.claims import find_equations, format_number
from aipo_env.tasks.base import last_boxed

_ANSWER_WORDS = re.compile(r"\\boxed|\\fbox|\banswer\b", re.IGNORECASE)


class ReferenceVerify(Agent):
    """Says whether a claimed answer or step holds, using the reference answer and steps."""

    name = "verify"
    reference_access = True

    def reply(self, request: ConsultRequest) -> AgentReply:
        specific = request.task.check(request.problem, f"{request.policy_text}")
        if specific is not None:
            return AgentReply(specific)
        if _ANSWER_WORDS.search(request.query):
            verdict = self._judge_answer(request, request.query)
            if verdict is not None:
                return AgentReply(verdict)
        equations = find_equations(request.query)
        if equations:
            return AgentReply(self._judge_equation(request, equations[-1]))
        candidate = last_boxed(request.policy_text)
        if candidate is not None:
            verdict = self._judge_answer(request, f"\\boxed{{{candidate}}}")
            if verdict is not None:
                return AgentReply(verdict)
        return AgentReply(
            "Nothing to check: ask about an equation (a = b) or a candidate answer in \\boxed{}."
        )

    @staticmethod
    def _judge_answer(request: ConsultRequest, text: str) -> str | None:
        score = request.task.score(request.problem, text)
        if score.extracted is None:
            return None
        if score.correct:
            return f"Correct: {score.extracted} is the right answer."
        return f"Incorrect: {score.extracted} is not the right answer."

    @staticmethod
    def _judge_equation(request: ConsultRequest, equation: Any) -> str:
        if not equation.holds:
            return (
                f"Incorrect: {equation.text} does not hold; the left side is {format_number(equation.left)}."
            )
        if not request.problem.steps:
            return f"Correct: {equation.text} holds."
        claimed = _normalise(equation.text)
        if any(claimed in _normalise(step) for step in request.problem.steps):
            return f"Correct: {equation.text} holds and is a step of the solution."
        return f"{equation.text} holds, but it is not a step of the reference solution."


class ReferenceKnowledge(Agent):
    """Returns the knowledge-base entries that best match the query and the problem.

    Args:
        entries: the knowledge base; defaults to the bundled one.
        top_k: how many entries to return at most.
    """

    name = "knowledge"
    reference_access = False

    def __init__(self, entries: Sequence[Mapping[str, Any]] | None = None, top_k: int = 1) -> None:
        self.entries = list(entries) if entries is not None else bundled_knowledge()
        self.top_k = top_k

    def reply(self, request: ConsultRequest) -> AgentReply:
        entries = [*self.entries, *request.task.knowledge()]
        query_words = _words(request.query)
        context_words = _words(request.question)
        ranked = sorted(
            ((_overlap(entry, query_words, context_words), index) for index, entry in enumerate(entries)),
            key=lambda pair: (-pair[0], pair[1]),
        )
        best = [entries[index] for score, index in ranked[: self.top_k] if score > 0]
        if not best:
            return AgentReply("No entry in the knowledge base matches that question.")
        return AgentReply(" ".join(f"{entry['title']}: {entry['text']}" for entry in best))


class ReferenceReasoning(Agent):
    """Reveals the next reference step that the transcript does not contain yet."""

    name = "reasoning"
    reference_access = True

    def reply(self, request: ConsultRequest) -> AgentReply:
        steps = request.problem.steps
        if not steps:
            return AgentReply(
                "I have no worked solution for this problem: split it into smaller parts and check each one."
            )
        written = _normalise("".join(s.text for s in request.segments if s.source != "prompt"))
        for number, step in enumerate(steps, start=1):
            if _normalise(step) not in written:
                return AgentReply(f"Step {number}: {step}")
        return AgentReply("All steps of the solution are already written; state the final answer.")


def reference_agents() -> dict[str, Agent]:
    """A fresh set of the three reference agents, keyed by role."""
    return {"verify": ReferenceVerify(), "knowledge": ReferenceKnowledge(), "reasoning": ReferenceReasoning()}


@lru_cache(maxsize=1)
def _bundled() -> tuple[dict[str, Any], ...]:
    text = resources.files("aipo_env").joinpath("data/knowledge.jsonl").read_text(encoding="utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def bundled_knowledge() -> list[dict[str, Any]]:
    """The knowledge base shipped with the package: arithmetic and common competition-math facts."""
    return [dict(entry) for entry in _bundled()]


_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it of on or the this to what when "
    "which why with you your my me we there that these those".split()
)


def _words(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z]+", text.lower()) if word not in _STOPWORDS and len(word) > 1}


def _overlap(entry: Mapping[str, Any], query: set[str], context: set[str]) -> float:
    """Query words count three times as much as words of the problem; tags count double."""
    tags = _words(" ".join(entry.get("tags", ())))
    body = _words(f"{entry.get('title', '')} {entry.get('text', '')}")
    return sum(3.0 * (2 if word in tags else 1) for word in query if word in tags | body) + sum(
        2 if word in tags else 1 for word in context if word in tags | body
    )


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", text.replace("×", "*").replace("\\times", "*")).lower()
