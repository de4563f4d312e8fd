"""Supervised warm-up: teach a policy the format of worked solutions from example episodes.

The examples are ordinary :class:`~aipo_env.episode.EpisodeRecord` objects (played in the env by
a demonstrator), so warm-up sees exactly the transcripts RL will see: the prompt as the env
writes it, the policy's turns, and helper replies spliced in as ``<feedback>``. Episodes are
tokenized as in :mod:`algorithms.rollout`; a policy turn that ends the episode gets the EOS token
(the sampler stops there), a consult turn does not (the sampler stops at ``</consult>``). Only
policy tokens are learned:

    L(theta) = - sum_i sum_{t in P_i} log pi_theta(x_t | x_<t) / sum_i |P_i|

(token-level cross-entropy on the policy's tokens; prompt and helper tokens are context only).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from aipo_env.episode import EpisodeRecord
from algorithms.batch import TokenizedEpisode, collate
from algorithms.forward import token_logprobs
from algorithms.rollout import tokenize_episode
from policies.base import Action
from policies.hf import HFPolicy


@dataclass(frozen=True)
class SFTSettings:
    """How the warm-up trains.

    Attributes:
        steps: optimizer steps.
        batch_size: episodes per step.
        lr: peak learning rate (linear warm-up over the first 5% of steps, then cosine decay).
        weight_decay: AdamW weight decay.
        seed: seeds the order of examples.
        progress: show a progress bar.
    """

    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = True


def tokenize_demonstration(policy: HFPolicy, record: EpisodeRecord) -> TokenizedEpisode:
    """One demonstration episode as tokens, EOS after the turn that ends it."""
    turns = [segment.text for segment in record.segments if segment.source == "policy"]
    actions = []
    for position, text in enumerate(turns):
        ids = policy.encode_text(text)
        if position == len(turns) - 1:
            ids.append(policy.eos_token_ids[0])
        actions.append(Action(text, tuple(ids), tuple(0.0 for _ in ids)))
    return tokenize_episode(policy, record, actions, group=0)


def supervised_warmup(
    policy: HFPolicy, records: Sequence[EpisodeRecord], settings: SFTSettings
) -> list[dict[str, float]]:
    """Train ``policy`` in place on the policy turns of ``records``; returns per-step metrics.

    Examples are drawn in seeded random order without replacement, reshuffled after each pass.

    Raises:
        ValueError: when there are no records or a record has no policy turn.
    """
    if not records:
        raise ValueError("supervised_warmup needs at least one demonstration episode")
    examples = [tokenize_demonstration(policy, record) for record in records]
    if any(not any(source == 1 for source in example.sources) for example in examples):
        raise ValueError("every demonstration needs at least one policy turn to learn from")
    model = policy.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = get_scheduler(
        "cosine", optimizer, num_warmup_steps=max(1, settings.steps // 20), num_training_steps=settings.steps
    )
    rng = random.Random(settings.seed)
    order: list[int] = []
    history: list[dict[str, float]] = []
    bar = tqdm(range(settings.steps), desc="warm-up", disable=not settings.progress)
    for step in bar:
        rows = []
        while len(rows) < settings.batch_size:
            if not order:
                order = list(range(len(examples)))
                rng.shuffle(order)
            rows.append(order.pop())
        batch = collate([examples[row] for row in rows], policy.pad_token_id).to(policy.device)
        logprobs, _ = token_logprobs(model, batch.input_ids, batch.attention_mask)
        mask = batch.policy_mask
        loss = -(logprobs * mask).sum() / mask.sum().clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        history.append({"step": step + 1, "loss": float(loss.detach()), "lr": scheduler.get_last_lr()[0]})
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    bar.close()
    model.eval()
    return history
