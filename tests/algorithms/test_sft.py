"""Supervised warm-up: what is learned (policy turns, EOS where the episode ends) and that it learns."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import aipo_env  # noqa: F401
from algorithms.batch import POLICY
from algorithms.sft import SFTSettings, supervised_warmup, tokenize_demonstration
from policies.demonstrations import demonstrate
from policies.hf import HFPolicy


@pytest.fixture
def policy() -> HFPolicy:
    torch.set_num_threads(1)
    return HFPolicy.from_pretrained("tiny", device="cpu", tiny_options={"hidden_size": 32, "num_layers": 1})


def test_only_policy_turns_are_targets_and_the_last_one_ends_with_eos(policy: HFPolicy) -> None:
    env = gym.make("aipo/Arithmetic-v0", level=2, max_turns=4, max_consults=3)
    record = demonstrate(env, 0, consulted=[1])
    episode = tokenize_demonstration(policy, record)
    targets = [
        token for token, source in zip(episode.token_ids, episode.sources, strict=True) if source == POLICY
    ]
    eos = policy.eos_token_ids[0]
    assert targets[-1] == eos and targets.count(eos) == 1
    text = policy.tokenizer.decode(targets, skip_special_tokens=True)
    assert text == "".join(segment.text for segment in record.segments if segment.source == "policy")
    assert "Step 1:" not in text and "Step 2:" in text  # step 1 came from the agent: context only


def test_warmup_lowers_the_loss_on_its_demonstrations(policy: HFPolicy) -> None:
    env = gym.make("aipo/Arithmetic-v0", level=1, max_turns=2)
    records = [demonstrate(env, index) for index in range(8)]
    history = supervised_warmup(policy, records, SFTSettings(steps=30, batch_size=8, lr=1e-2, progress=False))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    with pytest.raises(ValueError, match="at least one"):
        supervised_warmup(policy, [], SFTSettings(steps=1))
