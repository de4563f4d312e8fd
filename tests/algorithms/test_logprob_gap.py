"""rollout/logprob_gap_*: the sampler's log-probs against the learner's own, every step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from test_trainer import make_config, make_trainer

from algorithms.metrics import logprob_gap
from algorithms.trainer import Trainer

NAN = math.nan


def test_the_gap_counts_policy_tokens_with_known_log_probs_only() -> None:
    behaviour = torch.tensor([[0.0, -1.0, -2.0, NAN], [0.0, -0.5, -9.0, 0.0]])
    learner = torch.tensor([[0.0, -1.5, -2.0, -7.0], [0.0, -0.25, -1.0, 0.0]])
    policy = torch.tensor([[False, True, True, True], [False, True, False, False]])
    gap = logprob_gap(behaviour, learner, policy)
    assert gap["rollout/logprob_gap_max"] == 0.5
    assert math.isclose(gap["rollout/logprob_gap_mean"], (0.5 + 0.0 + 0.25) / 3)


def test_no_policy_token_gives_a_zero_gap() -> None:
    zeros = torch.zeros(2, 3)
    gap = logprob_gap(zeros, zeros, torch.zeros(2, 3, dtype=torch.bool))
    assert gap == {"rollout/logprob_gap_max": 0.0, "rollout/logprob_gap_mean": 0.0}


def test_the_default_engine_samples_with_the_learners_weights_at_every_step(tmp_path: Path) -> None:
    Trainer(make_config(tmp_path, steps=3, optim={"lr": 1e-2})).learn()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line) for line in lines]
    assert len(steps) == 3
    for metrics in steps:
        assert 0 <= metrics["rollout/logprob_gap_mean"] <= metrics["rollout/logprob_gap_max"] <= 1e-4


def test_a_sampler_with_stale_weights_shows_a_large_gap(tmp_path: Path) -> None:
    trainer = make_trainer(make_config(tmp_path))
    batch = trainer.collect()
    with torch.no_grad():  # the learner moves on after sampling, as a sampler that was never synced
        for parameter in trainer.policy.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    metrics = trainer.update(batch)
    assert metrics["rollout/logprob_gap_max"] > 1e-2
    assert metrics["rollout/logprob_gap_mean"] > 1e-3
