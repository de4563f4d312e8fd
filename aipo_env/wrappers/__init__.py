"""Wrappers that reshape the reasoning envs for other kinds of learners.

:class:`ConsultDecisionEnv` turns a reasoning env plus a fixed solver into a small discrete
decision problem (when to consult, and whom) that Stable-Baselines3 trains on as it is.
"""

from aipo_env.wrappers.baselines import (
    AlwaysConsult,
    DecisionPolicy,
    NeverConsult,
    RandomDecision,
    ThresholdRule,
)
from aipo_env.wrappers.consult_decision import AGENTS, FEATURES, ConsultDecisionEnv, Decision
from aipo_env.wrappers.solver import NoisyArithmeticSolver, Solver, SolverSignals

__all__ = [
    "AGENTS",
    "FEATURES",
    "AlwaysConsult",
    "ConsultDecisionEnv",
    "Decision",
    "DecisionPolicy",
    "NeverConsult",
    "RandomDecision",
    "ThresholdRule",
    "NoisyArithmeticSolver",
    "Solver",
    "SolverSignals",
]
