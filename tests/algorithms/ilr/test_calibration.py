"""Perception-calibrated rewards on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms.ilr.calibration import calibrated_rewards


def test_two_models_hand_computed() -> None:
    rewards = np.array([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    # model 0 against model 1: mean 0.75, range 1 -> (1 - .75) = .25, (0 - .75) = -.75
    # model 1 against model 0: mean 0.5, range 1 -> (1 - .5) = .5 , (0 - .5) = -.5
    expected = np.array([[1.25, -0.75, 1.25, -0.75], [1.5, 1.5, 1.5, -0.5]])
    np.testing.assert_allclose(calibrated_rewards(rewards), expected)


def test_the_bonus_is_clipped_to_one_over_m_minus_one_per_partner() -> None:
    rewards = np.array([[4.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    calibrated = calibrated_rewards(rewards)
    # model 0, sample 0: vs model 1 (4 - .5) / 1 -> clip .5 ; vs model 2 zero range, above -> +.5
    assert calibrated[0, 0] == pytest.approx(5.0)
    # model 0, sample 1: vs model 1 (0 - .5) / 1 = -.5 ; vs model 2: below -> -.5
    assert calibrated[0, 1] == pytest.approx(-1.0)
    # model 2 (all 0.5): vs model 0 (0.5 - 2) / 4 = -.375 ; vs model 1 (0.5 - .5) / 1 = 0
    np.testing.assert_allclose(calibrated[2], [0.125, 0.125])


def test_zero_range_partner_gives_the_full_bonus_sign_or_nothing() -> None:
    rewards = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    calibrated = calibrated_rewards(rewards)
    np.testing.assert_allclose(calibrated[0], [2.0, 0.0, 0.0])  # beat a partner that never solves it
    # model 1 against model 0: mean 1/3, range 1 -> -1/3 each
    np.testing.assert_allclose(calibrated[1], [-1 / 3] * 3)
    both_equal = calibrated_rewards(np.ones((2, 4)))
    np.testing.assert_allclose(both_equal, np.ones((2, 4)))


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="models >= 2"):
        calibrated_rewards(np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="finite"):
        calibrated_rewards(np.array([[1.0], [np.nan]]))
