from __future__ import annotations

import math

import pytest
import torch

from algorithms.losses import aggregate, clip_fractions, clipped_surrogate, kl_k3


def test_clipped_surrogate_matches_ppo_by_hand() -> None:
    # ratios 0.5, 1.0, 1.5 for a positive and a negative advantage
    old = torch.zeros(2, 3)
    logprobs = torch.log(torch.tensor([[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]]))
    advantages = torch.tensor([2.0, -2.0])
    loss, ratio = clipped_surrogate(logprobs, old, advantages, clip_low=0.2, clip_high=0.3)
    assert torch.allclose(ratio, torch.tensor([[0.5, 1.0, 1.5]] * 2))
    # A > 0: -min(rA, clip(r)A) -> -(0.5*2), -(1*2), -(1.3*2)
    # A < 0: -min(rA, clip(r)A) -> -(0.8*-2), -(1*-2), -(1.5*-2)
    expected = torch.tensor([[-1.0, -2.0, -2.6], [1.6, 2.0, 3.0]])
    assert torch.allclose(loss, expected)


def test_clipped_tokens_get_no_gradient() -> None:
    logprobs = torch.log(torch.tensor([[0.5, 1.0, 1.5]])).requires_grad_()
    loss, _ = clipped_surrogate(logprobs, torch.zeros(1, 3), torch.tensor([1.0]), 0.2, 0.2)
    loss.sum().backward()
    # ratio 1.5 is above 1 + 0.2 with A > 0: clipped, no gradient; the others: -A * r
    assert torch.allclose(logprobs.grad, torch.tensor([[-0.5, -1.0, 0.0]]))


def test_clip_fractions_count_where_the_clip_bites() -> None:
    ratio = torch.tensor([[0.5, 1.0, 1.5, 1.5]])
    mask = torch.tensor([[True, True, True, False]])
    low, high = clip_fractions(ratio, torch.tensor([1.0]), mask, 0.2, 0.2)
    assert (low, high) == (0.0, pytest.approx(1 / 3))
    low, high = clip_fractions(ratio, torch.tensor([-1.0]), mask, 0.2, 0.2)
    assert (low, high) == (pytest.approx(1 / 3), 0.0)


def test_kl_k3_is_zero_at_equality_and_positive_elsewhere() -> None:
    logprobs = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert torch.allclose(kl_k3(logprobs, logprobs), torch.zeros(3))
    ref = torch.log(torch.tensor([0.3, 0.1, 0.9]))
    values = kl_k3(logprobs, ref)
    assert (values[:2] > 0).all()
    assert math.isclose(float(values[0]), 0.3 / 0.2 - math.log(0.3 / 0.2) - 1, rel_tol=1e-5)


def test_token_and_sequence_aggregation() -> None:
    per_token = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    assert float(aggregate(per_token, mask, "token")) == pytest.approx(7 / 5)
    assert float(aggregate(per_token, mask, "sequence")) == pytest.approx((1 + 3) / 2)
    with pytest.raises(ValueError, match="token"):
        aggregate(per_token, mask, "episode")  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_micro_batches_with_totals_add_up_to_the_whole_batch(level: str) -> None:
    torch.manual_seed(0)
    per_token = torch.randn(4, 6)
    mask = torch.rand(4, 6) > 0.3
    whole = aggregate(per_token, mask, level)
    parts = sum(
        aggregate(per_token[rows], mask[rows], level, total_tokens=float(mask.sum()), total_sequences=4)
        for rows in ([0, 1], [2], [3])
    )
    assert torch.allclose(whole, parts)
