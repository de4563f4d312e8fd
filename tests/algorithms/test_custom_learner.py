"""examples/custom_learner.py runs and its loss pushes up the log-prob of rewarded policy tokens."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from algorithms.batch import AGENT, PAD, POLICY, PROMPT, EpisodeBatch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_learner.py"


def load_example():
    spec = importlib.util.spec_from_file_location("custom_learner", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_trains_for_a_step() -> None:
    assert len(EXAMPLE.read_text().splitlines()) < 100
    assert load_example().train(steps=1, problems=1, group_size=2) == [0.0]


def test_reinforce_loss_uses_policy_tokens_only() -> None:
    source = torch.tensor([[PROMPT, POLICY, AGENT, POLICY, PAD]])
    batch = EpisodeBatch(
        input_ids=torch.zeros(1, 5, dtype=torch.long),
        source=source,
        behaviour_logprobs=torch.zeros(1, 5),
        agent_logprobs=torch.zeros(1, 5),
        rewards=torch.tensor([1.0]),
        group_ids=torch.tensor([0]),
    )
    logprobs = torch.full((1, 5), -1.0, requires_grad=True)
    load_example().reinforce_loss(batch, logprobs, baseline=0.0).backward()
    assert torch.equal(logprobs.grad, torch.tensor([[0.0, -0.5, 0.0, -0.5, 0.0]]))
