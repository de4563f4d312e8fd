"""Learners that consume env episodes: rollout, advantages, losses, GRPO, AIPO, ILR, trainer."""
