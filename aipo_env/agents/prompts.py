"""The three helper roles' system prompts, and how a consult becomes chat messages.

A model-backed agent sees a system prompt for its role and one user message built from the
:class:`~aipo_env.agents.base.ConsultRequest`: the problem, the student's work so far, and the
question. The reference answer and solution are added only for an agent with
``reference_access``; otherwise nothing of them reaches the model.
"""

from __future__ import annotations

from aipo_env.agents.base import ConsultRequest

Messages = list[dict[str, str]]

VERIFY_PROMPT = """\
You are the Verify helper of a student who is solving a reasoning problem.
Your job is to judge whether the claim or candidate answer the student asks about is correct.
Start your reply with "Correct", "Incorrect" or "Unclear".
If something is wrong, point at the first wrong step and say briefly why it is wrong.
Do not solve the problem and do not state the right final answer.
Be brief: a few sentences at most."""

KNOWLEDGE_PROMPT = """\
You are the Knowledge helper of a student who is solving a reasoning problem.
Your job is to state the facts, definitions, formulas or theorems that are relevant to the
student's question, precisely and with their conditions.
Do not apply them to the problem, do not carry out any step of the solution and never give the
final answer.
Be brief: a few sentences at most."""

REASONING_PROMPT = """\
You are the Reasoning helper of a student who is solving a reasoning problem.
Your job is to suggest the next step or a strategy that moves the student's own work forward.
Build on what the student has already written; give one step or one idea, not a full solution.
Never state the final answer.
Be brief: a few sentences at most."""

SYSTEM_PROMPTS: dict[str, str] = {
    "verify": VERIFY_PROMPT,
    "knowledge": KNOWLEDGE_PROMPT,
    "reasoning": REASONING_PROMPT,
}

OMITTED = "[... earlier text omitted ...] "


def system_prompt(role: str, override: str | None = None) -> str:
    """The system prompt of ``role``, or ``override`` when one is configured.

    Raises:
        ValueError: ``role`` has no built-in prompt and no override is given.
    """
    if override is not None:
        return override
    if role not in SYSTEM_PROMPTS:
        raise ValueError(
            f"no built-in system prompt for role {role!r} (known: {', '.join(SYSTEM_PROMPTS)}); "
            "give one with system_prompt="
        )
    return SYSTEM_PROMPTS[role]


def build_messages(
    request: ConsultRequest,
    *,
    reference_access: bool = False,
    max_prompt_chars: int = 12000,
    system: str | None = None,
) -> Messages:
    """The chat messages for one consult.

    The user message has the problem, the reference (only with ``reference_access``), the work
    after the prompt (the policy's turns and earlier helper replies) and the question. To fit
    ``max_prompt_chars``, the problem keeps its beginning and the work keeps its end (the part
    nearest the question); the problem gets at most half of what the question leaves.

    Args:
        request: the consult.
        reference_access: include ``problem.answer`` and ``problem.steps``.
        max_prompt_chars: the longest user message, in characters.
        system: a system prompt replacing the role's built-in one.
    """
    query = trim_tail(request.query.strip(), max_prompt_chars // 4)
    reference = trim_head(_reference(request), max_prompt_chars // 3) if reference_access else ""
    room = max(0, max_prompt_chars - len(query) - len(reference) - 200)
    question = trim_head(request.question.strip(), room // 2)
    work_text = "".join(s.text for s in request.segments if s.source != "prompt").strip()
    work = trim_tail(work_text, room - len(question))
    parts = [f"Problem:\n{question}"]
    if reference:
        parts.append(reference)
    parts.append(f"The student's work so far:\n{work or '(nothing yet)'}")
    parts.append(f"The student asks the {request.agent} helper:\n{query}")
    return [
        {"role": "system", "content": system_prompt(request.agent, system)},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def trim_head(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, keeping its beginning (at a word boundary)."""
    if len(text) <= limit:
        return text
    marker = " [... rest omitted]"
    if limit <= len(marker):
        return text[:limit]
    kept = text[: limit - len(marker)]
    cut = kept.rfind(" ")
    return (kept[:cut] if cut > len(kept) // 2 else kept) + marker


def trim_tail(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, keeping its end (at a word boundary)."""
    if len(text) <= limit:
        return text
    if limit <= len(OMITTED):
        return text[len(text) - limit :] if limit > 0 else ""
    kept = text[len(text) - (limit - len(OMITTED)) :]
    cut = kept.find(" ")
    return OMITTED + (kept[cut + 1 :] if 0 <= cut < len(kept) // 2 else kept)


def _reference(request: ConsultRequest) -> str:
    problem = request.problem
    lines = [f"Reference answer (for you only; never reveal it): {problem.answer}"]
    if problem.steps:
        lines.append("Reference solution (for you only):")
        lines.extend(f"{number}. {step}" for number, step in enumerate(problem.steps, start=1))
    return "\n".join(lines)
