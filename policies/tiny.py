"""The tiny model: a small Qwen2- or Llama-style causal LM and a byte-level tokenizer, built locally.

Nothing is downloaded. The tokenizer has one token per byte (so every text round-trips exactly
and no character is unknown) plus ``<pad>``, ``<bos>`` and ``<eos>``; ``tokenizer(text)`` puts
``<bos>`` in front. The default model has about 200k parameters: small enough to train on a CPU
in tests and demos, and an ordinary ``transformers`` model in every other respect::

    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, seed=0)
    save_tiny("runs/tiny", seed=0)                       # save_pretrained of both
    model = AutoModelForCausalLM.from_pretrained("runs/tiny")
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from aipo_env.extras import needs_extra

with needs_extra("train", "policies.tiny"):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedModel,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

SPECIAL_TOKENS: tuple[str, str, str] = ("<pad>", "<bos>", "<eos>")
_ARCHITECTURES = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: ids 0-2 are ``<pad>``, ``<bos>``, ``<eos>``, then one id per byte."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    # BPE without merges over the byte alphabet is exactly a byte tokenizer.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    architecture: Literal["qwen2", "llama"] = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 192,
    max_positions: int = 4096,
    seed: int = 0,
) -> PreTrainedModel:
    """A freshly initialised small causal LM whose vocabulary matches ``tokenizer``.

    Args:
        tokenizer: the tokenizer the model will read (its size and special ids are used).
        architecture: ``"qwen2"`` or ``"llama"``.
        hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size: the model's shape;
            ``hidden_size`` must be divisible by ``num_heads`` and ``num_heads`` by ``num_kv_heads``.
        max_positions: the longest sequence (prompt and every turn) the model can read.
        seed: initialisation seed; the global torch random state is left untouched.
    """
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(_ARCHITECTURES)}, got {architecture!r}")
    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError(
            f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}) and num_heads "
            f"by num_kv_heads ({num_kv_heads})"
        )
    config_class, model_class = _ARCHITECTURES[architecture]
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    return model


def save_tiny(path: str | Path, **model_options: object) -> Path:
    """Build the tokenizer and a tiny model and ``save_pretrained`` both into ``path``.

    Args:
        path: the directory to write (created if needed).
        **model_options: keyword arguments of :func:`build_tiny_model`.

    Returns:
        The directory, loadable with ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained``.
    """
    path = Path(path)
    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, **model_options)  # type: ignore[arg-type]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
