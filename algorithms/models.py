"""Building the trainable policy from a :class:`~algorithms.config.ModelConfig`.

Handles the device, the weights' dtype, gradient checkpointing and LoRA adapters (peft), so the
trainer and the evaluator see one :class:`~policies.HFPolicy` whatever the options.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import torch

from algorithms.config import ConfigError, ModelConfig
from policies import shipped
from policies.hf import TINY, HFPolicy

# A hub id: "name" or "org/name" of letters, digits, "-", "_" and "."; never a path like "./x" or "a/b/c".
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")

_DTYPES: dict[str, Any] = {
    "auto": "auto",
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA device is available; use device=cpu or auto")
    return torch.device(device)


def load_policy(
    config: ModelConfig,
    device: torch.device,
    *,
    name_or_path: str | Path | None = None,
    trainable: bool = True,
    **settings: Any,
) -> HFPolicy:
    """An :class:`HFPolicy` as ``config`` describes it.

    Args:
        config: the model section of a train or eval config.
        device: where the model runs.
        name_or_path: load from here instead of ``config.name_or_path`` (a checkpoint on resume).
        trainable: apply the training options (gradient checkpointing, LoRA).
        **settings: generation settings of :class:`HFPolicy` (``max_new_tokens``, ``temperature``, ...).
    """
    source = str(name_or_path or config.name_or_path)
    key = "model.name_or_path" if name_or_path is None else "the checkpoint's model"
    try:
        source = shipped.resolve(source)
    except shipped.ShippedModelError as error:
        raise ConfigError(f"{key}: {error}") from error
    problem = missing_model(source, key)
    if problem is not None:
        raise ConfigError(problem)
    tiny_options = config.tiny.model_dump() if source == TINY else None
    if source != TINY and (Path(source) / "adapter_config.json").is_file():
        policy = _load_adapter(source, config, device, **settings)
    else:
        try:
            policy = HFPolicy.from_pretrained(
                source,
                dtype=_DTYPES[config.dtype],
                device=device,
                tiny_options=tiny_options,
                chat_template=config.chat_template,
                **settings,
            )
        except OSError as error:  # transformers: not a model directory, or not on the hub
            reason = str(error).strip().splitlines()[0]
            raise ConfigError(
                f"{key}={source!r} cannot be loaded ({reason}); pass a save_pretrained directory "
                "(e.g. runs/NAME/final), a .gguf file, a registry model (aipo models list), a hub id (org/name) "
                "or tiny"
            ) from error
        if trainable and config.lora is not None:
            policy.model = _with_lora(policy.model, config)
        elif trainable and config.train_layers is not None:
            train_top_layers(policy.model, config.train_layers)
    if trainable and config.gradient_checkpointing:
        enable_checkpointing(policy.model)
    return policy


def missing_model(source: str, key: str = "model.name_or_path") -> str | None:
    """Why ``source`` names no model (``key`` is the option that holds it); None when it may name one.

    ``tiny``, an existing directory and anything shaped like a hub id (``name`` or ``org/name``)
    may name a model; any other path is a directory that does not exist. Without this check
    transformers reads such a path as a malformed hub id and says so.
    """
    path = Path(source).expanduser()
    if source == TINY or path.is_dir():
        return None
    if path.exists():
        return (
            f"{key}={source!r} is a file; pass the save_pretrained directory that holds config.json "
            "or a .gguf file"
        )
    if _HUB_ID.fullmatch(source):
        return None
    return (
        f"{key}={source!r}: the directory {path.resolve()} does not exist; pass a save_pretrained "
        "directory (e.g. runs/NAME/final), a .gguf file, a registry model (aipo models list), a hub id "
        "(org/name) or tiny"
    )


def enable_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass instead of storing them (saves memory)."""
    # transformers 5 renamed the method; older versions only have the first name.
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def decoder_layers(model: Any) -> Any:
    """The model's list of transformer blocks (``model.model.layers`` in Llama, Qwen2, Gemma-3)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(getattr(base, "model", None), "layers", None)
    if layers is None:
        raise ConfigError(
            f"model.train_layers: cannot find the transformer blocks of {type(base).__name__} "
            "(expected model.layers); train all weights or use model.lora"
        )
    return layers


def top_blocks(model: Any, count: int) -> list[int]:
    """The indices of the model's top ``count`` transformer blocks (``model.train_layers``)."""
    total = len(decoder_layers(model))
    if count > total:
        raise ConfigError(f"model.train_layers={count} but the model has {total} blocks")
    return list(range(total - count, total))


def train_top_layers(model: Any, count: int) -> None:
    """Freeze every weight but the top ``count`` blocks and the final norm (and an untied LM head).

    With tied embeddings the LM head is the embedding matrix, which stays frozen.
    """
    layers = decoder_layers(model)
    model.requires_grad_(False)
    for index in top_blocks(model, count):
        layers[index].requires_grad_(True)
    norm = getattr(model.model, "norm", None)
    if norm is not None:
        norm.requires_grad_(True)
    head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    if head is not None and head.weight is not embeddings.weight:
        head.requires_grad_(True)


def _with_lora(model: Any, config: ModelConfig) -> Any:
    try:
        import peft
    except ImportError as error:
        raise ImportError("model.lora needs peft: pip install peft") from error
    assert config.lora is not None
    lora = peft.LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        task_type="CAUSAL_LM",
        **_lora_targets(model, config),
    )
    return peft.get_peft_model(model, lora)


def _lora_targets(model: Any, config: ModelConfig) -> dict[str, Any]:
    """peft's ``target_modules`` (and ``layers_to_transform``): all blocks, or the top ``train_layers``.

    peft refuses ``layers_to_transform`` with ``"all-linear"``, so for the top blocks that case
    names their linear layers one by one.
    """
    assert config.lora is not None
    targets, count = config.lora.target_modules, config.train_layers
    if count is None:
        return {"target_modules": targets}
    top = top_blocks(model, count)
    if targets != "all-linear":
        return {"target_modules": targets, "layers_to_transform": top}
    prefixes = tuple(f"model.layers.{index}." for index in top)
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith(prefixes)
    ]
    return {"target_modules": names}


def _load_adapter(source: str, config: ModelConfig, device: torch.device, **settings: Any) -> HFPolicy:
    """A directory that holds LoRA adapters: the base model, adapters on top.

    The base is ``config.name_or_path`` when ``source`` is another directory (a checkpoint of
    this run), else the base recorded in the adapters' ``adapter_config.json``.
    """
    try:
        import peft
    except ImportError as error:
        raise ImportError(
            f"{source} holds LoRA adapters; loading them needs peft: pip install peft"
        ) from error
    base_name = config.name_or_path
    if Path(base_name).resolve() == Path(source).resolve():
        recorded = json.loads((Path(source) / "adapter_config.json").read_text())
        base_name = recorded.get("base_model_name_or_path") or ""
        if not base_name:
            raise ValueError(
                f"{source} holds LoRA adapters without a recorded base model; load a merged model"
            )
    base_config = config.model_copy(update={"name_or_path": base_name, "lora": None})
    base = load_policy(base_config, device, trainable=False, **settings)
    model = peft.PeftModel.from_pretrained(base.model, source, is_trainable=True)
    return HFPolicy(model, base.tokenizer, chat_template=config.chat_template, **settings)


def save_merged(policy: HFPolicy, path: str | Path) -> None:
    """Save a plain model: LoRA adapters are merged into a copy of the weights first."""
    if not hasattr(policy.model, "merge_and_unload"):
        policy.save_pretrained(path)
        return
    merged = copy.deepcopy(policy.model).merge_and_unload()
    merged.save_pretrained(path)
    policy.tokenizer.save_pretrained(path)


def merged_state(policy: HFPolicy) -> dict[str, torch.Tensor]:
    """The policy's plain state dict, tied weights named twice: LoRA adapters merged into a copy."""
    if not hasattr(policy.model, "merge_and_unload"):
        return policy.model.state_dict()
    return copy.deepcopy(policy.model).merge_and_unload().state_dict()


def load_weights(model: Any, path: str | Path) -> None:
    """Replace ``model``'s weights with those saved in ``path`` (same architecture).

    Raises:
        ValueError: for LoRA-wrapped models, whose adapters are loaded with :func:`load_policy`.
    """
    if hasattr(model, "peft_config"):
        raise ValueError("to resume a LoRA run, let the trainer load the policy (do not pass one)")
    saved = type(model).from_pretrained(path, dtype=next(model.parameters()).dtype)
    model.load_state_dict(saved.state_dict())
