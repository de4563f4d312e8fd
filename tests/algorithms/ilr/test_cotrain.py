"""One ILR co-training step on two tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aipo_env.tasks.arithmetic import ArithmeticTask
from aipo_env.tasks.base import Problem, Score
from algorithms.advantages import group_advantages
from algorithms.batch import EpisodeBatch
from algorithms.config import TrainConfig
from algorithms.ilr.calibration import calibrated_rewards
from algorithms.ilr.cotrain import CoTrainer
from algorithms.trainer import Trainer
from policies import HFPolicy


class EvenLengthTask(ArithmeticTask):
    """Arithmetic problems scored 1 when the response has an even length: random text gets both."""

    def score(self, problem: Problem, response: str) -> Score:
        return Score(float(len(response) % 2 == 0), len(response) % 2 == 0, None)


def make_trainer(output_dir: Path, seed: int, **loss: str) -> Trainer:
    config = TrainConfig.model_validate(
        {
            "output_dir": str(output_dir),
            "progress": False,
            "seed": seed,
            "env": {"kwargs": {"level": 1, "max_turns": 1, "consult": "off"}},
            "rollout": {"problems_per_step": 2, "group_size": 3, "max_new_tokens": 6},
            "loss": {"agent_mode": "mask", **loss},
            "optim": {"lr": 1e-2},
        }
    )
    policy = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=6, tiny_options={"seed": seed})
    return Trainer(config, policy=policy)


def test_one_step_updates_both_players_on_calibrated_rewards_of_their_own_tokens(tmp_path: Path) -> None:
    trainers = [make_trainer(tmp_path / f"p{seed}", seed) for seed in (0, 1)]
    seen: list[EpisodeBatch] = []
    for trainer in trainers:
        update = trainer.update
        trainer.update = lambda batch, update=update: (seen.append(batch), update(batch))[1]  # type: ignore[method-assign]
    before = [[p.detach().clone() for p in trainer.model.parameters()] for trainer in trainers]
    cotrainer = CoTrainer(
        trainers,
        validation_env=("aipo/Arithmetic-v0", {"level": (1, 2), "max_turns": 1}),
        validation_problems=2,
        validation_samples=1,
        task=EvenLengthTask(level=1),
    )
    metrics = cotrainer.train_step()

    assert cotrainer.irt is not None and set(cotrainer.level_difficulty) == {1, 2}
    assert len(seen) == 2 and all(len(batch) == 6 for batch in seen)
    raw = torch.tensor([[float(r.reward) for r in batch.records] for batch in seen])
    for position in range(2):
        columns = slice(3 * position, 3 * position + 3)
        expected = calibrated_rewards(raw[:, columns].numpy())
        for player in range(2):
            assert seen[player].rewards[columns].tolist() == pytest.approx(expected[player].tolist())
    for batch in seen:
        # three turns of its own are learned; the partner's two texts are context, masked out
        assert all(len(record.texts("policy")) == 3 for record in batch.records)
        assert batch.agent_mask.any() and batch.policy_mask.any()
        assert not (batch.agent_mask & batch.policy_mask).any()
    assert metrics["player_0/rollout/reward"] == pytest.approx(float(raw[0].mean()))
    assert {trainer.step for trainer in trainers} == {1}
    learned = []
    for trainer, old, batch in zip(trainers, before, seen, strict=True):
        changed = any(not torch.equal(a, b) for a, b in zip(old, trainer.model.parameters(), strict=True))
        signal = bool(group_advantages(batch.rewards, batch.group_ids).abs().sum() > 0)
        assert changed == signal  # a player moves exactly when its calibrated rewards differ within a group
        learned.append(changed)
    assert any(learned)  # (these seeds give at least one player a learning signal)


def test_co_training_needs_grpo_and_matching_rollouts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="agent_mode"):
        CoTrainer([make_trainer(tmp_path / "a", 0, agent_mode="aipo"), make_trainer(tmp_path / "b", 1)])
    with pytest.raises(ValueError, match="two policies"):
        CoTrainer([make_trainer(tmp_path / "c", 0)])
