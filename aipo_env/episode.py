"""The episode record: the ordered text segments of one episode and its outcome.

Learners tokenize an episode segment by segment, so the masks for policy tokens and agent tokens
are exact. The observation after every step is ``"".join(s.text for s in segments)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Source = Literal["prompt", "policy", "agent"]


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
    """

    source: Source
    agent: str | None
    text: str


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
        return cls(segments=[Segment(**segment) for segment in segments], **fields)
