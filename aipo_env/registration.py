"""Registers the ``aipo/...`` ids with Gymnasium (runs on ``import aipo_env``).

:data:`ENVS` is the one table: each id with its entry point and the one-line description that
``aipo envs`` prints. ``ENV_IDS`` (id -> description) is derived from it.

**Versions.** An id's version goes up when what an episode rewards changes, as Gymnasium does.
``aipo/Code-v1`` is the code env with its tests judged outside the sandbox, helper functions taken
from the task and bounded replies (issue 28): programs that gamed the old harness score 0 there.
``aipo/Code-v0`` is kept for old configs and builds the same env (the old judge could be gamed,
so it is not kept); Gymnasium warns that it is out of date.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym


class EnvSpec(NamedTuple):
    """One registered env: its Gymnasium entry point and what ``aipo envs`` says of it."""

    entry_point: str
    description: str


_CODE = "Python problems (built-in, MBPP, HumanEval, LiveCodeBench, stdin/stdout) tested in a sandbox, judged outside"

ENVS: dict[str, EnvSpec] = {
    "aipo/Arithmetic-v0": EnvSpec(
        "aipo_env.envs:ArithmeticEnv",
        "built-in step-by-step arithmetic chains, levels 1 (trivial) to 10 (hard), offline",
    ),
    "aipo/ArithmeticRule-v0": EnvSpec(
        "aipo_env.envs:ArithmeticRuleEnv",
        "arithmetic chains with a rule only the helpers show (double it: v + v), disjoint splits",
    ),
    "aipo/Math-v0": EnvSpec(
        "aipo_env.envs:MathEnv",
        "free-form math with \\boxed{} answers scored by math-verify: MATH-500, GSM8K, AIME",
    ),
    "aipo/MultipleChoice-v0": EnvSpec(
        "aipo_env.envs:MultipleChoiceEnv",
        "GPQA-style multiple choice, options shuffled per seed, letter answers",
    ),
    "aipo/Procedural-v0": EnvSpec(
        "aipo_env.envs:ProceduralEnv", "any reasoning-gym task by name, with its settings and its own scorer"
    ),
    "aipo/ConsultDecision-v0": EnvSpec(
        "aipo_env.decision.consult_decision:ConsultDecisionEnv",
        "when to consult and whom: discrete actions, vector observations, for SB3",
    ),
    "aipo/Code-v1": EnvSpec("aipo_env.envs:CodeEnv", _CODE),
    "aipo/Code-v0": EnvSpec(
        "aipo_env.envs:CodeEnv", "out of date: aipo/Code-v1 under its old id (the same env)"
    ),
}

ENV_IDS: dict[str, str] = {env_id: spec.description for env_id, spec in ENVS.items()}


def register_envs() -> None:
    """Register every id once; calling it again is harmless."""
    for env_id, spec in ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=spec.entry_point, disable_env_checker=False)
