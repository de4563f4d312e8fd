"""The helper-token term: each mode's gradient against the formula in algorithms/aipo.py."""

from __future__ import annotations

import pytest
import torch

from algorithms.aipo import LossInputs, agent_coefficient, agent_token_loss, objective, zero_gradient_rows
from algorithms.config import LossConfig

PROBS = torch.tensor([[0.01, 0.3, 0.9]])
ADVANTAGE = torch.tensor([1.5])


def gradient(mode: str, agent_logprobs: torch.Tensor, **options: float) -> torch.Tensor:
    logprobs = torch.log(PROBS).requires_grad_()
    agent_token_loss(logprobs, agent_logprobs, ADVANTAGE, mode, **options).sum().backward()
    return logprobs.grad


@pytest.mark.parametrize("agent_logprob", [0.0, -1.0])
def test_raw_gradient_is_minus_advantage_times_rho(agent_logprob: float) -> None:
    agent = torch.full_like(PROBS, agent_logprob)
    rho = PROBS / torch.exp(agent)
    assert torch.allclose(gradient("raw", agent), -ADVANTAGE * rho)


def test_luffy_gradient_follows_policy_shaping() -> None:
    gamma = 0.1
    agent = torch.zeros_like(PROBS)
    expected = -ADVANTAGE * gamma * PROBS / (PROBS + gamma) ** 2
    assert torch.allclose(gradient("luffy", agent, gamma=gamma), expected)


def test_aipo_gradient_is_the_clipped_coefficient_and_never_vanishes() -> None:
    agent = torch.zeros_like(PROBS)
    grad = gradient("aipo", agent, clip_min=0.2, clip_max=0.5)
    # rho = 0.01, 0.3, 0.9 clipped to [0.2, 0.5]
    assert torch.allclose(grad, -ADVANTAGE * torch.tensor([[0.2, 0.3, 0.5]]))
    # the least likely token keeps a gradient 20x larger than under raw
    assert grad[0, 0] / gradient("raw", agent)[0, 0] == pytest.approx(20.0)


def test_aipo_coefficient_is_bounded_when_the_agent_is_unlikely() -> None:
    agent = torch.full_like(PROBS, -10.0)  # pi_agent tiny: raw rho explodes
    assert gradient("raw", agent).abs().max() > 1000
    assert gradient("aipo", agent, clip_min=0.1, clip_max=2.0).abs().max() <= 2.0 * 1.5 + 1e-6


def test_coefficients_are_what_the_gradients_use() -> None:
    agent = torch.zeros_like(PROBS)
    for mode in ("raw", "luffy", "aipo"):
        coefficient = agent_coefficient(torch.log(PROBS), agent, mode)
        assert torch.allclose(gradient(mode, agent), -ADVANTAGE * coefficient)


def make_inputs(logprobs: torch.Tensor, advantages: torch.Tensor) -> LossInputs:
    # episode layout: prompt, policy, policy, agent, agent, policy
    policy = torch.tensor([[False, True, True, False, False, True]] * len(advantages))
    agent = torch.tensor([[False, False, False, True, True, False]] * len(advantages))
    return LossInputs(
        logprobs=logprobs,
        old_logprobs=logprobs.detach().clone(),
        agent_logprobs=torch.zeros_like(logprobs),
        advantages=advantages,
        policy_mask=policy,
        agent_mask=agent,
    )


def test_mask_mode_gives_helper_tokens_no_gradient_and_other_modes_do() -> None:
    for mode in ("mask", "raw", "luffy", "aipo"):
        logprobs = torch.log(torch.full((2, 6), 0.4)).requires_grad_()
        config = LossConfig(agent_mode=mode, agent_positive_only=False)
        loss, _ = objective(make_inputs(logprobs, torch.tensor([1.0, -1.0])), config)
        loss.backward()
        helper_grad = logprobs.grad[:, 3:5]
        assert logprobs.grad[:, 1:3].abs().min() > 0  # policy tokens always learn
        assert logprobs.grad[:, 0].abs().max() == 0  # prompt tokens never do
        assert (helper_grad.abs().max() == 0) == (mode == "mask")


def test_positive_only_skips_helper_tokens_of_worse_than_average_episodes() -> None:
    logprobs = torch.log(torch.full((2, 6), 0.4)).requires_grad_()
    loss, _ = objective(make_inputs(logprobs, torch.tensor([1.0, -1.0])), LossConfig(agent_mode="aipo"))
    loss.backward()
    assert logprobs.grad[0, 3:5].abs().min() > 0
    assert logprobs.grad[1, 3:5].abs().max() == 0


def test_unknown_behaviour_logprobs_outside_policy_tokens_do_not_poison_the_loss() -> None:
    logprobs = torch.log(torch.full((1, 6), 0.4)).requires_grad_()
    inputs = make_inputs(logprobs, torch.tensor([1.0]))
    inputs.old_logprobs[0, 0] = float("nan")
    loss, stats = objective(inputs, LossConfig())
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logprobs.grad).all()
    assert stats["ratio"] == pytest.approx(1.0)


def test_helper_tokens_at_c_min_and_learned_are_reported() -> None:
    # helper tokens at positions 3, 4: probabilities 0.05 (rho < c_min = 0.1) and 0.6
    logprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.05, 0.6, 0.4]] * 3))
    inputs = make_inputs(logprobs, torch.tensor([1.0, 0.0, -1.0]))
    for mode, at_min in (("aipo", 0.5), ("luffy", None), ("raw", None)):
        _, stats = objective(inputs, LossConfig(agent_mode=mode))
        # positive only: the first episode's 2 helper tokens; A = 0 and A < 0 learn none
        assert stats.get("agent_at_min") == at_min and stats["agent_learned"] == 2.0
    _, stats = objective(inputs, LossConfig(agent_mode="aipo", agent_positive_only=False))
    assert stats["agent_learned"] == 4.0  # A = 0 has no gradient: not learned
    _, stats = objective(inputs, LossConfig(agent_mode="mask"))
    assert "agent_at_min" not in stats and stats["agent_learned"] == 0.0
    _, stats = objective(make_inputs(logprobs, torch.tensor([0.0, 0.0, -1.0])), LossConfig(agent_mode="aipo"))
    assert "agent_at_min" not in stats  # no helper token learned: no share to report


def test_kl_needs_reference_logprobs() -> None:
    logprobs = torch.zeros(1, 6, requires_grad=True)
    with pytest.raises(ValueError, match="ref_logprobs"):
        objective(make_inputs(logprobs, torch.tensor([1.0])), LossConfig(kl_coef=0.1))


@pytest.mark.parametrize("mode", ["mask", "raw", "luffy", "aipo"])
@pytest.mark.parametrize("positive_only", [True, False])
def test_rows_flagged_zero_gradient_get_exactly_zero_gradient_and_others_do_not(
    mode: str, positive_only: bool
) -> None:
    # ratios away from 1 and helper probabilities away from the clip range, so no term is 0 by accident
    logprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.05, 0.6, 0.4]] * 3)).requires_grad_()
    inputs = make_inputs(logprobs, torch.tensor([1.0, 0.0, -1.0]))
    inputs.old_logprobs = inputs.old_logprobs - 0.1
    inputs.agent_logprobs = torch.full_like(logprobs, -0.5)
    config = LossConfig(agent_mode=mode, agent_positive_only=positive_only)
    loss, _ = objective(inputs, config)
    loss.backward()
    skipped = zero_gradient_rows(inputs.advantages, config)
    assert skipped.tolist() == [False, True, False]
    assert logprobs.grad[1].abs().max() == 0
    assert logprobs.grad[0].abs().max() > 0 and logprobs.grad[2].abs().max() > 0


@pytest.mark.parametrize("coefficients", [{"kl_coef": 0.1}, {"entropy_coef": 0.01}])
def test_no_row_is_zero_gradient_with_a_kl_or_entropy_term(coefficients: dict[str, float]) -> None:
    # both terms pull on every episode whatever its advantage
    flagged = zero_gradient_rows(torch.tensor([0.0, 1.0]), LossConfig(**coefficients))
    assert not flagged.any()
