"""Agents served by any OpenAI-compatible chat-completions server, through the ``openai`` client.

One backend covers ``vllm serve``, SGLang, ``transformers serve`` and hosted APIs. Each agent
owns a pool of ``max_concurrency`` worker threads: :meth:`~ModelAgent.reply_batch` sends all its
requests at once, and callers in many threads (envs stepped in a thread pool) share the same
bound, so a vector env's consults run side by side instead of one after another.

The API key is read from the environment variable named in ``api_key_env`` when the agent is
built; it is sent in the request header and nowhere else: error texts are scrubbed of it, and
the reply cache key never contains it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aipo_env.agents.cache import ReplyCache
from aipo_env.agents.config import AgentConfig, OpenAIBackend
from aipo_env.agents.model_agent import Completion, ModelAgent, ReplyError
from aipo_env.agents.prompts import Messages
from aipo_env.agents.token_pieces import utf8_pieces

_NO_KEY = "not-needed"  # the client insists on a key; local servers ignore it


def backoff_delay(attempt: int, base_s: float, cap_s: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), with "full jitter".

        delay = uniform(0, min(cap_s, base_s * 2 ** attempt))

    Jitter spreads the retries of many envs that failed together, so that they do not hit a
    recovering server all at the same moment.
    """
    return random.uniform(0.0, min(cap_s, base_s * 2**attempt))


class OpenAIAgent(ModelAgent):
    """A role answered by an OpenAI-compatible server (``config.backend.kind == "openai"``).

    Args:
        name: the role.
        config: the role's config; ``config.backend`` must be an :class:`OpenAIBackend`.
        cache: the shared reply cache.

    Raises:
        ValueError: ``api_key_env`` names an environment variable that is not set.
    """

    backend_kind = "openai"

    def __init__(self, name: str, config: AgentConfig, cache: ReplyCache | None = None) -> None:
        if not isinstance(config.backend, OpenAIBackend):
            raise TypeError(f"OpenAIAgent needs an 'openai' backend, got {config.backend.kind!r}")
        super().__init__(name, config, cache)
        self.backend: OpenAIBackend = config.backend
        self._api_key = _NO_KEY
        if self.backend.api_key_env is not None:
            key = os.environ.get(self.backend.api_key_env)
            if not key:
                raise ValueError(
                    f"the {name} agent reads its API key from ${self.backend.api_key_env}, which is not "
                    "set: export it, or set api_key_env to null for a server that needs no key"
                )
            self._api_key = key
            self._secrets = (key,)
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._open_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.backend.model

    def __repr__(self) -> str:
        return (
            f"OpenAIAgent(name={self.name!r}, base_url={self.backend.base_url!r}, model={self.model_name!r})"
        )

    def _complete(self, prompts: Sequence[Messages]) -> list[Completion | BaseException]:
        pool = self._open()
        futures = [pool.submit(self._request, prompt) for prompt in prompts]
        results: list[Completion | BaseException] = []
        for future in futures:
            error = future.exception()
            results.append(error if error is not None else future.result())
        return results

    def _request(self, messages: Messages) -> Completion:
        """One chat completion, retried after transient failures (see :func:`backoff_delay`)."""
        import openai

        retryable = (
            openai.APIConnectionError,  # includes timeouts
            openai.RateLimitError,
            openai.InternalServerError,
        )
        for attempt in range(self.backend.max_retries + 1):
            try:
                response = self._client.chat.completions.create(**self._arguments(messages))
                return self._completion(response)
            except retryable:
                if attempt == self.backend.max_retries:
                    raise
                self._count(retries=1)
                time.sleep(backoff_delay(attempt, self.backend.backoff_s))
        raise AssertionError("unreachable")

    def _arguments(self, messages: Messages) -> dict[str, Any]:
        sampling = self.config.sampling
        arguments: dict[str, Any] = {
            "model": self.backend.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.seed is not None:
            arguments["seed"] = sampling.seed
        if sampling.stop:
            arguments["stop"] = list(sampling.stop)
        if self.backend.logprobs:
            arguments["logprobs"] = True
        if self.backend.extra_body:
            arguments["extra_body"] = dict(self.backend.extra_body)
        return arguments

    @staticmethod
    def _completion(response: Any) -> Completion:
        choices = getattr(response, "choices", None)
        if not choices:
            raise ReplyError("the server's answer has no choices")
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if not isinstance(text, str):
            raise ReplyError("the server's answer has no message text")
        logprobs = pieces = None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content:
            logprobs = tuple(float(token.logprob) for token in content)
            pieces = _token_pieces(content)
        return Completion(text, getattr(choice, "finish_reason", None), logprobs, pieces)

    def _open(self) -> ThreadPoolExecutor:
        # Opened lazily, and again after close(): one agent may serve several envs in turn.
        with self._open_lock:
            if self._pool is None:
                import openai

                self._client = openai.OpenAI(
                    base_url=self.backend.base_url,
                    api_key=self._api_key,
                    timeout=self.backend.timeout_s,
                    max_retries=0,  # retries are ours, so they are counted and their backoff is configured
                )
                self._pool = ThreadPoolExecutor(
                    max_workers=self.backend.max_concurrency, thread_name_prefix=f"aipo-{self.name}"
                )
            return self._pool

    def close(self) -> None:
        with self._open_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            if self._client is not None:
                self._client.close()
                self._client = None


def _token_pieces(content: Sequence[Any]) -> tuple[str, ...] | None:
    """Each token's piece of the text: from its ``bytes`` when the server sends them (exact for
    characters split over tokens), else its ``token`` string."""
    chunks = [getattr(token, "bytes", None) for token in content]
    if all(chunk is not None for chunk in chunks):
        pieces = utf8_pieces([bytes(chunk) for chunk in chunks])
        if pieces is not None:
            return tuple(pieces)
    texts = [getattr(token, "token", None) for token in content]
    return tuple(texts) if all(isinstance(text, str) for text in texts) else None
