"""IRT fit and the cooperate / compete switch."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms.ilr.irt import fit_irt, interaction_mode, solve_probability


def test_fit_recovers_known_abilities_and_difficulties_from_synthetic_counts() -> None:
    rng = np.random.default_rng(0)
    abilities = np.linspace(-1.5, 1.5, 8)
    difficulties = rng.normal(0.0, 1.0, size=150)
    trials = 40
    correct = rng.binomial(trials, solve_probability(abilities[:, None], difficulties[None, :]))
    fit = fit_irt(correct, trials)
    # The likelihood sees only ability - difficulty: compare after removing the common shift.
    shift = np.mean(fit.abilities - abilities)
    assert np.abs(fit.abilities - shift - abilities).max() < 0.15
    assert np.corrcoef(fit.difficulties, difficulties)[0, 1] > 0.95
    assert np.abs(fit.difficulties - shift - difficulties).mean() < 0.2
    assert fit.probability(7, 0) > fit.probability(0, 0)


def test_fit_is_finite_when_a_question_is_always_or_never_solved() -> None:
    correct = np.array([[5, 0, 3], [5, 0, 1]])
    fit = fit_irt(correct, 5)
    assert np.isfinite(fit.abilities).all() and np.isfinite(fit.difficulties).all()
    assert fit.difficulties[1] > fit.difficulties[2] > fit.difficulties[0]
    assert fit.abilities[0] > fit.abilities[1]


def test_unobserved_pairs_do_not_count() -> None:
    correct = np.array([[3, 0], [0, 0]])
    trials = np.array([[3, 0], [3, 0]])
    fit = fit_irt(correct, trials)
    assert fit.difficulties[1] == pytest.approx(0.0, abs=1e-4)  # prior only


def test_switch_cooperates_below_one_half_and_competes_from_one_half() -> None:
    assert solve_probability(0.0, 0.0) == pytest.approx(0.5)
    assert solve_probability(1.0, 0.0) == pytest.approx(1 / (1 + np.exp(-1.7)))
    assert interaction_mode(ability=-0.1, difficulty=0.0) == "cooperate"
    assert interaction_mode(ability=0.0, difficulty=0.0) == "compete"
    assert interaction_mode(ability=2.0, difficulty=-1.0) == "compete"


def test_bad_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="correct <= trials"):
        fit_irt(np.array([[3]]), 2)
    with pytest.raises(ValueError, match="models, questions"):
        fit_irt(np.array([1, 2]), 3)
