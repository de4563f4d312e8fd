"""Registry model names: resolved offline, checked, and a clear line when one is not prepared."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aipo.cli import app
from aipo_env import pretrained


@pytest.fixture()
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIPO_MODELS_DIR", str(tmp_path))
    return tmp_path


def test_an_unprepared_name_says_the_command_that_prepares_it(empty_cache: Path) -> None:
    with pytest.raises(pretrained.ModelSourceError, match="run `aipo models pull smollm2-135m-instruct`"):
        pretrained.resolve("smollm2-135m-instruct")
    result = CliRunner().invoke(app, ["models", "path", "gemma3-270m"])
    assert result.exit_code == 2 and "aipo models pull gemma3-270m" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_other_sources_pass_through_untouched(empty_cache: Path) -> None:
    for source in ("tiny", "Qwen/Qwen2.5-0.5B-Instruct", "runs/x/final", "missing.gguf"):
        assert pretrained.resolve(source) == source


def test_a_prepared_directory_is_checked_against_its_checksums(empty_cache: Path) -> None:
    directory = pretrained.model_dir("smollm2-135m-instruct")
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    (directory / "model.safetensors").write_bytes(b"weights")
    pretrained.write_checksums(directory)
    assert pretrained.resolve("smollm2-135m-instruct") == str(directory)
    (directory / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(pretrained.ModelSourceError, match=r"damaged \(model.safetensors changed\)"):
        pretrained.resolve("smollm2-135m-instruct")


def test_pull_refuses_unknown_names(empty_cache: Path) -> None:
    with pytest.raises(pretrained.ModelSourceError, match="known: smollm2-135m-instruct, gemma3-270m"):
        pretrained.pull("llama-70b")


def test_models_list_names_both_models_and_their_licences(empty_cache: Path) -> None:
    output = CliRunner().invoke(app, ["models", "list"]).output
    assert "smollm2-135m-instruct" in output and "Apache-2.0" in output
    assert "gemma3-270m" in output and "Gemma Terms of Use" in output
    assert str(empty_cache) in output
