"""Agents backed by a vLLM engine in this process (the optional ``vllm`` extra).

vLLM batches internally, so :meth:`~ModelAgent.reply_batch` hands it all prompts in one
``LLM.chat`` call. Without the extra, building such an agent fails at once with a message that
says how to install it or to use ``vllm serve`` with the ``openai`` backend instead.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from typing import Any

from aipo_env import pretrained
from aipo_env.agents.cache import ReplyCache
from aipo_env.agents.config import AgentConfig, VLLMBackend
from aipo_env.agents.model_agent import Completion, ModelAgent
from aipo_env.agents.prompts import Messages

MISSING_VLLM = (
    "the 'vllm' backend needs the vllm package, which is not installed: pip install 'aipo[vllm]' "
    "(GPU machines), or run `vllm serve MODEL` and use the 'openai' backend with its URL"
)


def vllm_available() -> bool:
    """Whether ``vllm`` can be imported here."""
    return importlib.util.find_spec("vllm") is not None


class VLLMAgent(ModelAgent):
    """A role answered by an in-process vLLM engine (``config.backend.kind == "vllm"``).

    Args:
        name: the role.
        config: the role's config; ``config.backend`` must be a :class:`VLLMBackend`.
        cache: the shared reply cache.

    Raises:
        ImportError: vllm is not installed (the message says what to do).
    """

    backend_kind = "vllm"

    def __init__(self, name: str, config: AgentConfig, cache: ReplyCache | None = None) -> None:
        if not isinstance(config.backend, VLLMBackend):
            raise TypeError(f"VLLMAgent needs a 'vllm' backend, got {config.backend.kind!r}")
        if not vllm_available():
            raise ImportError(MISSING_VLLM)
        super().__init__(name, config, cache)
        self.backend: VLLMBackend = config.backend
        self._engine: Any = None
        self._lock = threading.Lock()  # one generate call at a time; vLLM batches within it

    @property
    def model_name(self) -> str:
        return self.backend.model

    def _complete(self, prompts: Sequence[Messages]) -> list[Completion | BaseException]:
        from vllm import LLM, SamplingParams

        with self._lock:
            if self._engine is None:
                self._engine = LLM(
                    model=pretrained.resolve(self.backend.model),
                    tensor_parallel_size=self.backend.tensor_parallel_size,
                    gpu_memory_utilization=self.backend.gpu_memory_utilization,
                    max_model_len=self.backend.max_model_len,
                )
            sampling = self.config.sampling
            params = SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=sampling.seed,
                stop=list(sampling.stop) or None,
                logprobs=1 if self.backend.logprobs else None,
            )
            outputs = self._engine.chat(list(prompts), params, use_tqdm=False)
        return [_completion(output.outputs[0]) for output in outputs]

    def close(self) -> None:
        with self._lock:
            self._engine = None


def _completion(output: Any) -> Completion:
    if not output.logprobs:
        return Completion(output.text, output.finish_reason)
    # Each position maps token id -> Logprob; the sampled token is always among them.
    sampled = [position[token] for token, position in zip(output.token_ids, output.logprobs, strict=False)]
    logprobs = tuple(float(entry.logprob) for entry in sampled)
    pieces = [getattr(entry, "decoded_token", None) for entry in sampled]
    texts = tuple(pieces) if all(isinstance(piece, str) for piece in pieces) else None
    return Completion(output.text, output.finish_reason, logprobs, texts)
