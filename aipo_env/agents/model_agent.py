"""What every model-backed agent shares: prompts, the reply cache, checks on replies, counters.

A backend implements only :meth:`ModelAgent._complete` (many chat prompts in, one
:class:`Completion` or exception per prompt out). Everything else happens here, the same for
all backends:

* the prompt is built by :func:`aipo_env.agents.prompts.build_messages`, with the reference
  answer only for an agent with ``reference_access``;
* cached completions are reused (:mod:`aipo_env.agents.cache`), fresh ones are stored;
* a failed request, an empty reply or a garbled one (:func:`looks_garbled`) becomes an
  ``AgentReply(ok=False)`` whose ``error`` says what happened, so the env writes its
  "unavailable" note and counts the failure; nothing raises out of :meth:`reply_batch`;
* a reply longer than ``max_reply_chars`` is cut there and ends with ``[trimmed]`` (and loses
  its token log-probabilities, which no longer match it); a reply that stopped at the token
  limit is kept as generated and counted;
* token log-probs travel with each token's piece of the text (:mod:`~aipo_env.agents.token_pieces`);
  whitespace stripped off the ends of a reply takes its whole tokens with it, and a token that
  loses only part of its piece keeps its log-prob for the rest;
* :attr:`ModelAgent.stats` counts requests, answers, failures (by error kind), cache hits,
  trimmed replies, replies that hit the token limit, and retries.
"""

from __future__ import annotations

import logging
import re
import threading
from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aipo_env.agents.base import Agent, AgentReply, ConsultRequest, failure_kind
from aipo_env.agents.cache import ReplyCache, cache_key
from aipo_env.agents.config import AgentConfig
from aipo_env.agents.prompts import Messages, build_messages

logger = logging.getLogger("aipo_env.agents")

TRIM_MARK = " [trimmed]"
_THINKING = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_NOISE = re.compile(r"[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Completion:
    """A backend's raw answer to one prompt.

    Attributes:
        text: the generated text.
        finish_reason: ``"stop"``, ``"length"`` (hit ``max_tokens``) or ``None`` if unknown.
        token_logprobs: log-probability of each generated token, when asked for and available.
        token_texts: each generated token's piece of ``text``, alongside ``token_logprobs``.
    """

    text: str
    finish_reason: str | None = None
    token_logprobs: tuple[float, ...] | None = None
    token_texts: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        logprobs = list(self.token_logprobs) if self.token_logprobs is not None else None
        texts = list(self.token_texts) if self.token_texts is not None else None
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "token_logprobs": logprobs,
            "token_texts": texts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        logprobs, texts = data.get("token_logprobs"), data.get("token_texts")
        return cls(
            str(data["text"]),
            data.get("finish_reason"),
            tuple(logprobs) if logprobs else None,
            tuple(texts) if texts is not None else None,
        )


@dataclass
class AgentStats:
    """Counters of one agent since it was built (read them for logging and dashboards)."""

    requests: int = 0
    answered: int = 0
    failures: int = 0
    cache_hits: int = 0
    trimmed: int = 0
    token_limit_hits: int = 0
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, with errors counted by kind."""
        return {
            "requests": self.requests,
            "answered": self.answered,
            "failures": self.failures,
            "cache_hits": self.cache_hits,
            "trimmed": self.trimmed,
            "token_limit_hits": self.token_limit_hits,
            "retries": self.retries,
            "errors": dict(self.errors),
            "last_error": self.last_error,
        }


class ReplyError(Exception):
    """A reply that arrived but cannot be used (empty, garbled, malformed)."""


class RequestTimeout(TimeoutError):
    """A request that did not finish within its deadline (the backend's ``timeout_s``)."""


class ModelAgent(Agent):
    """An agent whose replies come from a language model; subclasses implement :meth:`_complete`.

    Args:
        name: the role (``verify``, ``knowledge``, ``reasoning``).
        config: the role's :class:`~aipo_env.agents.config.AgentConfig`.
        cache: the shared reply cache; used only when ``config.uses_cache``.
    """

    backend_kind = "model"
    log_failures = True  # warn on the 1st, 10th, 100th ... failure; else failures log at DEBUG

    @property
    def last_error(self) -> str:
        return self.stats.last_error

    def __init__(self, name: str, config: AgentConfig, cache: ReplyCache | None = None) -> None:
        self.name = name
        self.config = config
        self.reference_access = config.reference_access
        self.cache = cache if config.uses_cache else None
        self.stats = AgentStats()
        self._stats_lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        # Clients, threads and locks stay behind: a copy sent to a worker process (an
        # AsyncVectorEnv's) rebuilds them there, reading its API key from that environment.
        return {"name": self.name, "config": self.config, "cache": self.cache}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["config"], state["cache"])  # type: ignore[misc]

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The model, as it enters the cache key."""

    @abstractmethod
    def _complete(self, prompts: Sequence[Messages]) -> list[Completion | BaseException]:
        """Generate one completion per prompt; a failure is returned (not raised) in its place."""

    def messages(self, request: ConsultRequest) -> Messages:
        """The chat messages this agent sends for ``request``."""
        return build_messages(
            request,
            reference_access=self.reference_access,
            max_prompt_chars=self.config.max_prompt_chars,
            system=self.config.system_prompt,
        )

    def reply(self, request: ConsultRequest) -> AgentReply:
        return self.reply_batch([request])[0]

    def reply_batch(self, requests: Sequence[ConsultRequest]) -> list[AgentReply]:
        """Answer all ``requests`` together (concurrently or in one batch); never raises."""
        try:
            return self._answer(list(requests))
        except Exception as error:  # a bug or an unforeseen failure must not reach the training loop
            return [self._failure(error) for _ in requests]

    def _answer(self, requests: list[ConsultRequest]) -> list[AgentReply]:
        prompts = [self.messages(request) for request in requests]
        keys = [self._cache_key(prompt) for prompt in prompts] if self.cache is not None else []
        results: list[Completion | BaseException | None] = [None] * len(prompts)
        if self.cache is not None:
            for index, key in enumerate(keys):
                stored = self.cache.get(key)
                if stored is not None:
                    results[index] = Completion.from_json(stored)
            self._count(cache_hits=sum(result is not None for result in results))
        missing = [index for index, result in enumerate(results) if result is None]
        if missing:
            fresh = self._complete([prompts[index] for index in missing])
            for index, completion in zip(missing, fresh, strict=True):
                results[index] = completion
                if self.cache is not None and isinstance(completion, Completion) and _usable(completion):
                    self.cache.put(keys[index], completion.to_json())
        self._count(requests=len(requests))
        return [self._finish(result) for result in results if result is not None]

    def _finish(self, result: Completion | BaseException) -> AgentReply:
        if isinstance(result, BaseException):
            return self._failure(result)
        text = clean_reply(result.text)
        if not text:
            return self._failure(ReplyError("empty reply"))
        if looks_garbled(text):
            return self._failure(ReplyError("garbled reply"))
        logprobs, pieces = result.token_logprobs, result.token_texts
        if text != result.text.strip():
            logprobs = pieces = None  # thinking was removed: the text no longer matches the tokens
        elif logprobs is not None and pieces is not None:
            logprobs, pieces = strip_pieces(result.text, logprobs, pieces)
        if result.finish_reason == "length":
            self._count(token_limit_hits=1)
        if len(text) > self.config.max_reply_chars:
            text = trim_reply(text, self.config.max_reply_chars)
            logprobs = pieces = None
            self._count(trimmed=1)
        self._count(answered=1)
        return AgentReply(text, token_logprobs=logprobs, token_texts=pieces if logprobs is not None else None)

    def _failure(self, error: BaseException) -> AgentReply:
        kind = type(error).__name__
        message = self.scrub(f"{kind}: {error}")[:300]
        with self._stats_lock:
            self.stats.failures += 1
            self.stats.errors[kind] += 1
            self.stats.last_error = message
            failures = self.stats.failures
        # Log the 1st, 10th, 100th ... failure: a dead server must not flood the training log.
        # A trainer that reports failures once per step turns this off (log_failures).
        loud = self.log_failures and _power_of_ten(failures)
        level = logging.WARNING if loud else logging.DEBUG
        logger.log(level, "%s agent failed (%d failures so far): %s", self.name, failures, message)
        return AgentReply("", ok=False, error=message, error_kind=failure_kind(error))

    def scrub(self, text: str) -> str:
        """``text`` with every secret this agent holds (its API key) replaced by ``***``."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _cache_key(self, prompt: Messages) -> str:
        sampling = self.config.sampling.model_dump(mode="json")
        sampling["logprobs"] = bool(getattr(self.config.backend, "logprobs", False))
        return cache_key(self.backend_kind, self.model_name, prompt, sampling)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, increment in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + increment)


def clean_reply(text: str) -> str:
    """``text`` without ``<think>...</think>`` blocks (an unclosed one runs to the end), stripped."""
    return _THINKING.sub("", text).strip()


def looks_garbled(text: str) -> bool:
    """True when ``text`` has no letter or digit, or more than 10% of it is U+FFFD or control characters."""
    if not any(character.isalnum() for character in text):
        return True
    return len(_NOISE.findall(text)) > 0.1 * len(text)


def strip_pieces(
    text: str, logprobs: tuple[float, ...], pieces: tuple[str, ...]
) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Tokens of ``text.strip()``: edge tokens of only whitespace dropped, partly stripped ones cut.

    Returned unchanged when ``pieces`` do not match ``text`` or ``logprobs`` (the learner then
    sees the mismatch and ignores them).
    """
    if "".join(pieces) != text or len(pieces) != len(logprobs):
        return logprobs, pieces
    tokens = list(zip(pieces, logprobs, strict=True))
    lead, trail = len(text) - len(text.lstrip()), len(text) - len(text.rstrip())
    while lead and tokens:
        piece, logprob = tokens[0]
        if len(piece) <= lead:
            lead -= len(piece)
            tokens.pop(0)
        else:
            tokens[0], lead = (piece[lead:], logprob), 0
    while trail and tokens:
        piece, logprob = tokens[-1]
        if len(piece) <= trail:
            trail -= len(piece)
            tokens.pop()
        else:
            tokens[-1], trail = (piece[: len(piece) - trail], logprob), 0
    return tuple(logprob for _, logprob in tokens), tuple(piece for piece, _ in tokens)


def trim_reply(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, ending with ``[trimmed]``."""
    room = limit - len(TRIM_MARK)
    if len(text) > room:
        kept = text[:room]
        cut = kept.rfind(" ")
        text = kept[:cut] if cut > room // 2 else kept
    return text.rstrip() + TRIM_MARK


def _usable(completion: Completion) -> bool:
    text = clean_reply(completion.text)
    return bool(text) and not looks_garbled(text)


def _power_of_ten(number: int) -> bool:
    while number >= 10 and number % 10 == 0:
        number //= 10
    return number == 1
