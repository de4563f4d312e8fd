from __future__ import annotations

import gymnasium as gym
import pytest

import aipo_env  # noqa: F401  (registers the ids)
from policies import ConsultFirst, NeverConsult, RandomPolicy, last_number_answer


def play(policy, env, index: int) -> dict:
    observation, info = env.reset(options={"index": index})
    while True:
        (action,) = policy.act([observation])
        observation, _, terminated, truncated, info = env.step(action.text)
        if terminated or truncated:
            return info


def test_never_consult_answers_on_the_first_turn() -> None:
    env = gym.make("aipo/Arithmetic-v0", level=1)
    info = play(NeverConsult(), env, 0)
    assert info["turn"] == 1
    assert sum(info["episode"].consults.values()) == 0


def test_consult_first_consults_once_then_answers_with_the_revealed_step() -> None:
    env = gym.make("aipo/Arithmetic-v0", level=1)
    # Level 1 is one addition, so the Reasoning agent's one step holds the answer.
    for index in range(5):
        info = play(ConsultFirst("reasoning"), env, index)
        assert info["episode"].consults["reasoning"] == 1
        assert info["turn"] == 2
        assert info["correct"]


def test_consult_first_in_off_mode_still_ends() -> None:
    env = gym.make("aipo/Arithmetic-v0", level=1, consult="off")
    info = play(ConsultFirst("verify"), env, 0)
    assert info["turn"] == 2
    assert info["episode"].unanswered_consults == 1


def test_random_policy_is_reproducible_from_its_seed() -> None:
    observations = ["Start with 3. Add 4."] * 20
    first = [a.text for a in RandomPolicy(seed=1).act(observations)]
    second = [a.text for a in RandomPolicy(seed=1).act(observations)]
    assert first == second
    assert any("<consult" in text for text in first) and any("boxed" in text for text in first)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="agent must be one of"):
        ConsultFirst("oracle")
    with pytest.raises(ValueError, match="consult_prob"):
        RandomPolicy(consult_prob=2.0)


def test_last_number_answer_boxes_the_last_number() -> None:
    assert last_number_answer("3 + 4 = 7, so") == "The answer is \\boxed{7}."
    assert "\\boxed{0}" in last_number_answer("no numbers")
