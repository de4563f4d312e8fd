"""The OpenAI-compatible backend against a scripted local server: concurrency, failures, cache, secrets."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
import time

import gymnasium as gym
import pytest

from aipo_env.agents import AgentsConfig, ReplyCache
from aipo_env.agents.openai_backend import OpenAIAgent, backoff_delay

pytestmark = pytest.mark.timeout(60)
SECRET = "sk-test-6f1d0c9a8b7e"


KINDS = {"InternalServerError": "http", "": "error", "no choices": "reply", "empty reply": "reply"}
KINDS |= {"garbled": "reply", "Timeout": "timeout"}


def ok(chat_response, text="Correct: 196 = 14^2.", delay=0.0, **options):
    return lambda body: (200, chat_response(text, **options), delay)


def test_a_batch_runs_concurrently_up_to_the_bound(fake_server, openai_config, make_request, chat_response):
    requests = [make_request(query=f"claim {number}") for number in range(8)]
    elapsed = {}
    for bound in (8, 2):
        server = fake_server(ok(chat_response, delay=0.3))
        agent = OpenAIAgent("verify", openai_config(server.base_url, max_concurrency=bound))
        agent.reply(make_request(query="warm-up"))  # imports openai and opens the connection pool
        start = time.perf_counter()
        replies = agent.reply_batch(requests)
        elapsed[bound] = time.perf_counter() - start
        agent.close()
        assert all(reply.ok for reply in replies)
        assert server.peak_in_flight == bound
    assert elapsed[8] < 0.3 * 8 / 2  # one after another would take 2.4 s
    assert elapsed[2] >= 0.3 * 8 / 2 - 0.05


def test_an_agent_in_use_can_be_sent_to_another_process(
    tmp_path, fake_server, openai_config, make_request, chat_response
):
    server = fake_server(ok(chat_response))
    agent = OpenAIAgent("verify", openai_config(server.base_url), ReplyCache(tmp_path / "c.sqlite"))
    assert agent.reply(make_request()).ok
    copy = pickle.loads(pickle.dumps(agent))
    assert copy.reply(make_request(query="another claim")).ok and len(server.bodies) == 2
    assert copy.reply(make_request()).ok and copy.stats.cache_hits == 1


def test_async_entry_point_answers_in_order(fake_server, openai_config, make_request, chat_response):
    server = fake_server(lambda body: (200, chat_response(body["messages"][1]["content"][-8:]), 0.05))
    agent = OpenAIAgent("reasoning", openai_config(server.base_url))
    replies = asyncio.run(agent.areply_batch([make_request("reasoning", f"q{n:06d}") for n in range(4)]))
    assert [reply.text for reply in replies] == [f"q{n:06d}" for n in range(4)]


def test_transient_server_errors_are_retried(fake_server, openai_config, make_request, chat_response):
    calls = []

    def flaky(body):
        calls.append(body)
        return (503, {"error": {"message": "overloaded"}}, 0) if len(calls) < 3 else ok(chat_response)(body)

    server = fake_server(flaky)
    agent = OpenAIAgent("verify", openai_config(server.base_url, max_retries=3, backoff_s=0.01))
    reply = agent.reply(make_request())
    assert reply.ok and len(server.bodies) == 3 and agent.stats.retries == 2


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (lambda body: (500, {"error": {"message": "boom"}}, 0), "InternalServerError"),
        (lambda body: (200, b"<html>not json", 0), ""),
        (lambda body: (200, {"choices": []}, 0), "no choices"),
        (
            lambda body: (
                200,
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": "   "}}]},
                0,
            ),
            "empty reply",
        ),
        (
            lambda body: (
                200,
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": "\ufffd\x01?!"}}]},
                0,
            ),
            "garbled",
        ),
        (
            lambda body: (
                200,
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": "late"}}]},
                3,
            ),
            "Timeout",
        ),
    ],
    ids=["http-500", "not-json", "no-choices", "empty", "garbled", "timeout"],
)
def test_bad_answers_become_failures_not_exceptions(fake_server, openai_config, make_request, script, error):
    server = fake_server(script)
    agent = OpenAIAgent("verify", openai_config(server.base_url, timeout_s=1))
    reply = agent.reply(make_request())
    assert not reply.ok and reply.text == "" and error in (reply.error or "")
    assert agent.stats.failures == 1 and sum(agent.stats.errors.values()) == 1
    assert reply.error_kind == KINDS[error] and agent.stats.last_error == reply.error


def test_the_env_notes_an_unavailable_agent_and_counts_it(fake_server, openai_config):
    server = fake_server(lambda body: (500, {"error": {"message": "down"}}, 0))
    config = AgentsConfig(verify=openai_config(server.base_url), cache_path=None)
    env = gym.make("aipo/Arithmetic-v0", agents=config)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step('<consult agent="verify">Is 2 + 2 = 4?</consult>')
    assert not terminated and "verify agent is unavailable" in obs
    assert info["agent_failures"] == 1 and "InternalServerError" in info["action"]["agent_error"]
    obs, reward, terminated, truncated, info = env.step("\\boxed{4}")
    assert terminated
    env.close()


def test_long_and_cut_replies_are_trimmed_and_drop_their_logprobs(
    fake_server, openai_config, make_request, chat_response
):
    long_text = "word " * 400
    server = fake_server(ok(chat_response, text=long_text, logprobs=[-0.5] * 400))
    agent = OpenAIAgent("knowledge", openai_config(server.base_url, logprobs=True))
    reply = agent.reply(make_request("knowledge"))
    assert reply.ok and len(reply.text) <= agent.config.max_reply_chars and reply.text.endswith("[trimmed]")
    assert reply.token_logprobs is None and agent.stats.trimmed == 1
    assert server.bodies[0]["logprobs"] is True

    cut = fake_server(ok(chat_response, text="Try factoring 196 into", finish="length", logprobs=[-1.0] * 4))
    agent = OpenAIAgent("knowledge", openai_config(cut.base_url, logprobs=True))
    reply = agent.reply(make_request())
    assert reply.text == "Try factoring 196 into" and reply.token_logprobs == (-1.0,) * 4
    assert agent.stats.token_limit_hits == 1 and agent.stats.trimmed == 0


def test_logprobs_are_returned_when_the_server_gives_them(
    fake_server, openai_config, make_request, chat_response
):
    server = fake_server(ok(chat_response, text="Correct.", logprobs=[-0.1, -0.2]))
    reply = OpenAIAgent("verify", openai_config(server.base_url, logprobs=True)).reply(make_request())
    assert reply.token_logprobs == (-0.1, -0.2)


def test_without_reference_access_the_answer_never_reaches_the_server(
    fake_server, openai_config, make_request, chat_response
):
    server = fake_server(ok(chat_response))
    request = make_request("reasoning", "What next?")
    OpenAIAgent("reasoning", openai_config(server.base_url)).reply(request)
    sent = str(server.bodies[-1])
    assert request.problem.answer not in sent and request.problem.steps[0] not in sent
    allowed = openai_config(server.base_url).model_copy(update={"reference_access": True})
    OpenAIAgent("reasoning", allowed).reply(request)
    assert request.problem.answer in str(server.bodies[-1])


def test_greedy_replies_are_cached_on_disk_and_sampled_ones_are_not(
    tmp_path, fake_server, openai_config, make_request, chat_response
):
    server = fake_server(ok(chat_response))
    cache = ReplyCache(tmp_path / "c.sqlite")
    first = OpenAIAgent("verify", openai_config(server.base_url), cache).reply(make_request())
    again = OpenAIAgent("verify", openai_config(server.base_url), ReplyCache(tmp_path / "c.sqlite"))
    assert again.reply(make_request()) == first and len(server.bodies) == 1 and again.stats.cache_hits == 1
    sampled = openai_config(server.base_url).model_copy(
        update={"sampling": again.config.sampling.model_copy(update={"temperature": 0.7})}
    )
    agent = OpenAIAgent("verify", sampled, cache)
    agent.reply(make_request())
    agent.reply(make_request())
    assert len(server.bodies) == 3 and agent.cache is None


def test_the_api_key_is_sent_but_never_logged_reported_or_cached(
    tmp_path, monkeypatch, caplog, fake_server, openai_config, make_request, chat_response
):
    monkeypatch.setenv("AIPO_TEST_KEY", SECRET)
    echo = fake_server(lambda body: (401, {"error": {"message": f"Incorrect API key provided: {SECRET}"}}, 0))
    good = fake_server(ok(chat_response))
    cache = ReplyCache(tmp_path / "c.sqlite")
    with caplog.at_level(logging.DEBUG):
        failing = OpenAIAgent("verify", openai_config(echo.base_url, api_key_env="AIPO_TEST_KEY"), cache)
        failed = failing.reply(make_request())
        working = OpenAIAgent("verify", openai_config(good.base_url, api_key_env="AIPO_TEST_KEY"), cache)
        assert working.reply(make_request()).ok
    assert good.headers[0]["authorization"] == f"Bearer {SECRET}"
    assert not failed.ok and "***" in (failed.error or "") and SECRET not in (failed.error or "")
    assert SECRET not in caplog.text and SECRET not in repr(working) and SECRET not in str(working.config)
    cache.close()
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes()


def test_a_missing_key_variable_is_a_clear_error_at_build_time(monkeypatch, openai_config):
    monkeypatch.delenv("AIPO_MISSING_KEY", raising=False)
    with pytest.raises(ValueError, match=r"\$AIPO_MISSING_KEY, which is not set"):
        OpenAIAgent("verify", openai_config("http://127.0.0.1:9/v1", api_key_env="AIPO_MISSING_KEY"))


def test_backoff_grows_and_is_capped():
    assert all(0 <= backoff_delay(0, 0.5) <= 0.5 for _ in range(50))
    assert max(backoff_delay(3, 0.5) for _ in range(200)) > 2.0
    assert all(backoff_delay(20, 0.5, cap_s=3.0) <= 3.0 for _ in range(50))


@pytest.mark.slow
def test_consults_of_an_async_vector_env_overlap(fake_server, openai_config, chat_response):
    server = fake_server(ok(chat_response, delay=2.0))
    config = AgentsConfig(verify=openai_config(server.base_url))
    envs = gym.make_vec("aipo/Arithmetic-v0", num_envs=4, vectorization_mode="async", agents=config)
    try:
        envs.reset(seed=0)
        start = time.perf_counter()
        observations, _, _, _, infos = envs.step(['<consult agent="verify">Is 2 + 2 = 4?</consult>'] * 4)
        elapsed = time.perf_counter() - start
    finally:
        envs.close()
    assert all('<feedback agent="verify">Correct' in observation for observation in observations)
    # One after another would take 8 s; each worker also imports the openai client on its first consult.
    assert server.peak_in_flight == 4 and elapsed < 6.0


@pytest.mark.parametrize("retries", [0, 1])
def test_timeout_is_a_deadline_for_the_whole_request(trickling_server, openai_config, make_request, retries):
    # One byte every 0.3 s never trips a per-read timeout of 1 s; the deadline must.
    base_url = trickling_server(interval_s=0.3, limit_s=10.0)
    config = openai_config(base_url, timeout_s=1, max_retries=retries, backoff_s=0.01)
    threads = set(threading.enumerate())
    agent = OpenAIAgent("verify", config)
    start = time.perf_counter()
    reply = agent.reply(make_request())
    elapsed = time.perf_counter() - start
    agent.close()
    assert not reply.ok and "timeout_s=1" in (reply.error or "") and reply.error_kind == "timeout"
    assert agent.stats.failures == 1 and agent.stats.retries == retries
    assert elapsed < (retries + 1) * 1.0 + 1.5  # each attempt has its own 1 s deadline
    assert not [thread for thread in set(threading.enumerate()) - threads if thread.name == "aipo-verify"]
