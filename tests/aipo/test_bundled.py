"""The documented commands work from any directory: example configs are installed with the package."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aipo.bundled import EXAMPLES, config_path, existing_config
from aipo.cli import app


def test_the_installed_examples_are_the_repositorys(monkeypatch, tmp_path):
    repository = Path(__file__).resolve().parents[2] / "examples"
    assert sorted(path.name for path in EXAMPLES.glob("*.yaml")) == sorted(
        path.name for path in repository.glob("*.yaml")
    )


@pytest.mark.parametrize(
    "given", ["examples/aipo_arithmetic.yaml", "aipo_arithmetic.yaml", "aipo_arithmetic"]
)
def test_an_example_named_from_another_directory_is_the_installed_one(monkeypatch, tmp_path, given):
    monkeypatch.chdir(tmp_path)
    assert config_path(Path(given)) == EXAMPLES / "aipo_arithmetic.yaml"


def test_a_file_of_the_users_wins_over_an_installed_example(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    mine = tmp_path / "examples" / "aipo_arithmetic.yaml"
    mine.write_text("steps: 1\n")
    assert config_path(Path("examples/aipo_arithmetic.yaml")) == Path("examples/aipo_arithmetic.yaml")
    # a path elsewhere never falls back: the user meant that file
    assert config_path(Path("configs/aipo_arithmetic.yaml")) == Path("configs/aipo_arithmetic.yaml")


def test_a_missing_config_is_one_line_naming_the_installed_examples(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="aipo_arithmetic"):
        existing_config(Path("examples/nope.yaml"))
    result = CliRunner().invoke(app, ["train", "examples/nope.yaml"])
    assert result.exit_code == 2, result.output
    assert "nope.yaml does not exist" in result.output and "Traceback" not in result.output
