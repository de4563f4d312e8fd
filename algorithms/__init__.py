"""Learners that consume env episodes: rollout, advantages, losses, GRPO / AIPO, trainer, evaluation.

A custom learner needs only :class:`EpisodeBatch` (from :func:`collect`); see
``examples/custom_learner.py``. GRPO and AIPO are one :class:`Trainer`; they differ in
``loss.agent_mode`` (the objective is written out in :mod:`algorithms.aipo`).
"""

from aipo_env.extras import needs_extra

with needs_extra("train", "algorithms"):
    from algorithms.advantages import group_advantages, zero_variance_fraction
    from algorithms.aipo import LossInputs, agent_coefficient, agent_token_loss, objective
    from algorithms.batch import AGENT, PAD, POLICY, PROMPT, EpisodeBatch, TokenizedEpisode, collate
    from algorithms.config import EvalConfig, LossConfig, TrainConfig, load_config
    from algorithms.forward import token_logprobs
    from algorithms.losses import aggregate, clipped_surrogate, kl_k3
    from algorithms.rollout import Guide, collect, play, rollout
    from algorithms.trainer import Trainer

__all__ = [
    "AGENT",
    "PAD",
    "POLICY",
    "PROMPT",
    "EpisodeBatch",
    "EvalConfig",
    "Guide",
    "LossConfig",
    "LossInputs",
    "TokenizedEpisode",
    "TrainConfig",
    "Trainer",
    "agent_coefficient",
    "agent_token_loss",
    "aggregate",
    "clipped_surrogate",
    "collate",
    "collect",
    "group_advantages",
    "kl_k3",
    "load_config",
    "objective",
    "play",
    "rollout",
    "token_logprobs",
    "zero_variance_fraction",
]
