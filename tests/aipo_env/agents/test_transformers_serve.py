"""Consults through a real `transformers serve` on 127.0.0.1 with a tiny local model, then the server dies."""

from __future__ import annotations

import importlib.util
import os

import gymnasium as gym
import pytest

from aipo_env.agents import AgentsConfig
from aipo_env.agents.local_server import TransformersServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ROLES = ("verify", "knowledge", "reasoning")


@pytest.fixture
def serving_extra() -> None:
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install the serving extra (pip install -e '.[dev]'); missing {missing}")
        pytest.skip(f"transformers serve needs {missing}: pip install 'aipo[serving]'")


def test_all_roles_answer_through_the_server_and_a_dead_server_is_survived(
    serving_extra, tiny_chat_model, tmp_path, make_request
):
    server = TransformersServer(tiny_chat_model, startup_timeout_s=200, log_path=tmp_path / "serve.log")
    backend = {"kind": "openai", "base_url": server.base_url, "model": str(tiny_chat_model)}
    backend.update(timeout_s=60, max_retries=1, backoff_s=0.05, max_concurrency=4)
    settings = {"backend": backend, "sampling": {"max_tokens": 8}}
    config = AgentsConfig.model_validate(
        {"cache_path": str(tmp_path / "c.sqlite"), **dict.fromkeys(ROLES, settings)}
    )
    env = gym.make("aipo/Arithmetic-v0", agents=config, max_turns=8, max_consults=8)
    server.start()
    try:
        env.reset(seed=0)
        for role in ROLES:
            obs, reward, terminated, truncated, info = env.step(
                f'Hmm. <consult agent="{role}">Is 3 + 4 = 7?</consult>'
            )
            assert info["action"]["outcome"] == "answered", info["action"]
            feedback = obs.rsplit(f'<feedback agent="{role}">', 1)[1].split("</feedback>")[0]
            assert len(feedback.split()) == 8  # the tiny model writes words, up to max_tokens
        assert info["consults"] == dict.fromkeys(ROLES, 1) and info["agent_failures"] == 0
        verify = env.unwrapped.agents["verify"]
        batch = verify.reply_batch([make_request(query=f"claim {n}") for n in range(4)])
        assert all(reply.ok for reply in batch)
    finally:
        server.stop()

    obs, reward, terminated, truncated, info = env.step('<consult agent="reasoning">What next?</consult>')
    assert (
        info["action"]["outcome"] == "agent_error" and "APIConnectionError" in info["action"]["agent_error"]
    )
    assert obs.rstrip().endswith(
        "The reasoning agent is unavailable right now; continue on your own.</feedback>"
    )
    assert info["agent_failures"] == 1 and info["unanswered_consults"] == 1
    stats = env.unwrapped.agents["reasoning"].stats
    assert stats.failures == 1 and stats.retries == 1 and stats.errors["APIConnectionError"] == 1
    obs, reward, terminated, truncated, info = env.step("So \\boxed{7}.")
    assert terminated and info["episode"].agent_failures == 1
    env.close()
