"""Commands that need an extra say, in one line, which pip install brings it; the env commands need none."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from aipo.cli import app

RUNNER = CliRunner()
TRAIN = 'needs the training extra: pip install "aipo[train]"'


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["train"], f"aipo train {TRAIN}"),
        (["eval"], f"aipo eval {TRAIN}"),
        (["demo", "--quick"], f"aipo demo {TRAIN}"),
        (["ilr", "--quick"], f"aipo ilr {TRAIN}"),
        (
            ["bench", "consult", "--quick"],
            'aipo bench consult needs the Stable-Baselines3 extra: pip install "aipo[sb3]"',
        ),
    ],
)
def test_command_without_its_extra_prints_the_install_line(monkeypatch, arguments, line):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    result = RUNNER.invoke(app, arguments)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == line


def test_env_commands_run_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert RUNNER.invoke(app, ["envs"]).exit_code == 0
    scripted = RUNNER.invoke(app, ["demo", "--scripted", "--level", "2"])
    assert scripted.exit_code == 0, scripted.output
