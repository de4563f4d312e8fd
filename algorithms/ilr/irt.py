"""Item response theory for ILR's dynamic interaction: abilities, difficulties and the mode switch.

The two-parameter logistic model with the fixed discrimination of ILR (arXiv 2509.26306, as
summarised in our sources; 1.7 makes the logistic curve close to the normal ogive):

    P(model i solves question q) = 1 / (1 + exp(-1.7 (gamma_i - D_q)))

``gamma_i`` (ability) and ``D_q`` (difficulty) are fitted to observed solve counts by maximum a
posteriori estimation with a Gaussian prior ``N(0, prior_scale^2)`` on every parameter. The prior
fixes the common shift that the likelihood cannot see and keeps the estimates finite for a
question that every model always (or never) solves.

Model ``i`` **cooperates** on question ``q`` when ``P < 0.5`` (the question is beyond it) and
**competes** otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

DISCRIMINATION = 1.7
Mode = Literal["cooperate", "compete"]


def solve_probability(ability: float | np.ndarray, difficulty: float | np.ndarray) -> np.ndarray:
    """``P = 1 / (1 + exp(-1.7 (ability - difficulty)))``, broadcast over arrays."""
    return expit(DISCRIMINATION * (np.asarray(ability, dtype=float) - np.asarray(difficulty, dtype=float)))


def interaction_mode(ability: float, difficulty: float) -> Mode:
    """``"cooperate"`` when the model's solve probability is below 0.5, else ``"compete"``."""
    return "cooperate" if float(solve_probability(ability, difficulty)) < 0.5 else "compete"


@dataclass(frozen=True)
class IRTFit:
    """Fitted parameters: ``abilities[i]`` per model, ``difficulties[q]`` per question."""

    abilities: np.ndarray
    difficulties: np.ndarray

    def probability(self, model: int, question: int) -> float:
        """The fitted chance that ``model`` solves ``question``."""
        return float(solve_probability(self.abilities[model], self.difficulties[question]))


def fit_irt(correct: np.ndarray, trials: np.ndarray | int, *, prior_scale: float = 3.0) -> IRTFit:
    """Fit abilities and difficulties to solve counts (MAP, formulas in the module docstring).

    Minimises the negative log-posterior

        -sum_iq [c_iq log P_iq + (n_iq - c_iq) log(1 - P_iq)] + (sum_i gamma_i^2 + sum_q D_q^2) / (2 s^2)

    with ``c`` the correct counts, ``n`` the trials and ``s = prior_scale``, by L-BFGS with the
    exact gradient ``d/d gamma_i = -1.7 sum_q (c_iq - n_iq P_iq) + gamma_i / s^2`` (and the same
    with the opposite sign for ``D_q``).

    Args:
        correct: ``[models, questions]`` correct answers per pair.
        trials: ``[models, questions]`` attempts per pair (0 = not observed), or one count for all.
        prior_scale: standard deviation ``s`` of the Gaussian prior.

    Raises:
        ValueError: for shapes that do not match, negative counts, or ``correct > trials``.
    """
    correct = np.asarray(correct, dtype=float)
    trials = np.broadcast_to(np.asarray(trials, dtype=float), correct.shape) if correct.ndim == 2 else None
    if correct.ndim != 2 or trials is None or correct.size == 0:
        raise ValueError(f"correct must be a non-empty [models, questions] array, got shape {correct.shape}")
    if (correct < 0).any() or (correct > trials).any():
        raise ValueError("counts must satisfy 0 <= correct <= trials for every model and question")
    if prior_scale <= 0:
        raise ValueError(f"prior_scale must be > 0, got {prior_scale}")
    models, questions = correct.shape
    precision = 1.0 / prior_scale**2

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        ability, difficulty = params[:models], params[models:]
        logits = DISCRIMINATION * (ability[:, None] - difficulty[None, :])
        log_likelihood = correct * log_expit(logits) + (trials - correct) * log_expit(-logits)
        value = -log_likelihood.sum() + 0.5 * precision * (params**2).sum()
        residual = correct - trials * expit(logits)
        gradient = np.concatenate(
            [-DISCRIMINATION * residual.sum(axis=1), DISCRIMINATION * residual.sum(axis=0)]
        )
        return float(value), gradient + precision * params

    result = minimize(objective, np.zeros(models + questions), jac=True, method="L-BFGS-B")
    return IRTFit(abilities=result.x[:models].copy(), difficulties=result.x[models:].copy())
