"""Model FLOPs of a decoder-only transformer, and GPU peaks, for model FLOPs utilisation (MFU).

Training one token of a sequence of length ``T`` costs (PaLM, Chowdhery et al. 2022, appendix B)::

    6 N + 12 L d_attn T      FLOPs (forward 1/3, backward 2/3)

where ``N`` is the parameters of the matrix multiplications (every projection and the LM head;
the input embedding is a lookup, not a matmul), ``L`` the layers, ``d_attn`` the query heads
times the head size, and ``T`` here the batch's mean sequence length. MFU is ``FLOPs of the work / seconds / peak``: the work is fixed by the
batch (every token of every episode), whatever an implementation skips or recomputes.
"""

from __future__ import annotations

from typing import Any

# Dense bf16 tensor-core peaks in TFLOP/s, from NVIDIA's data sheets (without sparsity), most
# specific name first: an H100 SXM calls itself "NVIDIA H100 80GB HBM3".
BF16_PEAK_TFLOPS = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("A100", 312.0),
)


def matmul_parameters(config: Any) -> int:
    """``N``: weights of every projection and of the LM head (biases included), for a Qwen2/Llama config."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    queries, keys = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    bias = getattr(config, "attention_bias", config.model_type == "qwen2")
    attention = hidden * (queries + 2 * keys) + queries * hidden + (queries + 2 * keys) * bias
    mlp = 3 * hidden * config.intermediate_size + (2 * config.intermediate_size + hidden) * getattr(
        config, "mlp_bias", False
    )
    return layers * (attention + mlp) + hidden * config.vocab_size


def training_flops(config: Any, tokens: float, mean_length: float) -> float:
    """FLOPs of a forward and backward pass over ``tokens`` tokens in sequences of ``mean_length``."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention_width = config.num_hidden_layers * config.num_attention_heads * head_dim
    return tokens * (6.0 * matmul_parameters(config) + 12.0 * attention_width * mean_length)


def bf16_peak_tflops(device_name: str) -> float | None:
    """The data-sheet peak of a device named like ``torch.cuda.get_device_name()``; ``None`` if unknown."""
    for name, peak in BF16_PEAK_TFLOPS:
        if all(part in device_name for part in name.split()):
            return peak
    return None
