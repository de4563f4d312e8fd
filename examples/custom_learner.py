"""A custom learner: REINFORCE with a moving-average baseline, on the episode batch GRPO and AIPO use.

Everything a learner needs is in ``algorithms.EpisodeBatch``: token ids, who wrote each token
(``policy_mask`` / ``agent_mask``), behaviour log-probs, rewards and group ids. This one trains on
the policy's own tokens only:

    loss = -1/N * sum_i (R_i - b) * sum_{t in policy tokens of i} log pi_theta(x_t | x_<t)

Run it (tiny model, CPU, about a minute):

    python examples/custom_learner.py --steps 20
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import aipo_env  # noqa: F401  (registers the env ids)
from algorithms import EpisodeBatch, collect, token_logprobs
from policies import HFPolicy


def reinforce_loss(batch: EpisodeBatch, logprobs: torch.Tensor, baseline: float) -> torch.Tensor:
    """The loss in the module docstring; ``N`` is the number of policy tokens."""
    advantages = (batch.rewards - baseline).unsqueeze(-1)
    per_token = -advantages * logprobs * batch.policy_mask
    return per_token.sum() / batch.policy_mask.sum().clamp(min=1)


def train(steps: int, problems: int = 4, group_size: int = 4, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Train the tiny model on level-1 arithmetic; returns the mean reward of every step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = HFPolicy.from_pretrained("tiny", device="cpu", max_new_tokens=32)
    envs = [gym.make("aipo/Arithmetic-v0", level=1, max_turns=2) for _ in range(problems * group_size)]
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=lr)
    baseline, rewards = 0.0, []
    for _ in tqdm(range(steps), desc="reinforce"):
        indices = rng.integers(0, len(envs[0].unwrapped.task), size=problems).tolist()
        batch = collect(policy, envs, indices, group_size)
        logprobs, _ = token_logprobs(
            policy.model, batch.input_ids, batch.attention_mask, temperature=policy.temperature
        )
        loss = reinforce_loss(batch, logprobs, baseline)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        baseline = 0.9 * baseline + 0.1 * float(batch.rewards.mean())
        rewards.append(float(batch.rewards.mean()))
    return rewards


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    arguments = parser.parse_args()
    history = train(arguments.steps, lr=arguments.lr)
    print(f"mean reward, first and last step: {history[0]:.3f} -> {history[-1]:.3f}")
