"""Bootstrap intervals: they cover the truth about 95% of the time, pair models, and count seeds and problems."""

import numpy as np
import pytest

from algorithms.bootstrap import bootstrap_mean, paired_difference


def test_the_interval_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        solved = (rng.random((1, 300)) < 0.3).astype(float)  # one seed, 300 problems, p = 0.3
        interval = bootstrap_mean(solved, resamples=1000, seed=trial)
        assert interval.low <= interval.estimate <= interval.high
        covered += interval.low <= 0.3 <= interval.high
    assert 0.90 <= covered / 200 <= 0.99
    # and its width is the binomial one: 2 * 1.96 * sqrt(p (1 - p) / n)
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * np.sqrt(0.21 / 300), rel=0.15)


def test_identical_arms_differ_by_exactly_zero():
    arm = np.random.default_rng(1).random((3, 50))
    difference = paired_difference(arm, arm.copy())
    assert difference.estimate == difference.low == difference.high == 0.0
    assert not difference.excludes_zero


def test_clearly_separated_arms_are_distinguishable_and_a_small_gap_is_not():
    rng = np.random.default_rng(2)
    problems = rng.random((5, 300))  # each problem's difficulty, shared by both arms
    strong, weak = (problems < 0.6).astype(float), (problems < 0.2).astype(float)
    difference = paired_difference(strong, weak)
    assert difference.excludes_zero and difference.low > 0.3
    assert difference.estimate == pytest.approx(strong.mean() - weak.mean())
    noise = (rng.random((5, 300)) < 0.2).astype(float)
    assert not paired_difference(noise, weak).excludes_zero  # two draws of one arm


def test_pairing_cancels_what_the_arms_share():
    rng = np.random.default_rng(3)
    difficulty = rng.random((1, 200))
    better = difficulty + 0.01  # a small, constant gain on problems of very different difficulty
    paired = paired_difference(better, difficulty)
    assert paired.excludes_zero and paired.high - paired.low < 1e-9
    unpaired = bootstrap_mean(better, seed=1).low - bootstrap_mean(difficulty, seed=2).high
    assert unpaired < 0  # two separate intervals overlap


def test_spread_between_seeds_widens_the_interval():
    per_seed = np.array([[0.1], [0.2], [0.3], [0.4], [0.5]]) * np.ones((5, 100))
    interval = bootstrap_mean(per_seed)
    assert interval.estimate == pytest.approx(0.3)
    assert 0.1 <= interval.low < 0.25 and 0.35 < interval.high <= 0.5


def test_seeds_that_replay_the_same_problems_do_not_narrow_the_interval():
    one_seed = (np.random.default_rng(4).random((1, 100)) < 0.3).astype(float)
    five_copies = np.repeat(one_seed, 5, axis=0)
    one, five = bootstrap_mean(one_seed), bootstrap_mean(five_copies)
    assert five.high - five.low == pytest.approx(one.high - one.low, rel=0.1)


def test_the_interval_is_deterministic_given_a_seed():
    values = np.random.default_rng(5).random((2, 40))
    assert bootstrap_mean(values, seed=7) == bootstrap_mean(values, seed=7)
    assert bootstrap_mean(values, seed=7) != bootstrap_mean(values, seed=8)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="seeds x problems"):
        bootstrap_mean([1.0, 0.0])
    with pytest.raises(ValueError, match="same seeds and problems"):
        paired_difference(np.zeros((1, 3)), np.zeros((1, 4)))
