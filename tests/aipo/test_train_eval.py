"""``aipo train`` and ``aipo eval`` end to end on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from aipo.cli import app

SMALL = [
    "steps=2",
    "progress=false",
    "rollout.problems_per_step=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=12",
    "env.kwargs={level: 1, max_turns: 2}",
]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_train_then_resume_then_eval(tmp_path: Path) -> None:
    runner = CliRunner()
    config = tmp_path / "config.yaml"
    config.write_text("loss:\n  agent_mode: aipo\noptim:\n  lr: 1.0e-3\n")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config), *SMALL, f"output_dir={run}"])
    assert result.exit_code == 0, result.output
    assert (run / "final" / "config.json").is_file() and (run / "training.png").is_file()
    result = runner.invoke(
        app, ["train", str(config), *SMALL, "steps=3", "resume_from=latest", f"output_dir={run}"]
    )
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]

    out = tmp_path / "eval"
    result = runner.invoke(
        app,
        ["eval", f"model.name_or_path={run / 'final'}", "problems=2", "samples=2", "max_new_tokens=8"]
        + ["progress=false", "env.kwargs={level: 1, max_turns: 2}", f"output_dir={out}"],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "eval.json").read_text())
    assert set(saved["pass_at_k"]) == {"1", "2"} and saved["settings"]["env_kwargs"]["consult"] == "off"
    assert (out / "pass_at_k.png").is_file()


def test_a_run_killed_while_logging_resumes_and_plots(tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMALL, "save_every=1", f"output_dir={run}"])
    assert result.exit_code == 0, result.output
    with (run / "metrics.jsonl").open("a") as handle:  # kill -9 halfway through step 3's record
        handle.write('{"step": 3, "rollout/reward": 0.5, "rollo')
    result = runner.invoke(
        app, ["train", *SMALL, "steps=3", "save_every=1", "resume_from=latest", f"output_dir={run}"]
    )
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3] and (run / "training.png").is_file()


def test_bad_keys_exit_with_the_key_named(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "optim.lrr=3", f"output_dir={tmp_path}"])
    assert result.exit_code == 2 and "optim.lrr" in result.output
    result = runner.invoke(app, ["eval", "policy=oracle", f"output_dir={tmp_path}"])
    assert result.exit_code == 2 and "oracle" in result.output


def test_eval_measures_a_policy_alone_or_with_the_helpers(tmp_path: Path) -> None:
    base = ["eval", "policy=consult_first:reasoning", "env.kwargs={level: 1}", "problems=3", "samples=1"]
    for consult, accuracy in (("off", 0.0), ("agents", 1.0)):
        out = tmp_path / consult
        result = CliRunner().invoke(app, [*base, f"consult={consult}", f"output_dir={out}", "progress=false"])
        assert result.exit_code == 0, result.output
        saved = json.loads((out / "eval.json").read_text())
        assert saved["settings"]["env_kwargs"]["consult"] == consult and saved["accuracy"] == accuracy
