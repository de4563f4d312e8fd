"""Things that act in the env: Hugging Face causal LMs, OpenAI-compatible APIs, scripted baselines, the tiny model.

``policies`` depends on ``aipo_env`` only; learners live in ``algorithms``. The model-backed
names are imported on first use, so the scripted baselines work without loading torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from policies.base import Action, Policy, TokenPolicy
from policies.scripted import ConsultFirst, NeverConsult, RandomPolicy, last_number_answer

_LAZY = {
    "HFPolicy": "policies.hf",
    "OpenAIPolicy": "policies.api",
    "build_tiny_model": "policies.tiny",
    "build_tokenizer": "policies.tiny",
    "save_tiny": "policies.tiny",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'policies' has no attribute {name!r}")


__all__ = [
    "Action",
    "ConsultFirst",
    "HFPolicy",
    "NeverConsult",
    "OpenAIPolicy",
    "Policy",
    "RandomPolicy",
    "TokenPolicy",
    "build_tiny_model",
    "build_tokenizer",
    "last_number_answer",
    "save_tiny",
]
