"""The interface every consult agent implements, and the request/reply types it speaks.

An agent answers one :class:`ConsultRequest` with an :class:`AgentReply`. Agents backed by a
model may answer many requests at once through :meth:`Agent.reply_batch`; the default answers
them one by one. The environment guards every call: an agent that raises or returns garbage
yields an "unavailable" note in the transcript, never an exception in ``step``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from aipo_env.episode import Segment
from aipo_env.tasks.base import Problem, Task


@dataclass(frozen=True)
class ConsultRequest:
    """One question to one agent, with the context it may use.

    Attributes:
        agent: the addressed agent's name (``verify``, ``knowledge`` or ``reasoning``).
        query: the policy's question, tags removed.
        problem: the problem being solved (agents without ``reference_access`` must not read
            ``problem.answer`` or ``problem.steps``).
        task: the task, for its scorer and knowledge.
        segments: the transcript so far, the consulting turn included.
    """

    agent: str
    query: str
    problem: Problem
    task: Task
    segments: tuple[Segment, ...]

    @property
    def policy_text(self) -> str:
        """Everything the policy has written so far."""
        return "".join(segment.text for segment in self.segments if segment.source == "policy")

    @property
    def question(self) -> str:
        """The problem statement as the policy saw it."""
        return self.problem.question


@dataclass(frozen=True)
class AgentReply:
    """An agent's answer.

    Attributes:
        text: the reply as it enters the transcript (the env trims it to its budget).
        ok: ``False`` when the agent failed and ``text`` is a fallback note.
        error: what went wrong, for ``info`` and counters (never holds secrets).
        error_kind: the failure's kind, from :func:`failure_kind` (``None`` when ``ok``).
        token_logprobs: per-token log-probabilities of ``text`` under the agent's model, when
            the backend reports them (AIPO's ``raw``, ``luffy`` and ``aipo`` modes use them as
            ``log pi_agent``).
        token_texts: each of those tokens' piece of ``text`` (``"".join(token_texts) == text``;
            see :mod:`aipo_env.agents.token_pieces`). A learner whose tokenizer differs from the
            agent's needs them to place the log-probs; without them the log-probs go unused.
    """

    text: str
    ok: bool = True
    error: str | None = None
    error_kind: str | None = None
    token_logprobs: tuple[float, ...] | None = None
    token_texts: tuple[str, ...] | None = None


FAILURE_KINDS = ("timeout", "connection", "http", "reply", "error")


def failure_kind(error: BaseException) -> str:
    """What kind of failure ``error`` is, for counters and metrics (one of :data:`FAILURE_KINDS`).

    ``timeout``: no whole reply in time; ``connection``: the server could not be reached;
    ``http``: it answered with an error status; ``reply``: it answered with nothing usable (empty,
    garbled, malformed); ``error``: anything else. Read from the exception's class names, so the
    ``openai`` and ``httpx`` classes need not be imported.
    """
    names = [cls.__name__ for cls in type(error).__mro__]
    if any("Timeout" in name for name in names):
        return "timeout"
    if any(name in ("APIConnectionError", "ConnectionError", "ConnectError") for name in names):
        return "connection"
    if "APIStatusError" in names:
        return "http"
    if "ReplyError" in names:
        return "reply"
    return "error"


class Agent(ABC):
    """A helper that answers consults.

    Three entry points, all safe to call from many threads at once:

    * :meth:`reply` answers one request (the env calls it on a consult);
    * :meth:`reply_batch` answers many; model-backed agents send them concurrently (an HTTP
      backend up to its ``max_concurrency``) or generate them in one batch, so a learner that
      collects the pending consults of a batch of episodes pays for one round trip, not many;
    * :meth:`areply_batch` is the same for ``asyncio`` rollout code: it awaits
      :meth:`reply_batch` in a worker thread, so the event loop stays free.

    Model-backed agents never raise from these methods: a failure comes back as
    ``AgentReply(ok=False, error=...)``.

    Attributes:
        name: the role name the agent answers to.
        reference_access: whether the agent reads the reference answer and solution.
    """

    name: str = "agent"
    reference_access: bool = False
    #: warn when a reply fails; a trainer that warns once per step with the totals turns it off
    log_failures: bool = True

    @property
    def last_error(self) -> str:
        """The last failed reply's error (``""`` when none failed); model-backed agents keep it."""
        return ""

    @abstractmethod
    def reply(self, request: ConsultRequest) -> AgentReply:
        """Answer one request."""

    def reply_batch(self, requests: Sequence[ConsultRequest]) -> list[AgentReply]:
        """Answer many requests, in order; backends override this to run them concurrently."""
        return [self.reply(request) for request in requests]

    async def areply_batch(self, requests: Sequence[ConsultRequest]) -> list[AgentReply]:
        """:meth:`reply_batch` for ``asyncio`` code, run in a worker thread."""
        return await asyncio.to_thread(self.reply_batch, list(requests))

    def close(self) -> None:
        """Release clients, servers or models. Safe to call twice."""
