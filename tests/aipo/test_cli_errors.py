"""``aipo train`` and ``aipo eval`` report a wrong setting as one line on stderr and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from aipo.cli import app
from aipo.errors import DEBUG_VARIABLE

TRAIN = ["train", "steps=1", "progress=false", "rollout.problems_per_step=1", "rollout.group_size=1"]
EVAL = ["eval", "problems=1", "samples=1", "progress=false"]
BASELINE = "policy=never_consult"  # needs no model, so the env is what fails


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "torn.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+\n')
    (tmp_path / "fieldless.jsonl").write_text('{"question": "1+1"}\n')
    (tmp_path / "agents.yaml").write_text("verify: {backend: {kind: oracle}}\n")
    return tmp_path


def math_data(name: str) -> str:
    return "env.kwargs={data_path: " + name + "}"


CASES = {
    "missing model directory (train)": (
        [*TRAIN, "model.name_or_path={dir}/runs/x/final"],
        ["model.name_or_path", "{dir}/runs/x/final does not exist", "save_pretrained directory"],
    ),
    "missing model directory (eval)": (
        [*EVAL, "model.name_or_path={dir}/runs/x/final"],
        ["{dir}/runs/x/final does not exist"],
    ),
    "unknown env id (train)": (
        [*TRAIN, "env.id=aipo/Nope-v0"],
        ["env.id='aipo/Nope-v0' is not a registered environment", "aipo/Arithmetic-v0"],
    ),
    "unknown env id (eval)": ([*EVAL, BASELINE, "env.id=aipo/Nope-v0"], ["use one of: aipo/Arithmetic-v0"]),
    "missing data file": (
        [*TRAIN, "env.id=aipo/Math-v0", math_data("{dir}/none.jsonl")],
        ["{dir}/none.jsonl: no such data file", "pass data_path="],
    ),
    "malformed data file": (
        [*EVAL, BASELINE, "env.id=aipo/Math-v0", math_data("{dir}/torn.jsonl")],
        ["torn.jsonl, row 2: not valid JSON"],
    ),
    "missing field": (
        [*EVAL, BASELINE, "env.id=aipo/Math-v0", math_data("{dir}/fieldless.jsonl")],
        ["fieldless.jsonl, row 1: missing field", "fields present: question"],
    ),
    "bad env keyword (train)": (
        [*TRAIN, "env.kwargs={levle: 1}"],
        ["unexpected keyword argument 'levle'", "docstring of aipo_env.envs:ArithmeticEnv"],
    ),
    "bad env keyword (eval)": ([*EVAL, BASELINE, "env.kwargs={levle: 1}"], ["'levle'"]),
    "bad agents.yaml": (
        [*TRAIN, "env.kwargs={agents: {dir}/agents.yaml}"],
        ["agents.yaml: invalid agents config: verify.backend", "'oracle'"],
    ),
    "missing agents.yaml": (
        [*TRAIN, "env.kwargs={agents: {dir}/none.yaml}"],
        ["none.yaml: no such agents config file"],
    ),
    "resume with no checkpoint": (
        [*TRAIN, "resume_from=latest"],
        ["resume_from=latest", "holds no checkpoint", "drop resume_from"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_setting_is_one_line_naming_it(case: str, files: Path) -> None:
    arguments, expected = CASES[case]
    filled = [argument.replace("{dir}", str(files)) for argument in arguments]
    result = CliRunner().invoke(app, [*filled, f"output_dir={files / 'run'}"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for phrase in expected:
        assert phrase.replace("{dir}", str(files)) in lines[0]


def test_debug_shows_the_error_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = [*EVAL, BASELINE, "env.id=aipo/Nope-v0", f"output_dir={tmp_path}"]
    flagged = CliRunner().invoke(app, [*wrong, "--debug"])
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    by_variable = CliRunner().invoke(app, wrong)
    for result in (flagged, by_variable):
        assert result.exit_code == 1 and "aipo/Nope-v0" in str(result.exception)
        assert result.exc_info is not None and result.exc_info[2] is not None  # the traceback is kept


def test_an_unprepared_registry_model_is_one_line_with_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIPO_MODELS_DIR", str(tmp_path / "models"))
    for command in (TRAIN, EVAL):
        arguments = [*command, "model.name_or_path=smollm2-135m-instruct", f"output_dir={tmp_path / 'run'}"]
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "run `aipo models pull smollm2-135m-instruct`" in lines[0], result.stderr
