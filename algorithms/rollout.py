"""Rollout: play G episodes per problem through the env, all episodes batched turn by turn.

Each episode keeps its own token context. It opens with ``policy.encode_prompt(observation)``;
after each turn the tokens the policy sampled are appended as they are, and then the text the
env added (a helper's reply or a system note, i.e. exactly one segment, or nothing) is appended
with ``policy.encode_text``. At the end the episode is tokenized from
``info["episode"].segments`` in the same way, segment by segment, which reproduces the context
the policy saw and labels every token with its source. A policy segment whose text differs from
what the policy generated (the env cut an oversize turn) is re-encoded and its behaviour
log-probs are marked unknown (``nan``); learners recompute those. A helper segment that carries
its model's token log-probs gets them on the policy's tokens as ``agent_logprobs``
(:mod:`algorithms.helper_logprobs`); every other token has ``agent_logprobs = 0``.

Guided exploration (:class:`Guide`): in each group the first ``per_group`` episodes open with a
scripted consult instead of a sampled turn. The request is written by the rollout, not sampled,
so it is tokenized as context (``PROMPT``) and never learned; the helper's reply and everything
the policy writes after it are labelled as usual.

Reference episodes (trajectory-level guidance, LUFFY: Yan et al., 2025): the last
``Guide.references`` episodes of each group sample nothing; their one turn is the problem's
complete reference solution (:func:`aipo_env.tasks.base.written_solution`), scored by the env
like any answer, so its reward takes part in the group's advantage. It is tokenized as helper
text (``AGENT``), followed by the policy's EOS token so that stopping is learned too, with
``agent_logprobs = 0``: its behaviour probability is unknown, so ``pi_agent = 1`` and the
helper-token term learns it off-policy (``agent_mode="luffy"`` is LUFFY's policy shaping).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym

from aipo_env.agents.token_pieces import decode_pieces
from aipo_env.episode import EpisodeRecord, Segment
from aipo_env.tasks.base import written_solution
from algorithms.batch import AGENT, POLICY, PROMPT, EpisodeBatch, TokenizedEpisode, collate
from algorithms.helper_logprobs import spread_logprobs
from policies.base import Action, Policy, TokenPolicy

logger = logging.getLogger("algorithms.rollout")
_warned_unaligned = False


@dataclass(frozen=True)
class Guide:
    """Guided exploration: the first ``per_group`` episodes of each group consult ``agent`` first,
    and the last ``references`` play the reference solution (module docstring).

    Attributes:
        per_group: guided episodes per group (0 = none).
        agent: the agent consulted by the scripted first turn.
        query: its question.
        references: reference episodes per group (0 = none).
    """

    per_group: int = 0
    agent: str = "reasoning"
    query: str = "next step"
    references: int = 0

    def opening(self, env: gym.Env) -> Action:
        """The scripted first turn, in ``env``'s own action protocol."""
        protocol = getattr(env.unwrapped, "protocol", None)
        if protocol is None:
            raise ValueError("guided episodes need an aipo env (one with a `protocol` attribute)")
        if self.agent not in protocol.agents:
            raise ValueError(
                f"rollout.guide_agent={self.agent!r} is not one of the env's agents {list(protocol.agents)}"
            )
        return Action(protocol.consult(self.agent, self.query))


def rollout(
    policy: TokenPolicy,
    envs: Sequence[gym.Env],
    problems: Sequence[int],
    group_size: int,
    *,
    greedy: bool = False,
    guide: Guide | None = None,
) -> list[TokenizedEpisode]:
    """Play ``group_size`` episodes of each problem, one env per episode, turns batched.

    Args:
        policy: a policy that generates from token contexts (e.g. :class:`~policies.HFPolicy`).
        envs: at least ``len(problems) * group_size`` aipo envs; env ``p * group_size + g``
            plays copy ``g`` of problem ``p``.
        problems: dataset indices, passed as ``reset(options={"index": i})``.
        group_size: episodes per problem (``G``).
        greedy: take the most likely token instead of sampling.
        guide: opens the first ``guide.per_group`` episodes of each group with a scripted consult;
            the last ``guide.references`` play the reference solution.

    Returns:
        The episodes in env order; ``group`` is the problem's position in ``problems``.

    Raises:
        ValueError: guided and reference episodes do not fit in a group, or a reference episode's
            problem has no reference steps.
    """
    slots = _assign(envs, problems, group_size)
    guided, references = (0, 0) if guide is None else (guide.per_group, guide.references)
    if guided + references > group_size:
        raise ValueError(
            f"{guided} guided and {references} reference episodes per group do not fit in groups "
            f"of {group_size}"
        )
    contexts: list[list[int]] = []
    shown: list[str] = []
    solutions: dict[int, str] = {}  # reference episodes: the one turn they play
    for slot, (env, index) in enumerate(slots):
        observation, _ = env.reset(options={"index": index})
        contexts.append(policy.encode_prompt(observation))
        shown.append(observation)
        if slot % group_size >= group_size - references:
            solutions[slot] = written_solution(env.unwrapped.problem)
    turns: list[list[Action]] = [[] for _ in slots]
    records: list[EpisodeRecord | None] = [None] * len(slots)
    active = list(range(len(slots)))
    scripted = [slot % group_size < guided for slot in active]
    while active:
        fresh = [slot for slot in active if not turns[slot]]  # first turns: some are written here
        written = {slot: Action(solutions[slot]) for slot in fresh if slot in solutions}
        if guide is not None:
            written |= {slot: guide.opening(slots[slot][0]) for slot in fresh if scripted[slot]}
        sampled = [slot for slot in active if slot not in written]
        generated = iter(
            policy.generate([contexts[slot] for slot in sampled], greedy=greedy) if sampled else ()
        )
        actions = [written[slot] if slot in written else next(generated) for slot in active]
        still_active = []
        for slot, action in zip(active, actions, strict=True):
            observation, _, terminated, truncated, info = slots[slot][0].step(action.text)
            turns[slot].append(action)
            if terminated or truncated:
                records[slot] = _record(info)
                continue
            still_active.append(slot)
            expected = shown[slot] + action.text
            if observation.startswith(expected) and action.token_ids is None:  # a scripted turn: encode it
                contexts[slot] += policy.encode_text(observation[len(shown[slot]) :])
            elif observation.startswith(expected):
                contexts[slot] += [*action.token_ids, *policy.encode_text(observation[len(expected) :])]
            else:  # the env changed the turn's text: continue from the transcript as it is
                contexts[slot] = policy.encode_prompt(observation)
            shown[slot] = observation
        active = still_active
    return [
        tokenize_episode(
            policy,
            record,
            turns[slot],
            group=slot // group_size,
            scripted_turns=int(scripted[slot]),
            reference=slot in solutions,
        )
        for slot, record in enumerate(records)
        if record is not None
    ]


def collect(
    policy: TokenPolicy,
    envs: Sequence[gym.Env],
    problems: Sequence[int],
    group_size: int,
    *,
    greedy: bool = False,
    guide: Guide | None = None,
) -> EpisodeBatch:
    """:func:`rollout`, collated into an :class:`~algorithms.batch.EpisodeBatch`."""
    episodes = rollout(policy, envs, problems, group_size, greedy=greedy, guide=guide)
    return collate(episodes, policy.pad_token_id)


def tokenize_episode(
    policy: TokenPolicy,
    record: EpisodeRecord,
    actions: Sequence[Action],
    group: int,
    *,
    scripted_turns: int = 0,
    reference: bool = False,
) -> TokenizedEpisode:
    """Tokenize a finished episode segment by segment.

    Helper segments whose agent reported token log-probs get them as ``agent_logprobs``, moved
    onto the policy's tokens by :func:`~algorithms.helper_logprobs.spread_logprobs`; this needs
    the policy's tokenizer (``policy.tokenizer``, as :class:`~policies.HFPolicy` has). When they
    cannot be placed (the helper's token pieces do not concatenate to its reply, it gave no pieces,
    or the policy has no tokenizer to split its tokens into text), that segment keeps
    ``agent_logprobs = 0`` (``pi_agent = 1``) and is counted in
    ``TokenizedEpisode.unaligned_agent_segments``; the first time, a warning says why.

    Args:
        policy: encodes the prompt and the helpers' text.
        record: the env's episode record.
        actions: the policy's turns in order; their token ids are used for the policy segments.
        group: the episode's group id.
        scripted_turns: how many of the first policy turns were written by the rollout (a
            guided episode's opening consult); they are tokenized as context (``PROMPT``).
        reference: the first policy turn is the reference solution (which ends the episode):
            tokenized as helper text (``AGENT``, ``agent_logprobs = 0``), then the policy's EOS token.

    Raises:
        ValueError: a reference episode's policy has no ``eos_token_ids``.
    """
    ids: list[int] = []
    sources: list[int] = []
    behaviour: list[float] = []
    agent: list[float] = []
    unaligned = 0
    spans: list[tuple[int, int]] = []
    turns = iter(actions)
    played = 0
    for position, segment in enumerate(record.segments):
        if segment.source == "policy" and played < scripted_turns:
            next(turns, None)
            played += 1
            pieces = policy.encode_text(segment.text)
            logprobs, source = [0.0] * len(pieces), PROMPT
        elif segment.source == "policy" and reference and played == 0:
            next(turns, None)
            played += 1
            pieces = policy.encode_text(segment.text) + _end_of_turn(policy)
            logprobs, source = [0.0] * len(pieces), AGENT
        elif segment.source == "policy":
            action = next(turns, None)
            if action is not None and action.token_ids is not None and action.text == segment.text:
                pieces, logprobs = list(action.token_ids), list(action.logprobs or ())
            else:
                pieces = policy.encode_text(segment.text)
                logprobs = [math.nan] * len(pieces)
            source = POLICY
        else:
            pieces = policy.encode_prompt(segment.text) if position == 0 else policy.encode_text(segment.text)
            logprobs = [0.0] * len(pieces)
            source = AGENT if segment.source == "agent" else PROMPT
        helper = [0.0] * len(pieces)
        if source == AGENT and segment.logprobs is not None:
            placed = helper_logprobs_of(policy, pieces, segment)
            if placed is None:
                unaligned += 1
            else:
                helper = placed
        spans.append((len(ids), len(ids) + len(pieces)))
        ids += pieces
        sources += [source] * len(pieces)
        behaviour += logprobs
        agent += helper
    return TokenizedEpisode(ids, sources, behaviour, agent, record, group, unaligned, spans)


def _end_of_turn(policy: TokenPolicy) -> list[int]:
    """The token that ends the policy's turn, for reference solutions (the first EOS id)."""
    eos = getattr(policy, "eos_token_ids", None)
    if not eos:
        raise ValueError(
            "reference episodes end with the policy's EOS token, but the policy has no eos_token_ids "
            "(HFPolicy and CompletionsPolicy have them)"
        )
    return [eos[0]]


def helper_logprobs_of(policy: TokenPolicy, ids: list[int], segment: Segment) -> list[float] | None:
    """The helper's log-probs on the policy tokens ``ids`` of ``segment``, or ``None`` (warned once)."""
    global _warned_unaligned
    assert segment.logprobs is not None
    tokenizer = getattr(policy, "tokenizer", None)
    placed, reason = None, "the policy has no tokenizer to split its tokens into text"
    if tokenizer is not None:

        def decode(part: list[int]) -> str:
            return tokenizer.decode(part, skip_special_tokens=False, clean_up_tokenization_spaces=False)

        pieces = decode_pieces(decode, ids)
        placed = None if pieces is None else spread_logprobs(pieces, segment.text, segment.logprobs)
        reason = (
            "the policy's tokens do not decode back to the segment's text one by one"
            if pieces is None or "".join(pieces) != segment.text
            else "the helper's token pieces are missing or do not concatenate to its reply"
        )
    if placed is None and not _warned_unaligned:
        _warned_unaligned = True
        logger.warning(
            "the %s agent's token log-probs cannot be placed on the policy's tokens (%s); its "
            "tokens get pi_agent = 1. TokenizedEpisode.unaligned_agent_segments counts such segments; "
            "this warning is shown once.",
            segment.agent,
            reason,
        )
    return placed


def play(
    policy: Policy,
    envs: Sequence[gym.Env],
    problems: Sequence[int],
    group_size: int = 1,
    *,
    greedy: bool = False,
) -> list[EpisodeRecord]:
    """Play episodes with any policy through :meth:`~policies.base.Policy.act`; return the records.

    Token policies are played through :func:`rollout` instead (``greedy`` applies to them), so
    evaluation sees the same contexts as training. Records come in env order: copy ``g`` of
    problem ``p`` is record ``p * group_size + g``.
    """
    if isinstance(policy, TokenPolicy):
        return [episode.record for episode in rollout(policy, envs, problems, group_size, greedy=greedy)]
    slots = _assign(envs, problems, group_size)
    observations = [env.reset(options={"index": index})[0] for env, index in slots]
    records: list[EpisodeRecord | None] = [None] * len(slots)
    active = list(range(len(slots)))
    while active:
        actions = policy.act([observations[slot] for slot in active])
        still_active = []
        for slot, action in zip(active, actions, strict=True):
            observation, _, terminated, truncated, info = slots[slot][0].step(action.text)
            if terminated or truncated:
                records[slot] = _record(info)
            else:
                observations[slot] = observation
                still_active.append(slot)
        active = still_active
    return [record for record in records if record is not None]


def _assign(envs: Sequence[gym.Env], problems: Sequence[int], group_size: int) -> list[tuple[gym.Env, int]]:
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    needed = len(problems) * group_size
    if len(envs) < needed:
        raise ValueError(
            f"{len(problems)} problems x {group_size} episodes need {needed} envs, got {len(envs)}"
        )
    return [(envs[slot], int(problems[slot // group_size])) for slot in range(needed)]


def _record(info: dict) -> EpisodeRecord:
    record = info.get("episode")
    if not isinstance(record, EpisodeRecord):
        raise RuntimeError(
            "an episode ended without an EpisodeRecord in info['episode']: rollouts need aipo envs "
            "that end episodes themselves (no TimeLimit wrapper; set the env's max_turns instead)"
        )
    return record
