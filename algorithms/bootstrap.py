"""Percentile bootstrap intervals for evaluations whose seeds all play the same problems.

An evaluation gives one value per seed and problem, ``x[s, i]`` (for example the share of
problem ``i``'s samples that the model of seed ``s`` solved). The estimate is the mean of the
``S x P`` table. Seeds and problems are both random draws, and they are crossed: every seed plays
every problem, so a problem's difficulty is shared by all seeds. One bootstrap replicate therefore
draws ``S`` seeds and ``P`` problems with replacement, once each, and averages the rows and columns
it drew (the pigeonhole bootstrap; Owen, 2007, "The pigeonhole bootstrap", Ann. Appl. Stat.):

    theta*_b = 1 / (S P) * sum_{j=1..S} sum_{k=1..P} x[s*_bj, i*_bk]

and the ``(1 - alpha)`` interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles of
``theta*_1 .. theta*_B`` (the percentile interval; Efron & Tibshirani, 1993, ch. 13). Drawing the
problems anew for each seed instead would average the problems' difficulty over the seeds and
narrow the interval as if every seed had played new problems. With one seed, only problems are
resampled.

A paired difference of two models is the same bootstrap on ``d[s, i] = x_A[s, i] - x_B[s, i]``:
each replicate resamples both models on the same seeds and problems, so what they share (a
problem's difficulty, a seed's luck) cancels. The interval excludes 0 when the difference is
distinguishable from 0 at that level, one comparison at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval ``[low, high]``."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside ``[low, high]``: the value is distinguishable from 0."""
        return self.low > 0.0 or self.high < 0.0


def bootstrap_mean(
    values: Sequence[Sequence[float]] | np.ndarray,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The mean of ``values[s][i]`` (seeds x problems) and its percentile interval (module docstring).

    Args:
        values: one row per seed, one column per problem; every row covers the same problems.
        resamples: bootstrap replicates ``B``.
        confidence: ``1 - alpha``.
        seed: seeds the resampling, so the same values give the same interval.
    """
    table = np.asarray(values, dtype=float)
    if table.ndim != 2 or table.size == 0:
        raise ValueError(f"values must be a non-empty seeds x problems table, got shape {table.shape}")
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need resamples >= 1 and 0 < confidence < 1, got {resamples}, {confidence}")
    seeds, problems = table.shape
    rng = np.random.default_rng(seed)
    # How often each seed and each problem is drawn in each replicate (multinomial counts are
    # draws with replacement); theta*_b = w_b . x . v_b / (S P).
    seed_counts = rng.multinomial(seeds, np.full(seeds, 1.0 / seeds), size=resamples)
    problem_counts = rng.multinomial(problems, np.full(problems, 1.0 / problems), size=resamples)
    replicates = np.einsum("bs,sp,bp->b", seed_counts, table, problem_counts) / (seeds * problems)
    alpha = 1.0 - confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return Interval(float(table.mean()), float(low), float(high))


def paired_difference(
    first: Sequence[Sequence[float]] | np.ndarray,
    second: Sequence[Sequence[float]] | np.ndarray,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``mean(first - second)`` and its interval, both resampled on the same seeds and problems.

    Raises:
        ValueError: the tables do not cover the same seeds and problems (their shapes differ).
    """
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape:
        raise ValueError(
            f"a paired difference needs the same seeds and problems, got {a.shape} and {b.shape}"
        )
    return bootstrap_mean(a - b, resamples, confidence, seed)
