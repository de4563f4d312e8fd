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


def _grouped_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows: two groups sharing a prompt, a row alone, one sharing a few tokens; shuffled."""
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 250, (n,), generator=generator) for n in (20, 13, 17)]
    rows = [
        torch.cat([prompt, torch.randint(3, 250, (int(length),), generator=generator)])
        for prompt, copies in zip(prompts, (3, 3, 1), strict=True)
        for length in torch.randint(1, 12, (copies,), generator=generator)
    ]
    rows.append(torch.cat([prompts[0][:5], torch.randint(3, 250, (9,), generator=generator)]))
    width = max(len(row) for row in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for index, row in enumerate(rows):
        ids[index, : len(row)], mask[index, : len(row)] = row, True
    order = torch.randperm(len(rows), generator=generator)
    return ids[order], mask[order]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_prefixes_give_the_same_logprobs_entropy_and_gradients(temperature: float) -> None:
    from algorithms.forward import token_logprobs
    from policies.tiny import build_tiny_model, build_tokenizer

    model = build_tiny_model(build_tokenizer()).train()
    ids, mask = _grouped_batch()
    results = []
    for share in (False, True):
        logprobs, entropy = token_logprobs(
            model, ids, mask, temperature=temperature, with_entropy=True, share_prefix=share
        )
        model.zero_grad()
        (logprobs[mask].sum() + 0.1 * entropy[mask].sum()).backward()
        results.append((logprobs[mask], entropy[mask], [p.grad.clone() for p in model.parameters()]))
    (plain_lp, plain_entropy, plain_grads), (lp, entropy, grads) = results
    assert torch.allclose(lp, plain_lp, atol=1e-5) and torch.allclose(entropy, plain_entropy, atol=1e-5)
    for shared_grad, plain_grad in zip(grads, plain_grads, strict=True):
        assert torch.allclose(shared_grad, plain_grad, rtol=1e-4, atol=1e-5)


def test_prefix_groups_keep_each_prompt_group_together() -> None:
    from algorithms.forward import _prefix_groups

    ids, mask = _grouped_batch()
    groups = _prefix_groups(ids, mask)
    assert groups is not None
    lengths = mask.sum(dim=1)
    by_group: dict[int, list[int]] = {}
    for row, group in enumerate(groups.group):
        by_group.setdefault(group, []).append(row)
    # The two 3-row groups share their whole 20- and 13-token prompts; the others stay alone.
    assert sorted(len(rows) for rows in by_group.values()) == [1, 1, 3, 3]
    assert sorted(groups.length[g] for g, rows in by_group.items() if len(rows) == 3) == [13, 20]
    for group, rows in by_group.items():
        assert all(groups.length[group] < lengths[row] for row in rows)
    assert _prefix_groups(ids[:1], mask[:1]) is None  # nothing to share
