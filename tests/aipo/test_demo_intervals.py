"""The demo's intervals: each model's accuracy with its 95% interval per split, and which AIPO differences are real."""

from __future__ import annotations

import random

import pytest

from aipo.demo.intervals import interval_tables, split_intervals


def run(correct: list[int], samples: int = 4) -> dict:
    """One model's entry of a seed, as the demo saves it (held-out split; the shifted one the same)."""
    numbers = {
        "accuracy": sum(correct) / (samples * len(correct)),
        "pass_at_k": {str(k): 0.0 for k in range(1, samples + 1)},
        "problems": list(range(len(correct))),
        "per_problem_correct": correct,
    }
    return {**numbers, "shifted": dict(numbers)}


def seeds() -> dict:
    rng = random.Random(0)
    out = {}
    for seed in ("0", "1"):
        weak = [sum(rng.random() < 0.1 for _ in range(4)) for _ in range(300)]
        strong = [sum(rng.random() < 0.5 for _ in range(4)) for _ in range(300)]
        out[seed] = {"warm-up": run(weak), "grpo": run(strong), "aipo": run(strong)}
    return out


def test_each_model_gets_an_interval_around_its_accuracy_on_both_splits():
    runs = seeds()
    intervals = split_intervals(runs, ["warm-up", "grpo", "aipo"], resamples=500)
    for split in ("held_out", "shifted"):
        assert intervals[split]["problems"] == 300 and intervals[split]["samples"] == 4
        aipo = intervals[split]["models"]["aipo"]["accuracy"]
        mean = sum(seed["aipo"]["accuracy"] for seed in runs.values()) / 2
        assert aipo["estimate"] == pytest.approx(mean) and aipo["low"] < mean < aipo["high"]
        assert aipo["low"] > 0.4 and aipo["high"] < 0.6


def test_a_clear_gain_is_distinguishable_from_zero_and_identical_arms_are_not():
    intervals = split_intervals(seeds(), ["warm-up", "grpo", "aipo"], resamples=500)
    paired = intervals["held_out"]["paired"]
    assert set(paired) == {"warm-up", "grpo"}
    assert paired["warm-up"]["accuracy"]["verdict"] == "distinguishable from 0"
    assert paired["warm-up"]["accuracy"]["low"] > 0.3
    same = paired["grpo"]["accuracy"]
    assert same["verdict"] == "not distinguishable" and same["low"] == same["estimate"] == same["high"] == 0
    table = interval_tables(
        {"intervals": intervals, "settings": {"demo": {"eval": {"shifted": {"operations": 3}}}}}
    )
    assert "| aipo − warm-up | +0." in table and "| distinguishable from 0 |" in table
    assert "| aipo − grpo | +0.000 [+0.000, +0.000] | not distinguishable |" in table
    assert "shifted accuracy" in table and "operations=3" in table


def test_runs_on_different_problems_are_not_paired():
    runs = seeds()
    runs["1"]["grpo"]["problems"] = list(range(1, 301))  # a seed reused from a run with other settings
    intervals = split_intervals(runs, ["warm-up", "grpo", "aipo"], resamples=100)
    assert "held_out" not in intervals and "held_out" in intervals["skipped"]
