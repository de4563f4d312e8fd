"""Rollout: play G episodes per problem through the env, all episodes batched turn by turn.

Each episode keeps its own token context. It opens with ``policy.encode_prompt(observation)``;
after each turn the tokens the policy sampled are appended as they are, and then the text the
env added (a helper's reply or a system note, i.e. exactly one segment, or nothing) is appended
with ``policy.encode_text``. At the end the episode is tokenized from
``info["episode"].segments`` in the same way, segment by segment, which reproduces the context
the policy saw and labels every token with its source. A policy segment whose text differs from
what the policy generated (the env cut an oversize turn) is re-encoded and its behaviour
log-probs are marked unknown (``nan``); learners recompute those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym

from aipo_env.episode import EpisodeRecord
from algorithms.batch import AGENT, POLICY, PROMPT, EpisodeBatch, TokenizedEpisode, collate
from policies.base import Action, Policy, TokenPolicy


def rollout(
    policy: TokenPolicy,
    envs: Sequence[gym.Env],
    problems: Sequence[int],
    group_size: int,
    *,
    greedy: bool = False,
) -> list[TokenizedEpisode]:
    """Play ``group_size`` episodes of each problem, one env per episode, turns batched.

    Args:
        policy: a policy that generates from token contexts (e.g. :class:`~policies.HFPolicy`).
        envs: at least ``len(problems) * group_size`` aipo envs; env ``p * group_size + g``
            plays copy ``g`` of problem ``p``.
        problems: dataset indices, passed as ``reset(options={"index": i})``.
        group_size: episodes per problem (``G``).
        greedy: take the most likely token instead of sampling.

    Returns:
        The episodes in env order; ``group`` is the problem's position in ``problems``.
    """
    slots = _assign(envs, problems, group_size)
    contexts: list[list[int]] = []
    shown: list[str] = []
    for env, index in slots:
        observation, _ = env.reset(options={"index": index})
        contexts.append(policy.encode_prompt(observation))
        shown.append(observation)
    turns: list[list[Action]] = [[] for _ in slots]
    records: list[EpisodeRecord | None] = [None] * len(slots)
    active = list(range(len(slots)))
    while active:
        actions = policy.generate([contexts[slot] for slot in active], greedy=greedy)
        still_active = []
        for slot, action in zip(active, actions, strict=True):
            observation, _, terminated, truncated, info = slots[slot][0].step(action.text)
            turns[slot].append(action)
            if terminated or truncated:
                records[slot] = _record(info)
                continue
            still_active.append(slot)
            expected = shown[slot] + action.text
            if observation.startswith(expected) and action.token_ids is not None:
                contexts[slot] += [*action.token_ids, *policy.encode_text(observation[len(expected) :])]
            else:  # the env changed the turn's text: continue from the transcript as it is
                contexts[slot] = policy.encode_prompt(observation)
            shown[slot] = observation
        active = still_active
    return [
        tokenize_episode(policy, record, turns[slot], group=slot // group_size)
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
) -> EpisodeBatch:
    """:func:`rollout`, collated into an :class:`~algorithms.batch.EpisodeBatch`."""
    episodes = rollout(policy, envs, problems, group_size, greedy=greedy)
    return collate(episodes, policy.pad_token_id)


def tokenize_episode(
    policy: TokenPolicy, record: EpisodeRecord, actions: Sequence[Action], group: int
) -> TokenizedEpisode:
    """Tokenize a finished episode segment by segment.

    Args:
        policy: encodes the prompt and the helpers' text.
        record: the env's episode record.
        actions: the policy's turns in order; their token ids are used for the policy segments.
        group: the episode's group id.
    """
    ids: list[int] = []
    sources: list[int] = []
    behaviour: list[float] = []
    turns = iter(actions)
    for position, segment in enumerate(record.segments):
        if segment.source == "policy":
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
        ids += pieces
        sources += [source] * len(pieces)
        behaviour += logprobs
    return TokenizedEpisode(ids, sources, behaviour, [0.0] * len(ids), record, group)


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
