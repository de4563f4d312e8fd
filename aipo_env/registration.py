"""Registers the ``aipo/...`` ids with Gymnasium (runs on ``import aipo_env``).

``ENV_IDS`` maps each id to its one-line description, which ``aipo envs`` prints.
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS: dict[str, str] = {
    "aipo/Arithmetic-v0": "built-in step-by-step arithmetic chains, levels 1 (trivial) to 10 (hard), offline",
    "aipo/ArithmeticRule-v0": "arithmetic chains with a rule only the helpers show (double it: v + v), disjoint splits",
    "aipo/Math-v0": "free-form math with \\boxed{} answers scored by math-verify: MATH-500, GSM8K, AIME",
    "aipo/MultipleChoice-v0": "GPQA-style multiple choice, options shuffled per seed, letter answers",
    "aipo/Procedural-v0": "any reasoning-gym task by name, with its settings and its own scorer",
    "aipo/ConsultDecision-v0": "when to consult and whom: discrete actions, vector observations, for SB3",
    "aipo/Code-v0": "Python problems (MBPP, HumanEval formats) whose tests run in a sandbox",
}

_ENTRY_POINTS = {
    "aipo/Arithmetic-v0": "aipo_env.envs:ArithmeticEnv",
    "aipo/ArithmeticRule-v0": "aipo_env.envs:ArithmeticRuleEnv",
    "aipo/Math-v0": "aipo_env.envs:MathEnv",
    "aipo/MultipleChoice-v0": "aipo_env.envs:MultipleChoiceEnv",
    "aipo/Procedural-v0": "aipo_env.envs:ProceduralEnv",
    "aipo/ConsultDecision-v0": "aipo_env.decision.consult_decision:ConsultDecisionEnv",
    "aipo/Code-v0": "aipo_env.envs:CodeEnv",
}


def register_envs() -> None:
    """Register every id once; calling it again is harmless."""
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, disable_env_checker=False)
