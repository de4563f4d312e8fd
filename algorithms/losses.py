"""Policy-gradient loss pieces as small pure functions over tensors.

Shapes: ``[B, T]`` per-token tensors (``B`` episodes, ``T`` tokens), ``[B]`` per-episode
advantages. Every function returns per-token values; :func:`aggregate` turns them into a scalar.
The model-facing part (log-probs and entropy from a forward pass) is
:func:`algorithms.forward.token_logprobs`.
"""

from __future__ import annotations

from typing import Literal

import torch

Aggregation = Literal["token", "sequence"]


def clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate with separate lower and upper clip (DAPO's clip-higher).

        r_t = exp(log pi_theta(x_t) - log pi_old(x_t))
        loss_t = -min(r_t * A, clip(r_t, 1 - clip_low, 1 + clip_high) * A)

    (Schulman et al., 2017; Yu et al., 2025 for the asymmetric clip.)

    Args:
        logprobs: ``[B, T]`` log-probs under the current policy (with gradient).
        old_logprobs: ``[B, T]`` log-probs under the behaviour policy.
        advantages: ``[B]`` one advantage per episode.
        clip_low, clip_high: ``epsilon_low`` and ``epsilon_high``.

    Returns:
        The per-token loss and the ratio ``r_t`` (both ``[B, T]``).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    advantage = advantages.unsqueeze(-1)
    unclipped = ratio * advantage
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantage
    return -torch.minimum(unclipped, clipped), ratio


def clip_fractions(
    ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_low: float, clip_high: float
) -> tuple[float, float]:
    """Fractions of masked tokens whose gradient the lower / upper clip removes.

    The lower clip is active where ``r < 1 - clip_low`` and ``A < 0``, the upper where
    ``r > 1 + clip_high`` and ``A > 0``.
    """
    advantage = advantages.unsqueeze(-1)
    count = mask.sum().clamp(min=1)
    low = ((ratio < 1.0 - clip_low) & (advantage < 0) & mask).sum() / count
    high = ((ratio > 1.0 + clip_high) & (advantage > 0) & mask).sum() / count
    return float(low), float(high)


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of ``KL(pi_theta || pi_ref)`` on sampled tokens (Schulman's k3).

    k3_t = exp(log pi_ref - log pi_theta) - (log pi_ref - log pi_theta) - 1   (>= 0, unbiased)
    """
    log_ratio = ref_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1.0


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    level: Aggregation,
    *,
    total_tokens: float | None = None,
    total_sequences: float | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss to a scalar over the masked tokens.

        token:     sum_i sum_t m_it l_it / N_tokens                    (DAPO; every token counts alike)
        sequence:  sum_i (sum_t m_it l_it / sum_t m_it) / N_sequences  (GRPO; every episode counts alike)

    Args:
        per_token: ``[B, T]`` losses.
        mask: ``[B, T]`` which tokens count (bool or 0/1 weights).
        level: ``"token"`` or ``"sequence"``.
        total_tokens, total_sequences: the normalisers ``N``; pass the counts of the whole
            minibatch when it is split into micro-batches so that accumulated gradients equal the
            gradient on the whole minibatch. Default: this batch's masked tokens / rows.
    """
    weights = mask.to(per_token.dtype)
    if level == "token":
        tokens = weights.sum() if total_tokens is None else per_token.new_tensor(float(total_tokens))
        return (per_token * weights).sum() / tokens.clamp(min=1.0)
    if level == "sequence":
        per_sequence = (per_token * weights).sum(dim=-1) / weights.sum(dim=-1).clamp(min=1.0)
        sequences = float(per_token.shape[0] if total_sequences is None else total_sequences)
        return per_sequence.sum() / max(sequences, 1.0)
    raise ValueError(f"level must be 'token' or 'sequence', got {level!r}")
