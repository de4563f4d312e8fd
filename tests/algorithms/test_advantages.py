from __future__ import annotations

import pytest
import torch

from algorithms.advantages import group_advantages, zero_variance_fraction
from algorithms.config import ADVANTAGE_SCALES

REWARDS = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.5])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])


def test_group_scale_is_grpo() -> None:
    advantages = group_advantages(REWARDS, GROUPS, scale="group", eps=0.0)
    first = REWARDS[:4]
    expected = (first - first.mean()) / first.std()
    assert torch.allclose(advantages[:4], expected)
    assert torch.equal(advantages[4:], torch.zeros(4))  # equal rewards carry no signal


def test_none_scale_is_dr_grpo() -> None:
    advantages = group_advantages(REWARDS, GROUPS, scale="none")
    assert torch.allclose(advantages[:4], torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_loo_scale_is_rloo() -> None:
    advantages = group_advantages(REWARDS, GROUPS, scale="loo")
    # by hand: 1 - mean(0, 0, 0) = 1 and 0 - mean(1, 0, 0) = -1/3; equal rewards give 0
    expected = torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3, 0.0, 0.0, 0.0, 0.0])
    assert torch.allclose(advantages, expected)
    # a group of one has no other episode to compare with
    alone = group_advantages(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0, 1, 1]), scale="loo")
    assert alone.tolist() == [0.0, 1.0, -1.0]


def test_batch_scale_divides_by_the_batch_spread() -> None:
    centred = group_advantages(REWARDS, GROUPS, scale="none")
    advantages = group_advantages(REWARDS, GROUPS, scale="batch", eps=0.0)
    assert torch.allclose(advantages, centred / centred.std())


def test_group_ids_need_not_be_contiguous_or_sorted() -> None:
    shuffled = torch.tensor([7, 3, 7, 3])
    advantages = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), shuffled, scale="none")
    assert torch.allclose(advantages, torch.tensor([0.5, 0.0, -0.5, 0.0]))


def test_zero_variance_fraction_and_errors() -> None:
    assert zero_variance_fraction(REWARDS, GROUPS) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(REWARDS, GROUPS, scale="std")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alike"):
        group_advantages(REWARDS, GROUPS[:3])


@pytest.mark.parametrize("scale", ADVANTAGE_SCALES)
def test_every_scale_the_config_accepts_is_computed(scale):
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    advantages = group_advantages(rewards, torch.tensor([0, 0, 1, 1]), scale=scale)
    assert (
        advantages.shape == (4,) and advantages[0] > 0 > advantages[1] and advantages[3] > 0 > advantages[2]
    )
