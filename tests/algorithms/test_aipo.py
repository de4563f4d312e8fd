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


# -- own voice: helper content and continuation learned in the transcript x~ (algorithms/aipo.py) --


def voiced_inputs(logprobs: torch.Tensor, old: torch.Tensor, advantages: torch.Tensor) -> LossInputs:
    # own-voice layout: prompt, helper, helper, continuation, continuation
    rows = len(advantages)
    return LossInputs(
        logprobs=logprobs,
        old_logprobs=old,
        agent_logprobs=torch.zeros_like(logprobs),
        advantages=advantages,
        policy_mask=torch.tensor([[False, False, False, True, True]] * rows),
        agent_mask=torch.tensor([[False, True, True, False, False]] * rows),
    )


def own_voice_gradients(
    voiced_probs: list[float], old_probs: list[float], advantage: float, **options: float
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Gradients of L on x's and x~'s log-probs for one episode (x: make_inputs's layout at p = 0.4)."""
    logprobs = torch.log(torch.full((1, 6), 0.4)).requires_grad_()
    voiced = torch.log(torch.tensor([voiced_probs])).requires_grad_()
    advantages = torch.tensor([advantage])
    config = LossConfig(agent_mode="own_voice", **options)
    loss, stats = objective(
        make_inputs(logprobs, advantages),
        config,
        own_voice=voiced_inputs(voiced, torch.log(torch.tensor([old_probs])), advantages),
    )
    loss.backward()
    return logprobs.grad, voiced.grad, stats


def test_own_voice_learns_helper_content_in_x_tilde_with_the_clipped_coefficient_computed_there() -> None:
    # x~: helper content at p = 0.01 (rho below c_min) and 0.9 (above c_max); continuation ratio 1
    x, voiced, stats = own_voice_gradients(
        [0.5, 0.01, 0.9, 0.4, 0.4], [0.5, 1.0, 1.0, 0.4, 0.4], 1.5, agent_clip_min=0.2, agent_clip_max=0.5
    )
    n = 3 + 2 + 2  # policy tokens of x, learned helper content and continuation of x~
    assert torch.allclose(voiced[0, 1:3], -1.5 * torch.tensor([0.2, 0.5]) / n)  # clip(rho~) = 0.2, 0.5
    assert x[0, 3:5].abs().max() == 0  # helper tokens in the feedback context: context only
    assert torch.allclose(x[0, [1, 2, 5]], torch.full((3,), -1.5 / n))  # x's policy tokens: GRPO
    assert voiced[0, 0] == 0
    assert stats["agent_learned"] == 2 and stats["agent_at_min"] == 0.5
    assert stats["agent_coef"] == pytest.approx(0.35)
    coefficient = agent_coefficient(torch.log(torch.tensor([0.01, 0.9])), torch.zeros(2), "own_voice")
    assert torch.allclose(coefficient, torch.tensor([0.1, 0.9]))  # aipo's, with the default c_min, c_max


@pytest.mark.parametrize(
    ("advantage", "ratio", "learned"),
    [(1.0, 0.5, True), (1.0, 2.0, False), (-1.0, 0.5, False), (-1.0, 2.0, True)],
)
def test_own_voice_continuation_follows_the_off_policy_ratio_and_ppos_clip(
    advantage: float, ratio: float, learned: bool
) -> None:
    # r~ = pi_theta(x~ | s~) / pi_old(x | s): the behaviour probability comes from the feedback context
    _, voiced, stats = own_voice_gradients(
        [0.5, 0.4, 0.4, 0.2 * ratio, 0.2 * ratio],
        [1.0, 1.0, 1.0, 0.2, 0.2],
        advantage,
        agent_positive_only=False,
    )
    n = 3 + 2 + 2
    expected = -advantage * ratio / n if learned else 0.0
    assert torch.allclose(voiced[0, 3:5], torch.full((2,), expected))
    assert stats["own_voice_ratio"] == pytest.approx(ratio)
    assert stats["own_voice_clipped"] == (0.0 if learned else 1.0)


def test_own_voice_gradient_raises_a_good_episodes_tokens_and_lowers_a_bad_ones() -> None:
    for advantage, sign in ((1.0, -1.0), (-1.0, 1.0)):  # minimising L: -grad is the step
        _, voiced, _ = own_voice_gradients(
            [0.5, 0.3, 0.3, 0.4, 0.4], [1.0, 1.0, 1.0, 0.4, 0.4], advantage, agent_positive_only=False
        )
        assert (torch.sign(voiced[0, 1:]) == sign).all()
    _, voiced, _ = own_voice_gradients([0.5, 0.3, 0.3, 0.4, 0.4], [1.0, 1.0, 1.0, 0.4, 0.4], -1.0)
    assert voiced[0, 1:3].abs().max() == 0 and voiced[0, 3:].abs().min() > 0  # positive only: helper only


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
@pytest.mark.parametrize("width", [0, 5])
def test_episodes_without_consults_reduce_to_the_on_policy_loss(aggregation: str, width: int) -> None:
    # no helper tokens in x, and an empty own-voice row (width 0: no episode of the batch consulted)
    logprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.05, 0.6, 0.4]] * 2))
    inputs = make_inputs(logprobs, torch.tensor([1.0, -1.0]))
    inputs.old_logprobs = inputs.old_logprobs - 0.1
    inputs.agent_mask = torch.zeros_like(inputs.agent_mask)
    empty = LossInputs(
        logprobs=torch.zeros(2, width),
        old_logprobs=torch.zeros(2, width),
        agent_logprobs=torch.zeros(2, width),
        advantages=inputs.advantages,
        policy_mask=torch.zeros(2, width, dtype=torch.bool),
        agent_mask=torch.zeros(2, width, dtype=torch.bool),
    )
    results = {}
    for mode in ("mask", "aipo", "own_voice"):
        inputs.logprobs = logprobs.clone().requires_grad_()
        config = LossConfig(agent_mode=mode, aggregation=aggregation)
        loss, _ = objective(inputs, config, own_voice=empty if mode == "own_voice" else None)
        loss.backward()
        results[mode] = (loss.detach(), inputs.logprobs.grad)
    for mode in ("aipo", "own_voice"):  # the same up to the order of a sum
        assert torch.allclose(results[mode][0], results["mask"][0], atol=1e-7)
        assert torch.allclose(results[mode][1], results["mask"][1], atol=1e-7)


def test_sequence_aggregation_counts_both_transcripts_of_an_episode_together() -> None:
    logprobs = torch.log(torch.full((1, 6), 0.4))
    voiced = torch.log(torch.tensor([[0.5, 0.3, 0.3, 0.4, 0.4]]))
    advantages = torch.tensor([1.0])
    own_voice = voiced_inputs(voiced, voiced.clone(), advantages)
    totals = {}
    for aggregation in ("token", "sequence"):
        config = LossConfig(agent_mode="own_voice", aggregation=aggregation)
        totals[aggregation], _ = objective(make_inputs(logprobs, advantages), config, own_voice=own_voice)
    assert totals["sequence"] == pytest.approx(totals["token"])  # one episode: one count, 7 tokens


def test_own_voice_needs_its_transcripts_and_flags_zero_gradient_rows() -> None:
    logprobs = torch.log(torch.full((3, 6), 0.4)).requires_grad_()
    inputs = make_inputs(logprobs, torch.tensor([1.0, 0.0, -1.0]))
    with pytest.raises(ValueError, match="own_voice"):
        objective(inputs, LossConfig(agent_mode="own_voice"))
    voiced = torch.log(torch.tensor([[0.5, 0.3, 0.3, 0.2, 0.6]] * 3)).requires_grad_()
    config = LossConfig(agent_mode="own_voice", agent_positive_only=False)
    own_voice = voiced_inputs(voiced, voiced.detach() - 0.1, inputs.advantages)
    loss, _ = objective(inputs, config, own_voice=own_voice)
    loss.backward()
    assert zero_gradient_rows(inputs.advantages, config).tolist() == [False, True, False]
    assert voiced.grad[1].abs().max() == 0 and logprobs.grad[1].abs().max() == 0
    assert voiced.grad[0].abs().max() > 0 and voiced.grad[2].abs().max() > 0


def test_every_agent_mode_the_config_accepts_has_one_helper_term():
    from algorithms.aipo import HELPER_TERMS
    from algorithms.config import AGENT_MODES

    assert sorted(HELPER_TERMS) == sorted(AGENT_MODES)
    with pytest.raises(ValueError, match="own_voice"):
        agent_coefficient(torch.zeros(1, 1), torch.zeros(1, 1), "nope")
