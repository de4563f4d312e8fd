"""The FLOPs count behind the GPU benchmark's MFU: N is exactly the model's matmul weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from policies.tiny import build_tiny_model, build_tokenizer

SPEC = importlib.util.spec_from_file_location(
    "model_flops", Path(__file__).parents[2] / "benchmarks" / "model_flops.py"
)
assert SPEC is not None and SPEC.loader is not None
model_flops = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(model_flops)


def linear_weights(model: torch.nn.Module) -> int:
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    return sum(sum(parameter.numel() for parameter in module.parameters()) for module in linears)


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
def test_matmul_parameters_are_the_models_linear_weights(architecture: str) -> None:
    model = build_tiny_model(build_tokenizer(), architecture=architecture)  # qwen2: q/k/v biases
    assert model_flops.matmul_parameters(model.config) == linear_weights(model)


def test_matmul_parameters_with_a_head_dim_of_its_own() -> None:
    config = Qwen3Config(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=24,
    )  # fmt: skip
    assert model_flops.matmul_parameters(config) == linear_weights(Qwen3ForCausalLM(config))


def test_training_flops_follow_the_palm_formula() -> None:
    config = build_tiny_model(build_tokenizer()).config
    n = model_flops.matmul_parameters(config)
    width = config.num_hidden_layers * config.hidden_size
    assert model_flops.training_flops(config, 1000, 100) == pytest.approx(1000 * (6 * n + 12 * width * 100))


def test_peaks_of_the_gpus_torch_names() -> None:
    assert model_flops.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4  # SXM
    assert model_flops.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert model_flops.bf16_peak_tflops("NVIDIA H200") == 989.4
    assert model_flops.bf16_peak_tflops("NVIDIA GeForce RTX 3090") is None
