"""Group-relative advantages: each episode's reward compared with the other episodes of its problem.

For episode ``i`` of group ``g`` (the ``G`` episodes of one problem) with reward ``r_i``:

    A_i = (r_i - mean_g(r)) / (std_g(r) + eps)      scale="group"   GRPO (Shao et al., 2024)
    A_i =  r_i - mean_g(r)                          scale="none"    Dr. GRPO (Liu et al., 2025)
    A_i = (r_i - mean_g(r)) / (std_B(c) + eps)      scale="batch"   c = the centred rewards of
                                                                    the whole batch B
    A_i =  r_i - mean_{j in g, j != i}(r_j)         scale="loo"     RLOO (Ahmadian et al., 2024)
        =  G / (G - 1) * (r_i - mean_g(r))

``std`` is the sample standard deviation (``n - 1``). Dr. GRPO drops the per-group scaling
because it up-weights problems that are almost always or almost never solved; batch scaling
keeps the advantage scale stable across steps without that bias. RLOO's leave-one-out baseline
does not contain the episode's own reward, so it is an unbiased baseline; it is Dr. GRPO's
advantage scaled by ``G / (G - 1)``, and a group of one episode gets ``A = 0``. A group whose
rewards are all equal gets ``A = 0`` under every scale: it carries no learning signal.
"""

from __future__ import annotations

import torch

from algorithms.config import ADVANTAGE_SCALES, AdvantageScale


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    scale: AdvantageScale = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Advantages ``[B]`` from rewards ``[B]`` and group ids ``[B]`` (formulas in the module docstring).

    Raises:
        ValueError: for an unknown ``scale`` or mismatched shapes.
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"scale must be one of {', '.join(ADVANTAGE_SCALES)}, got {scale!r}")
    if rewards.shape != group_ids.shape or rewards.dim() != 1:
        raise ValueError(
            f"rewards and group_ids must be 1-D and alike, got {rewards.shape} and {group_ids.shape}"
        )
    rewards = rewards.float()
    _, groups = torch.unique(group_ids, return_inverse=True)
    count = torch.zeros(int(groups.max()) + 1, device=rewards.device).index_add_(
        0, groups, torch.ones_like(rewards)
    )
    mean = torch.zeros_like(count).index_add_(0, groups, rewards) / count
    centred = rewards - mean[groups]
    if scale == "none":
        return centred
    if scale == "loo":  # a group of one has centred = 0: nothing to compare with
        return centred * (count / (count - 1).clamp(min=1))[groups]
    if scale == "batch":
        spread = centred.std() if len(centred) > 1 else centred.new_tensor(0.0)
        return centred / (spread + eps) if spread > 0 else centred
    squares = torch.zeros_like(count).index_add_(0, groups, centred**2)
    std = torch.sqrt(squares / (count - 1).clamp(min=1))[groups]
    # centred is exactly 0 where std is 0; keep it 0 even with eps=0
    return torch.where(std > 0, centred / (std + eps), centred)


def zero_variance_fraction(rewards: torch.Tensor, group_ids: torch.Tensor) -> float:
    """The fraction of groups whose episodes all have the same reward (no learning signal)."""
    flat = [rewards[group_ids == group] for group in torch.unique(group_ids)]
    return sum(bool((values == values[0]).all()) for values in flat) / max(len(flat), 1)
