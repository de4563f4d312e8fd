r"""The own-voice transcript: an episode rewritten as if the policy had written the helper's reply itself.

``loss.agent_mode="own_voice"`` learns a helper's reply where the policy would have written it
(the objective is in :mod:`algorithms.aipo`). For an episode whose transcript ``x`` is ::

    prompt | own text, <consult agent="A">query</consult> | \n<feedback agent="A">reply</feedback>\n | continuation

the own-voice transcript ``x~`` is ::

    prompt | own text | reply \n | continuation

built segment by segment from ``info["episode"].segments`` and the token spans the rollout recorded
(:attr:`~algorithms.batch.TokenizedEpisode.segment_spans`):

* **prompt** and system notes (a refused consult's note stays, with its request): the episode's
  own tokens, context.
* **a policy turn answered by a helper**: its consult request is removed
  (:meth:`~aipo_env.protocol.Protocol.strip_consult`). The tokens the policy sampled are kept as
  they are up to the last one that ends inside the kept text (token pieces decoded one by one,
  :func:`~aipo_env.agents.token_pieces.decode_pieces`); when a token straddles the request's
  first character (a BPE merge of ``" <"``), the kept text it began is re-encoded with
  ``encode_text`` and made context: those few tokens were never sampled, so they have no
  behaviour log-prob and are not learned. A byte-level tokenizer (the tiny models') never
  straddles.
* **the helper's reply**: the wrapper's opening (``\n<feedback agent="A">``) and its closing tag
  are removed; the whitespace after the closing tag stays, so the reply ends its line as the
  policy's own step would (the demo's steps are one a line). This *helper content* is always
  re-encoded with ``encode_text``, as the policy tokenizes text: with a BPE tokenizer its first
  tokens can differ from the reply's tokens in ``x`` (there ``">"`` came before it), and its first
  token meets the policy's text without crossing the boundary (segment by segment, as the rollout
  does). A helper that reported token log-probs gets them on these tokens by character span
  (:mod:`algorithms.helper_logprobs`), otherwise ``log pi_agent = 0``.
* **the policy's other turns** (the continuation, and own text before a later consult): the
  sampled tokens as they are. Those after the first helper content are *continuation* tokens,
  learned in ``x~``; ``origin`` points at the same token in ``x``, where its behaviour log-prob
  was taken. Own tokens before the first helper content have the same context in ``x~`` as in
  ``x`` and stay context there (they are learned in ``x``).
* **a reference solution** (``rollout.reference_per_group``) is helper text without a wrapper:
  ``x~`` keeps it as it is, so own voice learns it exactly as ``aipo`` does.

Limits. Only the tokens next to a removed piece can change: a BPE tokenizer may have merged
across a boundary that ``x~`` no longer has (the continuation's first token after ``"\n"`` is
the sampled one, though the policy writing alone might have merged differently); the ratio of
such a token compares two tokenizations' probabilities. The policy never sampled ``x~``: the
continuation's behaviour log-probs are those of ``x`` (the off-policy ratio of :mod:`algorithms.aipo`).
An episode without helper content has no ``x~`` (an empty row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from aipo_env.agents.token_pieces import decode_pieces
from aipo_env.episode import EpisodeRecord, Segment, TokenLogprobs
from aipo_env.protocol import Protocol
from algorithms.batch import AGENT, PAD, POLICY, PROMPT, EpisodeBatch, SourceMasks
from algorithms.rollout import helper_logprobs_of
from policies.base import TokenPolicy


@dataclass
class VoicedEpisode:
    """One own-voice transcript as token lists (module docstring).

    Attributes:
        token_ids: its tokens.
        sources: ``PROMPT`` (context), ``POLICY`` (continuation) or ``AGENT`` (helper content).
        origin: per token, its position in the episode's transcript ``x`` (-1: re-encoded).
        agent_logprobs: ``log pi_agent`` of helper content (0 where the helper reported none).
    """

    token_ids: list[int] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)
    agent_logprobs: list[float] = field(default_factory=list)

    def add(self, ids: Sequence[int], source: int, origin: Sequence[int], agent: Sequence[float]) -> None:
        self.token_ids += list(ids)
        self.sources += [source] * len(ids)
        self.origin += list(origin)
        self.agent_logprobs += list(agent)


def voiced_episode(
    token_ids: Sequence[int],
    sources: Sequence[int],
    agent_logprobs: Sequence[float],
    spans: Sequence[tuple[int, int]],
    record: EpisodeRecord,
    policy: TokenPolicy,
    protocol: Protocol,
) -> VoicedEpisode | None:
    """The own-voice transcript of one tokenized episode, or ``None`` when it has no helper content.

    Args:
        token_ids, sources, agent_logprobs: the episode's tokens as the rollout labelled them.
        spans: each record segment's tokens ``[start, end)``.
        record: the episode's record.
        policy: its ``encode_text`` and ``tokenizer`` (to split sampled tokens into text).
        protocol: the env's tags (consult request, feedback wrapper).
    """
    if len(spans) != len(record.segments):
        raise ValueError(f"{len(spans)} token spans for {len(record.segments)} segments")
    voiced, spoken = VoicedEpisode(), False  # spoken: helper content has been written
    segments = record.segments
    for index, (segment, (start, end)) in enumerate(zip(segments, spans, strict=True)):
        positions = list(range(start, end))
        if segment.source == "agent":
            content = _helper_content(segment, protocol, policy)
            if content is None:  # not in the protocol's wrapper: kept as it is
                voiced.add(token_ids[start:end], AGENT, positions, agent_logprobs[start:end])
            else:
                voiced.add(content[0], AGENT, [-1] * len(content[0]), content[1])
            spoken = True
            continue
        answered = index + 1 < len(segments) and segments[index + 1].source == "agent"
        kept = protocol.strip_consult(segment.text) if answered else segment.text
        count, covered = (
            _sampled_prefix(policy, token_ids[start:end], kept) if answered else (end - start, len(kept))
        )
        for position in positions[:count]:
            source = sources[position]
            if source == POLICY and not spoken:
                source = PROMPT  # same context as in x: learned there
            voiced.add([token_ids[position]], source, [position], [agent_logprobs[position]])
            spoken = spoken or source == AGENT
        rest = policy.encode_text(kept[covered:]) if covered < len(kept) else []
        voiced.add(rest, PROMPT, [-1] * len(rest), [0.0] * len(rest))
    return voiced if AGENT in voiced.sources else None


def _helper_content(
    segment: Segment, protocol: Protocol, policy: TokenPolicy
) -> tuple[list[int], list[float]] | None:
    """The tokens of the reply without its wrapper (the whitespace after the closing tag kept) and
    their ``log pi_agent``; ``None`` when the segment is not wrapped as ``protocol`` wraps."""
    opening, closing = protocol.feedback_wrapper(segment.agent or "")
    text = segment.text
    if not (text.startswith(opening) and text.endswith(closing)) or len(text) < len(opening) + len(closing):
        return None
    tail = closing[len(closing.rstrip()) :]
    content = text[len(opening) : len(text) - len(closing)] + tail
    ids = policy.encode_text(content)
    agent = [0.0] * len(ids)
    reply = segment.logprobs
    if reply is not None:
        shifted = TokenLogprobs(
            reply.start - len(opening), reply.end - len(opening), reply.tokens, reply.logprobs
        )
        placed = helper_logprobs_of(policy, ids, Segment("agent", segment.agent, content, shifted))
        agent = placed if placed is not None else agent
    return ids, agent


def _sampled_prefix(policy: TokenPolicy, ids: Sequence[int], kept: str) -> tuple[int, int]:
    """How many of a consult turn's tokens ``ids`` write a prefix of ``kept`` (the turn without its
    request), and that prefix's length in characters.

    A token whose piece would run past ``kept`` ends the prefix, as do the tokens before it that
    wrote nothing yet (bytes of a character it would complete). Without a tokenizer whose pieces
    can be decoded one by one nothing is kept (the caller re-encodes ``kept``).
    """
    decode = _decoder(policy)
    pieces = None if decode is None else decode_pieces(decode, ids)
    if pieces is None:
        return 0, 0
    count, written, clean = 0, "", (0, 0)
    for piece in pieces:
        if not kept.startswith(written + piece):
            break
        written, count = written + piece, count + 1
        if piece:
            clean = (count, len(written))
    return clean


def _decoder(policy: TokenPolicy) -> Callable[[list[int]], str] | None:
    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is None:
        return None
    return lambda part: tokenizer.decode(part, skip_special_tokens=False, clean_up_tokenization_spaces=False)


@dataclass
class VoicedBatch(SourceMasks):
    """The own-voice transcripts of a batch's episodes, row ``b`` that of episode ``b`` (``B`` rows).

    A row without helper content is empty (all ``PAD``). ``T'`` is the longest transcript.

    Attributes:
        input_ids: ``[B, T']`` token ids, right-padded.
        source: ``[B, T']`` ``PROMPT`` / ``POLICY`` (continuation) / ``AGENT`` (helper content) / ``PAD``.
        origin: ``[B, T']`` position of the same token in the episode's row of the batch (-1: none).
        agent_logprobs: ``[B, T']`` ``log pi_agent`` of helper content.
    """

    input_ids: torch.Tensor
    source: torch.Tensor
    origin: torch.Tensor
    agent_logprobs: torch.Tensor

    @property
    def present(self) -> torch.Tensor:
        """``[B]``: rows that have an own-voice transcript."""
        return self.attention_mask.any(dim=1)

    def select(self, rows: Sequence[int] | torch.Tensor) -> VoicedBatch:
        """The rows ``rows``, trimmed to their longest transcript."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.source.device)
        source = self.source[rows]
        width = int((source != PAD).sum(dim=1).max()) if len(rows) else 0
        return VoicedBatch(
            self.input_ids[rows, :width], source[:, :width], self.origin[rows, :width],
            self.agent_logprobs[rows, :width],
        )  # fmt: skip

    def to(self, device: torch.device | str) -> VoicedBatch:
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            source=self.source.to(device),
            origin=self.origin.to(device),
            agent_logprobs=self.agent_logprobs.to(device),
        )

    def behaviour(self, logprobs: torch.Tensor) -> torch.Tensor:
        """``[B, T']``: ``logprobs`` (``[B, T]``, per token of the batch's rows) at each token's origin,
        0 where it has none."""
        if logprobs.shape[1] == 0 or self.origin.shape[1] == 0:
            return torch.zeros_like(self.agent_logprobs)
        picked = logprobs.gather(1, self.origin.clamp(min=0, max=logprobs.shape[1] - 1))
        return torch.where(self.origin >= 0, picked, 0.0)


def voiced_batch(batch: EpisodeBatch, policy: TokenPolicy, protocol: Protocol) -> VoicedBatch:
    """The own-voice transcripts of every episode of ``batch`` (on the CPU).

    Raises:
        ValueError: the batch has no segment spans (it was not made by :func:`algorithms.rollout.rollout`).
    """
    if len(batch.segment_spans) != len(batch) or len(batch.records) != len(batch):
        raise ValueError(
            "agent_mode='own_voice' rebuilds each episode from its segments: the batch needs records and "
            "segment_spans (episodes tokenized by algorithms.rollout.tokenize_episode)"
        )
    ids, source = batch.input_ids.cpu(), batch.source.cpu()
    agent = batch.agent_logprobs.cpu()
    episodes = []
    for row, (record, spans) in enumerate(zip(batch.records, batch.segment_spans, strict=True)):
        length = int((source[row] != PAD).sum())
        voiced = voiced_episode(
            ids[row, :length].tolist(), source[row, :length].tolist(), agent[row, :length].tolist(),
            spans, record, policy, protocol,
        )  # fmt: skip
        episodes.append(voiced or VoicedEpisode())
    width = max(len(episode.token_ids) for episode in episodes)
    shape = (len(episodes), width)
    out = VoicedBatch(
        input_ids=torch.full(shape, policy.pad_token_id, dtype=torch.long),
        source=torch.full(shape, PAD, dtype=torch.long),
        origin=torch.full(shape, -1, dtype=torch.long),
        agent_logprobs=torch.zeros(shape),
    )
    for row, episode in enumerate(episodes):
        length = len(episode.token_ids)
        out.input_ids[row, :length] = torch.tensor(episode.token_ids, dtype=torch.long)
        out.source[row, :length] = torch.tensor(episode.sources, dtype=torch.long)
        out.origin[row, :length] = torch.tensor(episode.origin, dtype=torch.long)
        out.agent_logprobs[row, :length] = torch.tensor(episode.agent_logprobs)
    return out
