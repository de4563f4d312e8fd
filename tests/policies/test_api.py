"""OpenAIPolicy against a fake chat-completions client (no network)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import gymnasium as gym
import pytest

import aipo_env  # noqa: F401  (registers the ids)
from policies import OpenAIPolicy


class FakeClient:
    """Answers like a server that stops at '</consult>' and drops the stop string."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies, self.calls, self.lock = replies, [], threading.Lock()
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    def create(self, **arguments):
        with self.lock:
            self.calls.append(arguments)
        transcript = arguments["messages"][-1]["content"]
        reply = next(text for marker, text in self.replies.items() if marker in transcript)
        stop = arguments["stop"][0]
        finish = "stop"
        if stop in reply:
            reply = reply[: reply.index(stop)]
        message = SimpleNamespace(content=reply)
        return SimpleNamespace(choices=[SimpleNamespace(message=message, finish_reason=finish)])


def test_consults_get_their_closing_tag_back_and_episodes_play_out() -> None:
    client = FakeClient(
        {
            "<feedback": "So the answer is \\boxed{12}.",
            "Start with": 'Let me ask. <consult agent="reasoning">Next step?</consult> ignored',
        }
    )
    policy = OpenAIPolicy("served-model", client=client, temperature=0.0, max_tokens=64)
    env = gym.make("aipo/Arithmetic-v0", level=1)
    observation, _ = env.reset(seed=0)
    (action,) = policy.act([observation])
    assert action.text.endswith("</consult>") and action.token_ids is None
    observation, _, terminated, _, info = env.step(action.text)
    assert not terminated and info["consults"]["reasoning"] == 1
    (action,) = policy.act([observation])
    assert action.text == "So the answer is \\boxed{12}."
    call = client.calls[0]
    assert call["model"] == "served-model" and call["stop"] == ["</consult>"] and call["temperature"] == 0.0
    assert call["messages"][0]["role"] == "system"


def test_batches_keep_their_order() -> None:
    client = FakeClient({str(i): f"\\boxed{{{i}}}" for i in range(10)})
    actions = OpenAIPolicy("m", client=client, max_concurrency=4).act([str(i) for i in range(10)])
    assert [a.text for a in actions] == [f"\\boxed{{{i}}}" for i in range(10)]


def test_a_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPO_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="AIPO_TEST_KEY"):
        OpenAIPolicy("m", api_key_env="AIPO_TEST_KEY")
    assert OpenAIPolicy("m", base_url="http://127.0.0.1:9/v1", api_key_env=None).model == "m"
