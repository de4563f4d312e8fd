"""Agents served by any OpenAI-compatible chat-completions server, through the ``openai`` client.

One backend covers ``vllm serve``, SGLang, ``transformers serve`` and hosted APIs. Each agent
owns one thread running an event loop with the ``openai`` async client: :meth:`~ModelAgent.reply_batch`
sends all its requests at once, at most ``max_concurrency`` in flight, and callers in many
threads (envs stepped in a thread pool, or sharing one agent) share the same bound, so a vector
env's consults run side by side instead of one after another.

``timeout_s`` is a deadline for each attempt as a whole: the attempt is cancelled when it runs
out, however the server trickles its bytes (httpx's own timeout applies to each read, so a
server that sends one byte a second would never trip it). A timed-out attempt is retried like a
connection error, each retry with a fresh deadline: one consult takes at most
``(max_retries + 1) * timeout_s`` plus the backoff delays.

The API key is read from the environment variable named in ``api_key_env`` when the agent is
built; it is sent in the request header and nowhere else: error texts are scrubbed of it, and
the reply cache key never contains it.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from aipo_env.agents.cache import ReplyCache
from aipo_env.agents.config import AgentConfig, OpenAIBackend
from aipo_env.agents.model_agent import Completion, ModelAgent, ReplyError, RequestTimeout
from aipo_env.agents.prompts import Messages
from aipo_env.agents.token_pieces import utf8_pieces

_NO_KEY = "not-needed"  # the client insists on a key; local servers ignore it
_T = TypeVar("_T")


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
        self._loop: _LoopThread | None = None
        self._open_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.backend.model

    def __repr__(self) -> str:
        return (
            f"OpenAIAgent(name={self.name!r}, base_url={self.backend.base_url!r}, model={self.model_name!r})"
        )

    def _complete(self, prompts: Sequence[Messages]) -> list[Completion | BaseException]:
        loop = self._open()
        futures = [loop.submit(self._request(prompt)) for prompt in prompts]
        results: list[Completion | BaseException] = []
        for future in futures:
            error = future.exception()
            results.append(error if error is not None else future.result())
        return results

    async def _request(self, messages: Messages) -> Completion:
        """One chat completion, each attempt under its own ``timeout_s`` deadline, retried after
        transient failures (see :func:`backoff_delay`)."""
        import openai

        retryable = (
            openai.APIConnectionError,  # includes httpx's per-read timeouts
            openai.RateLimitError,
            openai.InternalServerError,
            RequestTimeout,
        )
        assert self._loop is not None
        async with self._loop.slots:
            for attempt in range(self.backend.max_retries + 1):
                try:
                    return await self._attempt(messages)
                except retryable:
                    if attempt == self.backend.max_retries:
                        raise
                    self._count(retries=1)
                    await asyncio.sleep(backoff_delay(attempt, self.backend.backoff_s))
        raise AssertionError("unreachable")

    async def _attempt(self, messages: Messages) -> Completion:
        timeout_s = self.backend.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._client.chat.completions.create(**self._arguments(messages))
        except TimeoutError:
            raise RequestTimeout(f"no whole reply within timeout_s={timeout_s:g} s") from None
        return self._completion(response)

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

    def _open(self) -> _LoopThread:
        # Opened lazily, and again after close(): one agent may serve several envs in turn.
        with self._open_lock:
            if self._loop is None:
                import openai  # noqa: F401  (a missing package fails here, before a thread starts)

                loop = _LoopThread(f"aipo-{self.name}", self.backend.max_concurrency)
                self._client = loop.call(_new_client, self.backend, self._api_key)
                self._loop = loop
            return self._loop

    def close(self) -> None:
        with self._open_lock:
            if self._loop is not None:
                client, self._client = self._client, None
                self._loop.close(client.close() if client is not None else None)
                self._loop = None


async def _new_client(backend: OpenAIBackend, api_key: str) -> Any:
    """The async client, made inside the loop that will use it."""
    import openai

    return openai.AsyncOpenAI(
        base_url=backend.base_url,
        api_key=api_key,
        timeout=backend.timeout_s,  # also bounds connect and each read; the deadline bounds the whole
        max_retries=0,  # retries are ours, so they are counted and their backoff is configured
    )


class _LoopThread:
    """An event loop in a daemon thread, and a semaphore bounding the requests in flight on it."""

    def __init__(self, name: str, max_concurrency: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()
        self.slots = self.call(_semaphore, max_concurrency)

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> Future[_T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call(self, function: Any, *args: Any) -> Any:
        return self.submit(function(*args)).result()

    def close(self, last: Coroutine[Any, Any, Any] | None) -> None:
        """Cancel what is in flight, run ``last`` (closing the client), stop and join the thread."""

        async def shut_down() -> None:
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if last is not None:
                await last

        self.submit(shut_down()).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


async def _semaphore(size: int) -> asyncio.Semaphore:
    return asyncio.Semaphore(size)


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
