"""Fixed policies for :class:`~aipo_env.decision.consult_decision.ConsultDecisionEnv`.

They read the observation by feature name and answer ``predict`` the way a Stable-Baselines3
model does, so a benchmark evaluates a trained model and a baseline with the same loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from aipo_env.decision.consult_decision import FEATURES, Decision

_INDEX = {name: index for index, name in enumerate(FEATURES)}


class DecisionPolicy(ABC):
    """A policy over one observation vector, with SB3's ``predict`` signature."""

    name: str = "policy"

    @abstractmethod
    def decide(self, observation: np.ndarray) -> Decision:
        """The decision for one observation."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """``(action, None)`` for one observation or a batch of them, as SB3's ``predict``."""
        batch = np.atleast_2d(observation)
        actions = np.array([int(self.decide(row)) for row in batch], dtype=np.int64)
        return (actions if np.ndim(observation) > 1 else actions[0]), None


def _feature(observation: np.ndarray, name: str) -> float:
    return float(observation[_INDEX[name]])


class NeverConsult(DecisionPolicy):
    """The solver works alone: continue until the chain is complete, then answer."""

    name = "never"

    def decide(self, observation: np.ndarray) -> Decision:
        return Decision.CONTINUE


class AlwaysConsult(DecisionPolicy):
    """Consult Reasoning before every step while the budget lasts, then let the solver finish."""

    name = "always"

    def decide(self, observation: np.ndarray) -> Decision:
        if _feature(observation, "has_candidate") or _feature(observation, "reasoning_left") <= 0:
            return Decision.CONTINUE
        return Decision.REASONING


class RandomDecision(DecisionPolicy):
    """Uniformly random decisions (answering early included).

    Args:
        seed: seed of its random stream.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def decide(self, observation: np.ndarray) -> Decision:
        return Decision(int(self.rng.integers(len(Decision))))


class ThresholdRule(DecisionPolicy):
    """Consult Reasoning on a doubtful step, otherwise let the solver go on.

    A step is doubtful when it is unconfirmed and the solver's confidence in it is below
    ``threshold`` or its self-check failed. Reasoning then repairs the first wrong step, or
    supplies the next one when there is none, so a consult is never wasted.

    Args:
        threshold: confidence below which a step is doubtful; 0 never consults, 1 consults
            after every unconfirmed step.
    """

    name = "threshold"

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a confidence in [0, 1], got {threshold}")
        self.threshold = threshold

    def decide(self, observation: np.ndarray) -> Decision:
        unconfirmed = _feature(observation, "steps_written") > 0 and not _feature(
            observation, "last_step_confirmed"
        )
        doubtful = unconfirmed and (
            _feature(observation, "step_confidence") < self.threshold
            or _feature(observation, "self_check_failed") > 0
        )
        if doubtful and self.threshold > 0 and _feature(observation, "reasoning_left") > 0:
            return Decision.REASONING
        return Decision.CONTINUE
