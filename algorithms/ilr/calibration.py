"""Perception calibration: each model's reward is shifted by how it did against the other models.

ILR (arXiv 2509.26306, as summarised in our sources) trains model ``i`` with GRPO on

    R'_ik = R_ik + sum_{l != i} clip((R_ik - mean_k' R_lk') / (max_k' R_lk' - min_k' R_lk'),
                                     -1/(m-1), 1/(m-1))

for sample ``k`` of question ``q``, where ``R_l`` are model ``l``'s rewards on the same question
and ``m`` the number of models. The bonus is at most 1 in total, whatever ``m``.

**Zero range** (all of model ``l``'s rewards equal, e.g. it never solved the question): the
fraction has a zero denominator, and we take the limit of the clipped formula, i.e. the term is
``sign(R_ik - mean R_l) / (m - 1)``: beating a partner that is uniformly wrong earns the full
bonus, matching it earns nothing. This is our definition; the sources do not give one.
"""

from __future__ import annotations

import numpy as np


def calibrated_rewards(rewards: np.ndarray) -> np.ndarray:
    """Calibrated rewards ``[m, K]`` from raw rewards ``[m, K]`` of ``m`` models on one question.

    Args:
        rewards: row ``i`` holds model ``i``'s ``K`` sample rewards on the question.

    Returns:
        ``R'`` as in the module docstring, same shape, float.

    Raises:
        ValueError: with fewer than two models, no samples, or non-finite rewards.
    """
    rewards = np.asarray(rewards, dtype=float)
    if rewards.ndim != 2 or rewards.shape[0] < 2 or rewards.shape[1] < 1:
        raise ValueError(f"rewards must be [models >= 2, samples >= 1], got shape {rewards.shape}")
    if not np.isfinite(rewards).all():
        raise ValueError("rewards must be finite")
    models = rewards.shape[0]
    bound = 1.0 / (models - 1)
    mean, spread = rewards.mean(axis=1), rewards.max(axis=1) - rewards.min(axis=1)
    calibrated = rewards.copy()
    for i in range(models):
        for other in range(models):
            if other == i:
                continue
            gap = rewards[i] - mean[other]
            if spread[other] > 0:
                calibrated[i] += np.clip(gap / spread[other], -bound, bound)
            else:  # zero range: the limit of the clipped fraction (see the module docstring)
                calibrated[i] += np.sign(gap) * bound
    return calibrated
