"""Agents backed by a ``transformers`` causal LM in this process, generating pending consults in batches.

One worker thread owns the model. Consults wait in a queue; the worker takes up to
``batch_size`` of them (the first one waits ``batch_wait_s`` for others to arrive) and generates
them in one left-padded ``generate`` call. So both :meth:`~ModelAgent.reply_batch` and many
threads calling :meth:`~ModelAgent.reply` at once are served in batches.

``torch`` and ``transformers`` are imported only when the first consult arrives, in the worker:
building the agent (and importing :mod:`aipo_env`) stays cheap.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from aipo_env import pretrained
from aipo_env.agents.cache import ReplyCache
from aipo_env.agents.config import AgentConfig, TransformersBackend
from aipo_env.agents.model_agent import Completion, ModelAgent
from aipo_env.agents.prompts import Messages
from aipo_env.agents.token_pieces import decode_pieces
from aipo_env.extras import require_extra

_STOP = object()


class TransformersAgent(ModelAgent):
    """A role answered by a local ``transformers`` model (``config.backend.kind == "transformers"``).

    Args:
        name: the role.
        config: the role's config; ``config.backend`` must be a :class:`TransformersBackend`.
        cache: the shared reply cache.

    Raises:
        MissingExtraError: torch or transformers is not installed (the message says what to do).
    """

    backend_kind = "transformers"

    def __init__(self, name: str, config: AgentConfig, cache: ReplyCache | None = None) -> None:
        if not isinstance(config.backend, TransformersBackend):
            raise TypeError(f"TransformersAgent needs a 'transformers' backend, got {config.backend.kind!r}")
        require_extra("train", "an agent with backend kind 'transformers'")
        super().__init__(name, config, cache)
        self.backend: TransformersBackend = config.backend
        # a registry model's name or a .gguf file becomes its checked directory now: an unprepared
        # name fails here, in one line, not at the first consult
        self._source = pretrained.resolve(config.backend.model)
        self.batches = 0  # generate() calls so far; with stats.requests it shows how well batching works
        self._queue: queue.Queue[Any] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def model_name(self) -> str:
        return self.backend.model

    def __repr__(self) -> str:
        return f"TransformersAgent(name={self.name!r}, model={self.model_name!r})"

    def _complete(self, prompts: Sequence[Messages]) -> list[Completion | BaseException]:
        self._start()
        futures: list[Future[Completion]] = []
        for prompt in prompts:
            future: Future[Completion] = Future()
            self._queue.put((prompt, future))
            futures.append(future)
        deadline = time.monotonic() + self.backend.timeout_s
        results: list[Completion | BaseException] = []
        for future in futures:
            try:
                results.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                future.cancel()
                results.append(TimeoutError(f"no reply within {self.backend.timeout_s:g} s"))
            except Exception as error:
                results.append(error)
        return results

    def _start(self) -> None:
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name=f"aipo-{self.name}", daemon=True)
                self._worker.start()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.backend.batch_wait_s
            while len(batch) < self.backend.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)  # finish this batch, then stop
                    break
                batch.append(item)
            live = [(prompt, future) for prompt, future in batch if future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                completions = self._generate([prompt for prompt, _ in live])
                for (_, future), completion in zip(live, completions, strict=True):
                    future.set_result(completion)
            except Exception as error:  # loading or generation failed: every consult of the batch fails
                for _, future in live:
                    future.set_exception(error)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self._source)
        tokenizer.padding_side = "left"  # generated tokens must follow every prompt directly
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = "auto" if self.backend.dtype == "auto" else getattr(torch, self.backend.dtype)
        model = AutoModelForCausalLM.from_pretrained(self._source, dtype=dtype)
        self._model = model.to(self.backend.device).eval()
        self._tokenizer = tokenizer

    def _generate(self, prompts: list[Messages]) -> list[Completion]:
        """One left-padded ``generate`` call for the whole batch."""
        import torch

        if self._model is None:
            self._load()
        tokenizer, model, sampling = self._tokenizer, self._model, self.config.sampling
        texts = [_chat_text(tokenizer, prompt) for prompt in prompts]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(model.device)
        options: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if sampling.greedy:
            options["do_sample"] = False
        else:
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        if sampling.stop:
            options.update(stop_strings=list(sampling.stop), tokenizer=tokenizer)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            output = model.generate(
                **inputs, **options, return_dict_in_generate=True, output_scores=self.backend.logprobs
            )
        self.batches += 1
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
        logprobs = None
        if self.backend.logprobs:
            logprobs = model.compute_transition_scores(output.sequences, output.scores, normalize_logits=True)
        return [
            self._completion(new_tokens[row], None if logprobs is None else logprobs[row])
            for row in range(len(prompts))
        ]

    def _completion(self, tokens: Any, logprobs: Any) -> Completion:
        tokenizer = self._tokenizer
        ids = tokens.tolist()
        stops = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
        length = next((i for i, token in enumerate(ids) if token in stops), len(ids))
        finish = "stop" if length < len(ids) else "length"
        text = tokenizer.decode(ids[:length], skip_special_tokens=True)
        if logprobs is None:
            return Completion(text, finish)
        values = tuple(float(value) for value in logprobs[:length])
        pieces = decode_pieces(lambda part: tokenizer.decode(part, skip_special_tokens=True), ids[:length])
        return Completion(text, finish, values, None if pieces is None else tuple(pieces))

    def close(self) -> None:
        with self._start_lock:
            if self._worker is not None and self._worker.is_alive():
                self._queue.put(_STOP)
                self._worker.join(timeout=60)
            self._worker = None
            self._model = self._tokenizer = None


def _chat_text(tokenizer: Any, messages: Messages) -> str:
    """The prompt text: the tokenizer's chat template, or a plain transcript if it has none."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    lines = [f"{message['role'].capitalize()}: {message['content']}" for message in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"
