"""``aipo bench consult``: the quick run writes a well-formed table, JSON and PNG."""

from __future__ import annotations

import json

import matplotlib.image
import pytest
from typer.testing import CliRunner

from aipo.bench_consult import BASELINES, ConsultBenchConfig, run_benchmark
from aipo.cli import app

RUNNER = CliRunner()
METRICS = ("accuracy", "consults", "ret", "train_seconds")


def check_outputs(out, methods, costs, seeds):
    results = json.loads((out / "results.json").read_text())
    assert results["wall_seconds"] > 0
    assert {(row["method"], row["cost"]) for row in results["summary"]} == {
        (m, c) for m in methods for c in costs
    }
    for row in results["summary"]:
        assert row["seeds"] == seeds and all(row[metric]["std"] >= 0 for metric in METRICS)
        assert 0 <= row["accuracy"]["mean"] <= 1 and row["consults"]["mean"] >= 0
        assert row["ret"]["mean"] <= row["accuracy"]["mean"] + 1e-9  # consults only cost
    assert len(results["runs"]) == len(methods) * len(costs) * seeds
    assert [point["threshold"] for point in results["frontier"]][:: len(results["frontier"]) - 1] == [
        0.0,
        1.0,
    ]
    assert results["frontier"][0]["consults"] == 0.0
    table = (out / "results.md").read_text()
    assert "| cost | method | accuracy | consults / episode | return | train s |" in table
    assert table.count("**") == 2 * len(costs)  # the best return per cost is marked
    image = matplotlib.image.imread(out / "frontier.png")
    assert image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.slow
def test_quick_command_writes_table_json_and_png(tmp_path):
    result = RUNNER.invoke(app, ["bench", "consult", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "threshold rule" in result.output and "frontier.png" in result.output
    check_outputs(tmp_path, [*BASELINES, "ppo", "a2c", "dqn"], [0.1], seeds=1)


@pytest.mark.slow
def test_parallel_workers_give_one_run_per_job(tmp_path):
    config = ConsultBenchConfig(
        costs=[0.0, 0.2], seeds=2, timesteps=64, eval_episodes=5, algorithms=["a2c"], workers=2, out=tmp_path
    )
    run_benchmark(config, progress=False)
    check_outputs(tmp_path, [*BASELINES, "a2c"], [0.0, 0.2], seeds=2)


def test_bad_settings_are_reported():
    result = RUNNER.invoke(app, ["bench", "consult", "--cost", "-1", "--algorithm", "sac"])
    assert result.exit_code == 2
    assert "costs" in result.output and "algorithms" in result.output
