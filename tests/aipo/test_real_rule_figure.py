"""The real-model experiment's figure reads a demo.json and says what is missing when it cannot."""

from pathlib import Path

import pytest

from aipo.real_rule.figure import draw, training_curves


def results() -> dict:
    interval = {"estimate": 0.1, "low": 0.05, "high": 0.2}
    seeds = {
        seed: {
            "warm-up": {"training": []},
            "aipo": {
                "training": [
                    {"step": 1, "rollout/sampled_accuracy": a},
                    {"step": 2, "rollout/sampled_accuracy": b},
                ]
            },
            "sft": {"training": []},
        }
        for seed, (a, b) in {"0": (0.0, 0.5), "1": (0.25, 0.25)}.items()
    }
    models = {model: {"accuracy": interval} for model in ("warm-up", "aipo", "sft")}
    return {
        "seeds": seeds,
        "intervals": {"held_out": {"models": models, "problems": 3, "samples": 2, "seeds": 2}},
    }


def test_training_curves_average_the_rl_arms_over_seeds() -> None:
    assert training_curves(results()["seeds"]) == {"aipo": [0.125, 0.375]}


def test_the_figure_is_written_and_an_unfinished_run_is_named(tmp_path: Path) -> None:
    draw(results(), tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 0
    with pytest.raises(ValueError, match="no held-out intervals"):
        draw({"seeds": {}}, tmp_path / "none.png")
