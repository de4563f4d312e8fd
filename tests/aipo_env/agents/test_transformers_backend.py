"""The in-process transformers backend on a tiny model: batching, logprobs, failures."""

from __future__ import annotations

import threading

import pytest

from aipo_env.agents import AgentConfig
from aipo_env.agents.transformers_backend import TransformersAgent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def config(model, **backend) -> AgentConfig:
    settings = {"kind": "transformers", "model": str(model), **backend}
    return AgentConfig.model_validate({"backend": settings, "sampling": {"max_tokens": 6}})


def test_pending_consults_are_generated_in_batches(tiny_chat_model, make_request):
    agent = TransformersAgent("reasoning", config(tiny_chat_model, batch_size=4, logprobs=True))
    replies = agent.reply_batch([make_request("reasoning", f"what about {n}?") for n in range(5)])
    assert all(reply.ok and reply.text for reply in replies)
    assert agent.batches == 2  # 4 + 1
    assert all(len(reply.token_logprobs) == 6 for reply in replies)
    assert all(value <= 0 for reply in replies for value in reply.token_logprobs)
    assert all(len(reply.token_texts) == 6 and "".join(reply.token_texts) == reply.text for reply in replies)
    assert agent.stats.token_limit_hits == 5

    before = agent.batches
    agent.backend = agent.backend.model_copy(update={"batch_wait_s": 0.5})
    results = []
    threads = [
        threading.Thread(target=lambda n=n: results.append(agent.reply(make_request("verify", f"claim {n}"))))
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(reply.ok for reply in results)
    assert agent.batches - before < 4  # consults from separate threads shared a generate call
    agent.close()
    agent.close()


def test_a_model_that_cannot_load_fails_every_consult_without_raising(tmp_path, make_request):
    agent = TransformersAgent("verify", config(tmp_path / "no-model"))
    replies = agent.reply_batch([make_request(), make_request(query="other")])
    assert [reply.ok for reply in replies] == [False, False]
    assert agent.stats.failures == 2 and all(reply.error for reply in replies)
    agent.close()
