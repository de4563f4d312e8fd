"""The episode batch: what every learner consumes.

One row per episode, tokens right-padded to the longest episode. ``source`` says who wrote each
token, so the masks for policy tokens and agent tokens are exact (episodes are tokenized segment
by segment, see :mod:`algorithms.rollout`). A custom learner needs nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from aipo_env.episode import EpisodeRecord

PAD, PROMPT, POLICY, AGENT = -1, 0, 1, 2
SOURCE_CODES: dict[str, int] = {"prompt": PROMPT, "policy": POLICY, "agent": AGENT}


class SourceMasks:
    """The masks of a ``[B, T]`` ``source`` tensor (a batch's or its own-voice transcripts')."""

    source: torch.Tensor

    @property
    def attention_mask(self) -> torch.Tensor:
        return self.source != PAD

    @property
    def policy_mask(self) -> torch.Tensor:
        return self.source == POLICY

    @property
    def agent_mask(self) -> torch.Tensor:
        return self.source == AGENT


@dataclass
class TokenizedEpisode:
    """One episode as tokens.

    Attributes:
        token_ids: the whole transcript's token ids.
        sources: one of ``PROMPT``, ``POLICY``, ``AGENT`` per token.
        behaviour_logprobs: per token, the log-prob under the policy that sampled it (policy
            tokens; ``nan`` where unknown), ``0`` for other tokens.
        agent_logprobs: per token, ``log pi_agent`` of agent tokens when the agent reports them,
            ``0`` (``pi_agent = 1``) otherwise.
        record: the env's record of the episode.
        group: the group (problem) the episode belongs to.
        unaligned_agent_segments: helper segments whose reported log-probs could not be placed
            on the policy's tokens (their tokens got ``0``; see :mod:`algorithms.helper_logprobs`).
        segment_spans: per segment of ``record``, its tokens ``[start, end)`` in ``token_ids``
            (empty when the episode was not tokenized segment by segment).
    """

    token_ids: list[int]
    sources: list[int]
    behaviour_logprobs: list[float]
    agent_logprobs: list[float]
    record: EpisodeRecord
    group: int
    unaligned_agent_segments: int = 0
    segment_spans: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class EpisodeBatch(SourceMasks):
    """A batch of episodes as padded tensors (``B`` episodes, ``T`` tokens).

    Attributes:
        input_ids: ``[B, T]`` token ids, right-padded with the pad id.
        source: ``[B, T]`` ``PROMPT`` / ``POLICY`` / ``AGENT``, ``PAD`` after an episode ends.
        behaviour_logprobs: ``[B, T]`` log-probs of policy tokens under the sampling policy.
        agent_logprobs: ``[B, T]`` ``log pi_agent`` of agent tokens (``0`` when not reported).
        rewards: ``[B]`` episode returns.
        group_ids: ``[B]`` episodes with the same id answer the same problem.
        records: the env's episode records, in row order.
        unaligned_agent_segments: ``[B]`` per episode, helper segments whose reported log-probs
            could not be placed on the policy's tokens (``None``: not counted).
        segment_spans: per episode, each record segment's tokens ``[start, end)`` (empty: unknown);
            :mod:`algorithms.own_voice` rebuilds transcripts from them.
    """

    input_ids: torch.Tensor
    source: torch.Tensor
    behaviour_logprobs: torch.Tensor
    agent_logprobs: torch.Tensor
    rewards: torch.Tensor
    group_ids: torch.Tensor
    records: list[EpisodeRecord] = field(default_factory=list)
    unaligned_agent_segments: torch.Tensor | None = None
    segment_spans: list[list[tuple[int, int]]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: Sequence[int] | torch.Tensor) -> EpisodeBatch:
        """The sub-batch of ``rows``, trimmed to its longest episode."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        source = self.source[rows]
        width = int((source != PAD).sum(dim=1).max()) if len(rows) else 0
        return EpisodeBatch(
            input_ids=self.input_ids[rows, :width],
            source=source[:, :width],
            behaviour_logprobs=self.behaviour_logprobs[rows, :width],
            agent_logprobs=self.agent_logprobs[rows, :width],
            rewards=self.rewards[rows],
            group_ids=self.group_ids[rows],
            records=[self.records[int(row)] for row in rows] if self.records else [],
            unaligned_agent_segments=None
            if self.unaligned_agent_segments is None
            else self.unaligned_agent_segments[rows],
            segment_spans=[self.segment_spans[int(row)] for row in rows] if self.segment_spans else [],
        )

    def to(self, device: torch.device | str) -> EpisodeBatch:
        """The batch with every tensor on ``device``."""
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            source=self.source.to(device),
            behaviour_logprobs=self.behaviour_logprobs.to(device),
            agent_logprobs=self.agent_logprobs.to(device),
            rewards=self.rewards.to(device),
            group_ids=self.group_ids.to(device),
        )


def collate(episodes: Sequence[TokenizedEpisode], pad_id: int) -> EpisodeBatch:
    """Pad tokenized episodes into an :class:`EpisodeBatch`."""
    if not episodes:
        raise ValueError("cannot collate an empty list of episodes")
    width = max(len(episode.token_ids) for episode in episodes)
    shape = (len(episodes), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    source = torch.full(shape, PAD, dtype=torch.long)
    behaviour = torch.zeros(shape)
    agent = torch.zeros(shape)
    for row, episode in enumerate(episodes):
        length = len(episode.token_ids)
        input_ids[row, :length] = torch.tensor(episode.token_ids, dtype=torch.long)
        source[row, :length] = torch.tensor(episode.sources, dtype=torch.long)
        behaviour[row, :length] = torch.tensor(episode.behaviour_logprobs)
        agent[row, :length] = torch.tensor(episode.agent_logprobs)
    return EpisodeBatch(
        input_ids=input_ids,
        source=source,
        behaviour_logprobs=behaviour,
        agent_logprobs=agent,
        rewards=torch.tensor([episode.record.reward for episode in episodes], dtype=torch.float32),
        group_ids=torch.tensor([episode.group for episode in episodes], dtype=torch.long),
        records=[episode.record for episode in episodes],
        unaligned_agent_segments=torch.tensor(
            [episode.unaligned_agent_segments for episode in episodes], dtype=torch.long
        ),
        segment_spans=[list(episode.segment_spans) for episode in episodes],
    )
