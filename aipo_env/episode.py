"""The episode record: the ordered text segments of one episode and its outcome.

Learners tokenize an episode segment by segment, so the masks for policy tokens and agent tokens
are exact. The observation after every step is ``"".join(s.text for s in segments)``. A helper's
segment may carry the per-token log-probs its model reported (:class:`TokenLogprobs`), which AIPO
uses as ``log pi_agent`` (:mod:`algorithms.helper_logprobs` moves them onto the policy's tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Source = Literal["prompt", "policy", "agent"]


@dataclass(frozen=True)
class TokenLogprobs:
    """The helper model's tokens of a reply inside a segment, and the log-prob of each.

    Characters ``[start, end)`` of the segment's text are the reply as the helper generated it;
    the rest (the ``<feedback agent="...">`` wrapper the env adds) has no helper log-prob. When
    the record is well formed, ``"".join(tokens) == text[start:end]`` and ``tokens`` and
    ``logprobs`` have the same length; learners check this and ignore the log-probs otherwise.

    Attributes:
        start, end: the reply's character span in :attr:`Segment.text`.
        tokens: each token's piece of the reply text (a character split over several tokens
            belongs to the one that completes it; the others have ``""``), or ``None`` when the
            helper did not say, which leaves the log-probs unusable on another tokenizer.
        logprobs: ``log pi_agent`` of each token given the helper's prompt and earlier tokens.
    """

    start: int
    end: int
    tokens: tuple[str, ...] | None
    logprobs: tuple[float, ...]


@dataclass(frozen=True)
class Segment:
    """One piece of the transcript.

    Attributes:
        source: ``prompt`` (written by the environment: the problem and system notes),
            ``policy`` (an action, verbatim after sanitising) or ``agent`` (a helper's reply,
            feedback tags included, since a policy that reasons alone may write them itself).
        agent: the helper's name for ``agent`` segments, ``"system"`` for environment notes,
            ``None`` otherwise.
        text: the characters of this piece.
        logprobs: for ``agent`` segments, the helper's token log-probs of its reply when its
            backend reports them (``None`` otherwise, and always for other sources).
    """

    source: Source
    agent: str | None
    text: str
    logprobs: TokenLogprobs | None = None


@dataclass
class EpisodeRecord:
    """Everything a learner needs from a finished episode (``info["episode"]`` at its end).

    Attributes:
        segments: the transcript in order.
        reward: the episode return (sum of step rewards).
        score: the task's score of the final response, before consult costs and penalties.
        correct: whether the task judged the final response correct.
        consults: answered consults per agent name.
        unanswered_consults: consults not answered: ``consult="off"`` mode, an exhausted budget,
            a missing agent, or an agent failure.
        agent_failures: consults whose agent raised, timed out or replied with nothing.
        agent_failure_kinds: those failures by kind (see :func:`aipo_env.agents.base.failure_kind`).
        invalid_actions: actions that got the invalid-action penalty.
        problem_id: the id of the problem that was played.
        extracted_answer: what the task read as the answer, if anything.
    """

    segments: list[Segment] = field(default_factory=list)
    reward: float = 0.0
    score: float = 0.0
    correct: bool = False
    consults: dict[str, int] = field(default_factory=dict)
    unanswered_consults: int = 0
    agent_failures: int = 0
    agent_failure_kinds: dict[str, int] = field(default_factory=dict)
    invalid_actions: int = 0
    problem_id: str = ""
    extracted_answer: str | None = None

    @property
    def transcript(self) -> str:
        """The whole transcript, equal to the last observation."""
        return "".join(segment.text for segment in self.segments)

    def texts(self, source: Source) -> list[str]:
        """The texts of all segments from one source, in order."""
        return [segment.text for segment in self.segments if segment.source == source]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of this record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeRecord:
        """Rebuild a record written by :meth:`to_dict`."""
        segments: Sequence[dict[str, Any]] = data.get("segments", [])
        fields = {key: value for key, value in data.items() if key != "segments"}
        return cls(segments=[_segment(segment) for segment in segments], **fields)


def _segment(data: dict[str, Any]) -> Segment:
    """A segment from its dict; dicts written before segments had ``logprobs`` load as ``None``."""
    logprobs = data.get("logprobs")
    if logprobs is not None:
        tokens = logprobs.get("tokens")
        logprobs = TokenLogprobs(
            int(logprobs["start"]),
            int(logprobs["end"]),
            None if tokens is None else tuple(tokens),
            tuple(float(value) for value in logprobs["logprobs"]),
        )
    return Segment(data["source"], data.get("agent"), data["text"], logprobs)
