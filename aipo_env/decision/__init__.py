"""The consult decision: *when* to consult, and whom, as a small discrete problem for classic RL.

:class:`ConsultDecisionEnv` turns a reasoning env plus a fixed simulated solver
(:mod:`~aipo_env.decision.solver`) into a decision problem that Stable-Baselines3 trains on as
it is; :mod:`~aipo_env.decision.baselines` holds scripted decision policies to compare with.
"""

from aipo_env.decision.baselines import (
    AlwaysConsult,
    DecisionPolicy,
    NeverConsult,
    RandomDecision,
    ThresholdRule,
)
from aipo_env.decision.consult_decision import AGENTS, FEATURES, ConsultDecisionEnv, Decision
from aipo_env.decision.solver import NoisyArithmeticSolver, Solver, SolverSignals

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
