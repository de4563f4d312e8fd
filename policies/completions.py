"""Rollouts from an OpenAI-compatible server: token ids in, token ids and log-probs out (trainable).

:class:`CompletionsPolicy` continues token contexts through the server's ``/v1/completions``
endpoint, which takes a prompt as a list of token ids, and asks for every generated token's id
and log-prob, so a learner can train on exactly what the server sampled, as it does with
:class:`~policies.hf.HFPolicy`. It uses these vLLM request fields (other servers must accept
them): ``return_tokens_as_token_ids`` (tokens come back as ``"token_id:123"``),
``include_stop_str_in_output`` (the stop string stays in the turn, so a consult still ends in
``</consult>``) and ``skip_special_tokens=false`` (EOS is kept).

The behaviour log-prob of a token is the server's ``token_logprobs`` entry. vLLM computes it
from the raw logits unless it is started with ``--logprobs-mode processed_logprobs``; the two
agree only at temperature 1 without top-k / top-p, so use those settings, or that flag, when
training on the log-probs.

The prompt and the text spliced between turns are encoded locally by the learner's own
:class:`~policies.hf.HFPolicy` (its tokenizer must be the server's). Requests of a batch run
concurrently; the ``openai`` client retries transient failures, and a request that still fails
raises :class:`RolloutServerError` naming the server and what to check.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from policies.api import openai_client
from policies.base import Action, LearnerEncoded
from policies.hf import HFPolicy

_ID_PREFIX = "token_id:"


class RolloutServerError(RuntimeError):
    """The rollout server failed or answered in a form the learner cannot train on."""


class CompletionsPolicy(LearnerEncoded):
    """Generates turns through an OpenAI-compatible completions endpoint (a :class:`TokenPolicy`).

    Args:
        encoder: the learner's policy; its tokenizer encodes prompts and helper text.
        model: the served model's name.
        base_url: the server, e.g. ``http://localhost:8000/v1``.
        api_key_env: environment variable holding the API key (``None`` for servers without keys).
        max_new_tokens, temperature, top_k, top_p, stop: sampling settings of one turn
            (as :class:`~policies.hf.HFPolicy`'s; ``top_k=0`` is sent as vLLM's ``-1``, off).
        max_concurrency: requests in flight at once.
        timeout_s, max_retries: per request, handled by the ``openai`` client.
        client: a ready ``openai.OpenAI``-like client (tests, custom transports).
    """

    trainable = True

    def __init__(
        self,
        encoder: HFPolicy,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        stop: Sequence[str] = ("</consult>",),
        max_concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        client: Any = None,
    ) -> None:
        if max_concurrency < 1 or max_new_tokens < 1:
            raise ValueError("max_concurrency and max_new_tokens must be at least 1")
        if client is None:
            client = openai_client(base_url, api_key_env, timeout_s, max_retries)
        self.encoder, self.client, self.model, self.base_url = encoder, client, model, base_url
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.top_k, self.top_p, self.stop = top_k, top_p, tuple(stop)
        self.max_concurrency = max_concurrency

    def generate(self, contexts: Sequence[Sequence[int]], *, greedy: bool = False) -> list[Action]:
        """One turn after each context, with the server's token ids and log-probs."""
        if not contexts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(contexts))) as pool:
            return list(pool.map(lambda context: self._turn(context, greedy), contexts))

    def _turn(self, context: Sequence[int], greedy: bool) -> Action:
        import openai

        try:
            response = self.client.completions.create(
                model=self.model,
                prompt=list(context),
                max_tokens=self.max_new_tokens,
                temperature=0.0 if greedy else self.temperature,
                top_p=self.top_p,
                stop=list(self.stop) or None,
                logprobs=0,
                extra_body={
                    "top_k": self.top_k or -1,
                    "return_tokens_as_token_ids": True,
                    "include_stop_str_in_output": True,
                    "skip_special_tokens": False,
                },
            )
        except openai.OpenAIError as error:
            raise RolloutServerError(
                f"the rollout server at {self.base_url} failed ({type(error).__name__}: {error}); check that "
                f"it is up, serves {self.model!r} and speaks the completions API"
            ) from error
        logprobs = response.choices[0].logprobs
        if logprobs is None or logprobs.tokens is None or logprobs.token_logprobs is None:
            raise RolloutServerError(f"the rollout server at {self.base_url} returned no log-probs")
        ids = tuple(_token_id(token, self.base_url) for token in logprobs.tokens)
        values = tuple(float("nan") if value is None else float(value) for value in logprobs.token_logprobs)
        return self.action(ids, values)

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


def _token_id(token: str, server: str | None) -> int:
    if not token.startswith(_ID_PREFIX):
        raise RolloutServerError(
            f"the rollout server at {server} returned the token {token!r} as text, not as an id; it must "
            "support return_tokens_as_token_ids (vLLM: any recent version, or --return-tokens-as-token-ids)"
        )
    return int(token.removeprefix(_ID_PREFIX))
