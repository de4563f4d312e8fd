"""One decoding step of a Qwen2, Qwen3 or Llama model without the transformers forward's set-up.

A ``transformers`` forward of one new token runs the same arithmetic as a prefill but also pays,
every call, for its decorators, keyword plumbing, output capturing, mask construction and about
60 module calls. On a small model on CPU that set-up costs more than the arithmetic. The
sampling loop (:mod:`policies.hf`) calls this step instead for the models it knows: the same
tensors go through the same operations in the same order (the model's own rotary embedding and
attention function, the RMSNorm formula below), so the logits are bit for bit those of
``model(input_ids=token, position_ids=position, cache=cache)``. Tests compare them for each
architecture, with and without padding, in float32 and bfloat16.

Per layer ``l`` (pre-norm decoder, ``RMSNorm(x) = w * x / sqrt(mean(x^2) + eps)``)::

    q, k, v = W_q x', W_k x', W_v x'        x' = RMSNorm_l(h)   (Qwen3: RMSNorm on q and k too)
    q, k = RoPE(q, pos), RoPE(k, pos);  K, V = cache_l + (k, v)
    h = h + W_o attention(q, K, V)
    h = h + W_down (silu(W_gate x'') * W_up x'')    x'' = RMSNorm'_l(h)
    logits = W_head RMSNorm_final(h)

:func:`decode_step` returns ``None`` (use the ordinary forward) for anything else: other
architectures, sliding-window layers, attention other than SDPA, modules with hooks (FSDP,
accelerate offloading), adapters or quantised layers (anything but a plain ``nn.Linear``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache

try:  # transformers >= 4.48: attention functions are looked up by name
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
except ImportError:  # pragma: no cover - older transformers use their own forward
    ALL_ATTENTION_FUNCTIONS = None

ARCHITECTURES = ("Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM")

Step = Callable[[torch.Tensor, torch.Tensor, Cache, "torch.Tensor | None"], torch.Tensor]


def decode_step(model: nn.Module) -> Step | None:
    """The one-token step for ``model``, or ``None`` when it must use its own forward.

    The step is ``step(token [B, 1], position [B, 1], cache, attention_mask [B, L] | None)`` and
    returns logits ``[B, 1, vocab]``; ``attention_mask`` covers the cached tokens and the new one
    (1 = attend), ``None`` when no row is padded. Decide once per generation call: the check
    reads the model's structure, which training does not change.
    """
    return _LayerwiseStep(model) if unsupported_reason(model) is None else None


def unsupported_reason(model: nn.Module) -> str | None:
    """Why :func:`decode_step` would refuse ``model`` (``None``: it would not)."""
    if type(model).__name__ not in ARCHITECTURES:
        return f"{type(model).__name__} is not one of {', '.join(ARCHITECTURES)}"
    if ALL_ATTENTION_FUNCTIONS is None:
        return "this transformers version has no attention-function registry (needs >= 4.48)"
    missing = _missing_parts(model)
    if missing:
        return f"this transformers version lays the model out differently (no {missing})"
    config = model.config
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return f"attention implementation {config._attn_implementation!r} (only 'sdpa' is supported)"
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or ()):
        return "sliding-window layers"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    for name, module in model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return f"module {name or 'model'} has forward hooks"
    layers = range(len(model.model.layers))
    for name in ["lm_head", *(name for index in layers for name in _layer_linears(index))]:
        module = model.get_submodule(name)
        if type(module) is not nn.Linear:  # LoRA, quantised layers: their forward is not F.linear
            return f"module {name} is a {type(module).__name__}, not a plain nn.Linear"
    if type(model.model.embed_tokens) is not nn.Embedding:
        return f"the embedding is a {type(model.model.embed_tokens).__name__}, not a plain nn.Embedding"
    return None


def _missing_parts(model: nn.Module) -> str | None:
    """The first module or attribute the step reads that ``model`` lacks (``None``: it has them all)."""
    wanted = [
        "model.embed_tokens.weight",
        "model.rotary_emb",
        "model.norm.variance_epsilon",
        "lm_head.weight",
    ]
    for index in range(len(getattr(getattr(model, "model", None), "layers", ()))):
        layer = f"model.layers.{index}"
        wanted += [f"{layer}.self_attn.head_dim", f"{layer}.self_attn.scaling"]
        wanted += [
            f"{layer}.input_layernorm.variance_epsilon",
            f"{layer}.post_attention_layernorm.variance_epsilon",
        ]
        wanted += [f"{name}.weight" for name in _layer_linears(index)]
    for path in wanted:
        owner = model
        for part in path.split("."):
            if not hasattr(owner, part):
                return path
            owner = getattr(owner, part)
    return None


def _layer_linears(index: int) -> list[str]:
    """The projections of layer ``index`` whose weights the step reads directly."""
    layer = f"model.layers.{index}"
    return [f"{layer}.self_attn.{part}_proj" for part in "qkvo"] + [
        f"{layer}.mlp.{part}_proj" for part in ("gate", "up", "down")
    ]


def rms_norm(hidden: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """``w * x / sqrt(mean(x^2) + eps)`` in float32, cast back before the weight (as transformers does)."""
    dtype = hidden.dtype
    hidden = hidden.to(torch.float32)
    variance = hidden.pow(2).mean(-1, keepdim=True)
    return norm.weight * (hidden * torch.rsqrt(variance + norm.variance_epsilon)).to(dtype)


def _mlp(mlp: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """``W_down (silu(W_gate x) * W_up x)``."""
    gate = F.silu(F.linear(hidden, mlp.gate_proj.weight, mlp.gate_proj.bias))
    return F.linear(
        gate * F.linear(hidden, mlp.up_proj.weight, mlp.up_proj.bias),
        mlp.down_proj.weight,
        mlp.down_proj.bias,
    )


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _LayerwiseStep:
    """The step of the module docstring, reading the model's weights as they are at each call."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.body = model, model.model
        self.attention: Callable[..., tuple[torch.Tensor, Any]] = ALL_ATTENTION_FUNCTIONS["sdpa"]  # type: ignore[index]

    def __call__(
        self, token: torch.Tensor, position: torch.Tensor, cache: Cache, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        body = self.body
        hidden = F.embedding(token, body.embed_tokens.weight)
        cos, sin = body.rotary_emb(hidden, position)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        # Like transformers, attend without a mask when no row is padded (another SDPA kernel).
        padded = attention_mask is not None and not bool(attention_mask.all())
        mask = attention_mask.bool()[:, None, None, :] if padded else None
        for index, layer in enumerate(body.layers):
            normed = rms_norm(hidden, layer.input_layernorm)
            hidden = hidden + self._attend(layer.self_attn, normed, cos, sin, cache, index, mask)
            hidden = hidden + _mlp(layer.mlp, rms_norm(hidden, layer.post_attention_layernorm))
        return F.linear(rms_norm(hidden, body.norm), self.model.lm_head.weight, self.model.lm_head.bias)

    def _attend(
        self,
        attention: nn.Module,
        hidden: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: Cache,
        index: int,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        shape = (hidden.shape[0], 1, -1, attention.head_dim)
        query = F.linear(hidden, attention.q_proj.weight, attention.q_proj.bias).view(shape)
        key = F.linear(hidden, attention.k_proj.weight, attention.k_proj.bias).view(shape)
        value = F.linear(hidden, attention.v_proj.weight, attention.v_proj.bias).view(shape).transpose(1, 2)
        if hasattr(attention, "q_norm"):  # Qwen3 normalises each head's query and key
            query, key = rms_norm(query, attention.q_norm), rms_norm(key, attention.k_norm)
        query, key = query.transpose(1, 2), key.transpose(1, 2)
        query = query * cos + _rotate_half(query) * sin
        key = key * cos + _rotate_half(key) * sin
        key, value = cache.update(key, value, index)
        output, _ = self.attention(attention, query, key, value, mask, dropout=0.0, scaling=attention.scaling)
        output = output.reshape(hidden.shape[0], 1, -1)
        return F.linear(output, attention.o_proj.weight, attention.o_proj.bias)
