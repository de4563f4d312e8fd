"""A model behind an OpenAI-compatible server as a policy (vLLM, SGLang, hosted APIs); not trainable.

Each turn is one chat completion: a system message explains the protocol and the user message
is the transcript so far; the reply is the next turn. Generation stops at ``</consult>``;
servers drop the stop string from the text, so it is put back when the turn opened a consult.
Requests of a batch run concurrently; the ``openai`` client retries transient failures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aipo_env.protocol import Protocol
from policies.base import Action, Policy

SYSTEM_PROMPT = (
    "You are solving a problem. Below is the transcript so far: the problem, your earlier turns, and "
    "helpers' replies in <feedback> tags. Write your next turn only. To consult a helper, end the turn "
    'with <consult agent="verify|knowledge|reasoning">your question</consult>; otherwise give your '
    "final answer as the problem asks."
)


def openai_client(base_url: str | None, api_key_env: str | None, timeout_s: float, max_retries: int) -> Any:
    """An ``openai.OpenAI`` client for ``base_url``, its key read from ``$api_key_env`` (``None``: no key).

    Raises:
        ValueError: ``api_key_env`` names a variable that is not set.
    """
    import openai

    key = "not-needed"  # the client insists on a key; local servers ignore it
    if api_key_env is not None:
        key = os.environ.get(api_key_env, "")
        if not key:
            raise ValueError(
                f"the API key is read from ${api_key_env}, which is not set: export it, or pass "
                "api_key_env=None for a server that needs no key"
            )
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=max_retries)


class OpenAIPolicy(Policy):
    """Acts through any OpenAI-compatible chat-completions endpoint.

    Args:
        model: the served model's name.
        base_url: the server (``None``: the OpenAI API).
        api_key_env: environment variable holding the API key (``None`` for servers without keys).
        system_prompt: the instructions sent with every turn.
        temperature, top_p, max_tokens: sampling settings of one turn.
        max_concurrency: requests in flight at once.
        timeout_s, max_retries: per request, handled by the ``openai`` client.
        protocol: the env's action protocol (for the consult tag).
        client: a ready ``openai.OpenAI``-like client (tests, custom transports).

    Raises:
        ValueError: ``api_key_env`` names a variable that is not set.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        system_prompt: str = SYSTEM_PROMPT,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_tokens: int = 1024,
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        protocol: Protocol | None = None,
        client: Any = None,
    ) -> None:
        if max_concurrency < 1 or max_tokens < 1:
            raise ValueError("max_concurrency and max_tokens must be at least 1")
        if client is None:
            client = openai_client(base_url, api_key_env, timeout_s, max_retries)
        self.client, self.model, self.system_prompt = client, model, system_prompt
        self.sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        self.max_concurrency = max_concurrency
        self.protocol = protocol or Protocol()

    def act(self, observations: Sequence[str]) -> list[Action]:
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(len(observations), 1))) as pool:
            return list(pool.map(self._turn, observations))

    def _turn(self, observation: str) -> Action:
        closing = f"</{self.protocol.consult_tag}>"
        response = self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": observation},
            ],
            stop=[closing],
            **self.sampling,
        )
        choice = response.choices[0]
        text = choice.message.content or ""
        if choice.finish_reason == "stop" and text.rfind(f"<{self.protocol.consult_tag}") > text.rfind(
            closing
        ):
            text += closing
        return Action(text)

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
