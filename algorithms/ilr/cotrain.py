"""ILR co-training: two policies play Idea3 together and each is updated with GRPO on calibrated rewards.

One step (both players share the problems):

1. take the next ``P`` problems of player 0's trainer (its seeded order);
2. each player's mode per problem from IRT (:mod:`algorithms.ilr.irt`): abilities and per-level
   difficulties fitted to both players' solve counts on a validation set, refitted every
   ``irt_every`` steps;
3. play ``G`` Idea3 games per problem (:func:`algorithms.ilr.interaction.interact`);
4. rewards: each final solution's task score, calibrated against the partner's rewards on the
   same problem (:func:`algorithms.ilr.calibration.calibrated_rewards`) unless ``calibrate=False``;
5. each player's GRPO update is its own :meth:`algorithms.trainer.Trainer.update` (group-relative
   advantages over its ``G`` samples; the partner's text is masked out like helper text, so the
   trainers must use ``loss.agent_mode="mask"``).

Departures from ILR as our sources describe it: difficulty is fitted per level of the task
(new training questions have no observations of their own), not per question; the share stage is
scored for diagnostics only; the reward is the fused answer's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from aipo_env.idea3 import PLAYERS, Idea3Env, Mode
from aipo_env.tasks.base import Task
from algorithms.batch import collate
from algorithms.evaluation import evaluate
from algorithms.ilr.calibration import calibrated_rewards
from algorithms.ilr.interaction import interact
from algorithms.ilr.irt import IRTFit, fit_irt, interaction_mode
from algorithms.trainer import Trainer


class CoTrainer:
    """Trains two policies together with ILR (the steps are in the module docstring).

    Args:
        trainers: one GRPO :class:`Trainer` per player (``loss.agent_mode="mask"``, the same
            ``rollout.problems_per_step`` and ``group_size``); player 0's env gives the task.
        validation_env: ``(env id, kwargs)`` of the problems whose solve counts fit the IRT model.
        validation_problems: how many validation problems (``0`` = no IRT: both cooperate).
        validation_samples: episodes per validation problem and player.
        irt_every: refit IRT every this many steps (0 = only before the first step).
        calibrate: use perception-calibrated rewards (else the raw task scores).
        task: the problems of the Idea3 games (default: the task of player 0's env).
    """

    def __init__(
        self,
        trainers: Sequence[Trainer],
        *,
        validation_env: tuple[str, Mapping[str, Any]] = ("aipo/Arithmetic-v0", {}),
        validation_problems: int = 16,
        validation_samples: int = 4,
        irt_every: int = 0,
        calibrate: bool = True,
        task: Task | None = None,
    ) -> None:
        if len(trainers) != 2:
            raise ValueError(f"ILR co-trains two policies, got {len(trainers)} trainers")
        rollouts = [trainer.config.rollout for trainer in trainers]
        if any(trainer.config.loss.agent_mode != "mask" for trainer in trainers):
            raise ValueError(
                "ILR trains with GRPO: set loss.agent_mode='mask' so partner text is not learned"
            )
        if (rollouts[0].problems_per_step, rollouts[0].group_size) != (
            rollouts[1].problems_per_step,
            rollouts[1].group_size,
        ):
            raise ValueError("both trainers need the same rollout.problems_per_step and rollout.group_size")
        self.trainers = list(trainers)
        self.task = task or trainers[0].envs[0].unwrapped.task
        self.validation_env = validation_env
        self.validation_problems, self.validation_samples = validation_problems, validation_samples
        self.irt_every, self.calibrate = irt_every, calibrate
        games = rollouts[0].problems_per_step * rollouts[0].group_size
        self.envs = [Idea3Env(self.task) for _ in range(games)]
        self.irt: IRTFit | None = None
        self.level_difficulty: dict[Any, float] = {}
        self.step = 0

    def learn(self, steps: int, *, progress: bool = True) -> list[dict[str, float]]:
        """Run ``steps`` co-training steps; returns every step's metrics."""
        history = []
        bar = tqdm(range(steps), desc="ilr", disable=not progress)
        for _ in bar:
            metrics = self.train_step()
            history.append(metrics)
            bar.set_postfix(
                {
                    f"reward_{i}": f"{metrics[f'{player}/rollout/reward']:.2f}"
                    for i, player in enumerate(PLAYERS)
                }
            )
        bar.close()
        return history

    def train_step(self) -> dict[str, float]:
        """Fit IRT when due, play one batch of Idea3 games, update both players; returns metrics."""
        started = time.perf_counter()
        if self.validation_problems and (
            self.irt is None or (self.irt_every and self.step % self.irt_every == 0)
        ):
            self.fit_irt()
        problems = self.trainers[0].next_problems()
        modes = [self.modes_for(index) for index in problems]
        group_size = self.trainers[0].config.rollout.group_size
        policies = [trainer.policy for trainer in self.trainers]
        with torch.no_grad():
            played = interact(policies, self.envs, problems, group_size, modes)
        batches = [
            collate(episodes, policy.pad_token_id)
            for episodes, policy in zip(played.episodes, policies, strict=True)
        ]
        raw = torch.stack([batch.rewards for batch in batches])  # [2, P * G]
        shaped = raw.clone()
        if self.calibrate:
            for position in range(len(problems)):
                columns = slice(position * group_size, (position + 1) * group_size)
                shaped[:, columns] = torch.from_numpy(calibrated_rewards(raw[:, columns].numpy())).float()
        metrics: dict[str, float] = {}
        for index, (player, trainer, batch) in enumerate(zip(PLAYERS, self.trainers, batches, strict=True)):
            updated = trainer.update(replace(batch, rewards=shaped[index]))
            trainer.step += 1
            updated.update(
                {
                    "rollout/reward": float(raw[index].mean()),
                    "rollout/calibrated_reward": float(shaped[index].mean()),
                    "rollout/share_score": float(np.mean(played.share_scores[index])),
                    "rollout/cooperate_fraction": float(
                        np.mean([m == "cooperate" for m in played.modes[index]])
                    ),
                }
            )
            trainer.log.log(trainer.step, updated)
            metrics.update({f"{player}/{name}": value for name, value in updated.items()})
        self.step += 1
        metrics["perf/step_s"] = time.perf_counter() - started
        return metrics

    def fit_irt(self) -> IRTFit:
        """Evaluate both players alone on the validation problems and fit abilities and difficulties."""
        env_id, kwargs = self.validation_env
        problems = list(range(self.validation_problems))
        results = [
            evaluate(
                trainer.policy,
                env_id,
                kwargs,
                problems=problems,
                samples=self.validation_samples,
                progress=False,
            )
            for trainer in self.trainers
        ]
        correct = np.array([[problem.correct for problem in result.problems] for result in results])
        self.irt = fit_irt(correct, self.validation_samples)
        by_level: dict[Any, list[float]] = defaultdict(list)
        for problem, difficulty in zip(results[0].problems, self.irt.difficulties, strict=True):
            by_level[problem.difficulty].append(float(difficulty))
        self.level_difficulty = {level: float(np.mean(values)) for level, values in by_level.items()}
        return self.irt

    def modes_for(self, index: int) -> dict[str, Mode]:
        """Each player's mode on training problem ``index``: cooperate when its P < 0.5."""
        if self.irt is None:
            return dict.fromkeys(PLAYERS, "cooperate")  # type: ignore[return-value]
        level = self.task.problem(index).difficulty
        difficulty = self.level_difficulty.get(level, float(np.mean(self.irt.difficulties)))
        return {
            player: interaction_mode(float(ability), difficulty)
            for player, ability in zip(PLAYERS, self.irt.abilities, strict=True)
        }
