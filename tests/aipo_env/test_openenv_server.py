"""An aipo env served with OpenEnv's protocol, driven by OpenEnv's own clients on 127.0.0.1.

Each test starts the server in this process (uvicorn on a free loopback port) and talks to it
the way a trainer would: ``AipoEnvClient`` (OpenEnv's ``EnvClient``), ``GenericEnvClient``, a raw
WebSocket for malformed messages, and plain HTTP.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import pytest

pytest.importorskip("openenv", reason="needs the serve extra: pip install 'aipo[serve]'")

import requests  # noqa: E402
from openenv.core import GenericEnvClient  # noqa: E402
from websockets.client import ClientProtocol  # noqa: E402
from websockets.sync.client import connect  # noqa: E402
from websockets.uri import parse_uri  # noqa: E402

import aipo_env  # noqa: E402, F401
from aipo_env.openenv_client import AipoAction, AipoEnvClient  # noqa: E402
from aipo_env.openenv_server import build_app, make_server  # noqa: E402

ENV_ID = "aipo/Arithmetic-v0"
CONSULT = '<consult agent="reasoning">What is the next step?</consult>'


@contextmanager
def serving(env_kwargs: dict[str, Any] | None = None, ping: float = 20.0, **limits: Any) -> Iterator[str]:
    """Serve ``ENV_ID`` on a free 127.0.0.1 port for the ``with`` block; yields the base URL."""
    server = make_server(build_app(ENV_ID, env_kwargs, **limits), ping_interval=ping, ping_timeout=ping)
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving({"reveal_answer": True}, max_sessions=32) as base_url:
        yield base_url


def local_episode(index: int, actions: list[str]) -> list[tuple[str, float, bool]]:
    """The same episode played with ``gym.make``: (observation, reward, done) after reset and each action."""
    env = gym.make(ENV_ID, reveal_answer=True)
    text, _ = env.reset(seed=0, options={"index": index})
    steps = [(text, 0.0, False)]
    for action in actions:
        text, reward, terminated, truncated, _ = env.step(action)
        steps.append((text, reward, terminated or truncated))
    return steps


def test_reset_step_and_state_match_the_gymnasium_env(url):
    with AipoEnvClient(base_url=url).sync() as env:
        result = env.reset(seed=0, options={"index": 5}, episode_id="ep-5")
        info = result.observation.info
        assert info["problem"]["index"] == 5 and not result.done and result.reward is None
        state = env.state()
        assert (state.episode_id, state.step_count, state.env_id, state.done) == ("ep-5", 0, ENV_ID, False)

        consulted = env.step(AipoAction(text=CONSULT))
        assert consulted.observation.feedback.strip().startswith('<feedback agent="reasoning">Step 1:')
        assert consulted.observation.text.endswith(CONSULT + consulted.observation.feedback)
        assert consulted.observation.info["action"]["outcome"] == "answered"
        assert (consulted.reward, consulted.done) == (0.0, False)

        answer = f"The answer is \\boxed{{{info['problem']['answer']}}}."
        final = env.step(AipoAction(text=answer))
        assert (final.reward, final.done, final.observation.feedback) == (1.0, True, "")
        assert final.observation.info["correct"] is True
        sources = [segment["source"] for segment in final.observation.info["episode"]["segments"]]
        assert sources == ["prompt", "policy", "agent", "policy"]

        state = env.state()
        assert (state.step_count, state.done, state.episode_return) == (2, True, 1.0)
        assert state.consults["reasoning"] == 1

    local = local_episode(5, [CONSULT, answer])
    assert [result.observation.text, consulted.observation.text, final.observation.text] == [
        text for text, _, _ in local
    ]


def test_generic_client_speaks_plain_json(url):
    with GenericEnvClient(base_url=url).sync() as env:
        result = env.reset(seed=3)
        assert result.observation["text"] and result.observation["feedback"] == ""
        result = env.step({"text": CONSULT})
        assert "<feedback agent=" in result.observation["feedback"]
        assert env.state()["step_count"] == 1


def test_tool_call_consults_are_served_too():
    call = '<tool_call>\n{"name": "reasoning", "arguments": {"query": "First step?"}}\n</tool_call>'
    with serving({"protocol": "tools"}) as url, AipoEnvClient(base_url=url).sync() as env:
        env.reset(seed=0)
        result = env.step(AipoAction(text=call))
    assert result.observation.info["action"]["outcome"] == "answered"
    assert result.observation.feedback.strip().startswith("<tool_response>\nStep 1:")


def test_concurrent_sessions_each_play_their_own_env(url):
    """Sixteen clients at once, each on its own problem: every transcript is its own episode's."""
    sessions = 16

    async def play(index: int) -> list[tuple[str, float, bool]]:
        async with AipoEnvClient(base_url=url) as env:
            result = await env.reset(seed=0, options={"index": index})
            steps = [(result.observation.text, 0.0, result.done)]
            for _ in range(3):
                await asyncio.sleep(0)  # interleave the sessions' messages
                result = await env.step(AipoAction(text=CONSULT))
                steps.append((result.observation.text, result.reward, result.done))
            assert (await env.state()).step_count == 3
            return steps

    async def play_all() -> list[list[tuple[str, float, bool]]]:
        return await asyncio.gather(*(play(index) for index in range(sessions)))

    played = asyncio.run(play_all())
    for index, steps in enumerate(played):
        assert steps == local_episode(index, [CONSULT] * 3)
    assert len({steps[0][0] for steps in played}) == sessions


def test_malformed_messages_get_errors_and_the_session_goes_on(url):
    ws_url = url.replace("http://", "ws://") + "/ws"
    with connect(ws_url) as ws:

        def send(message: str) -> dict[str, Any]:
            ws.send(message)
            return json.loads(ws.recv(timeout=10))

        assert send("{not json")["data"]["code"] == "INVALID_JSON"
        assert send(json.dumps({"type": "dance"}))["data"]["code"] == "UNKNOWN_TYPE"
        assert send(json.dumps({"type": "step", "data": {"txt": "hi"}}))["data"]["code"] == "VALIDATION_ERROR"
        step_first = send(json.dumps({"type": "step", "data": {"text": "hi"}}))["data"]
        assert step_first["code"] == "EXECUTION_ERROR" and "reset" in step_first["message"]
        typo = send(json.dumps({"type": "reset", "data": {"indx": 2}}))["data"]
        assert typo["code"] == "EXECUTION_ERROR" and "options" in typo["message"]
        out_of_range = send(json.dumps({"type": "reset", "data": {"options": {"index": 10**9}}}))["data"]
        assert "out of range" in out_of_range["message"]

        reply = send(json.dumps({"type": "reset", "data": {"seed": 1, "options": {"index": 2}}}))
        assert (
            reply["type"] == "observation" and reply["data"]["observation"]["info"]["problem"]["index"] == 2
        )

    with AipoEnvClient(base_url=url).sync() as env:
        env.reset(seed=0)
        env.step(AipoAction(text="The answer is \\boxed{0}."))
        with pytest.raises(RuntimeError, match="call reset"):
            env.step(AipoAction(text="again"))
        assert not env.reset(seed=0).done

    assert requests.post(f"{url}/step", data="{{", timeout=10).status_code == 422
    stateless = requests.post(f"{url}/step", json={"action": {"text": "hi"}}, timeout=10)
    assert stateless.status_code == 409 and "/ws" in stateless.json()["detail"]
    bad_reset = requests.post(f"{url}/reset", json={"options": {"index": -1}}, timeout=10)
    assert bad_reset.status_code == 400 and "out of range" in bad_reset.json()["detail"]
    assert requests.get(f"{url}/health", timeout=10).json()["status"] == "healthy"


def test_a_full_server_refuses_one_more_session_with_a_clear_error():
    with serving(max_sessions=2) as url:
        first, second = AipoEnvClient(base_url=url).sync(), AipoEnvClient(base_url=url).sync()
        first.reset(seed=0)
        second.reset(seed=0)
        with (
            AipoEnvClient(base_url=url).sync() as third,
            pytest.raises(RuntimeError, match="CAPACITY_REACHED"),
        ):
            third.reset(seed=0)
        first.close()
        assert eventually(lambda: _can_play(url))
        second.close()


def test_a_client_that_vanishes_frees_its_session():
    """A connection dropped without a goodbye (a killed trainer) frees its slot at once."""
    with serving(max_sessions=1) as url, connect(url.replace("http://", "ws://") + "/ws") as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "observation"
        assert not _can_play(url)
        ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame, no close message: the peer is gone
        assert eventually(lambda: _can_play(url))


def test_a_client_that_freezes_is_dropped_when_it_stops_answering_pings():
    """A peer that keeps its connection open but answers nothing (a frozen process) is dropped."""
    with serving(max_sessions=1, ping=0.3) as url, socket.create_connection(url[7:].split(":")) as raw:
        frozen = ClientProtocol(parse_uri(url.replace("http://", "ws://") + "/ws"))
        frozen.send_request(frozen.connect())
        raw.sendall(b"".join(frozen.data_to_send()))
        frozen.receive_data(raw.recv(65536))  # the server's 101 Switching Protocols
        frozen.send_text(json.dumps({"type": "reset", "data": {"seed": 0}}).encode())
        raw.sendall(b"".join(frozen.data_to_send()))  # a reset, then never a read or a pong again
        assert not _can_play(url)
        assert eventually(lambda: _can_play(url))


@pytest.mark.slow
def test_an_idle_session_is_closed_after_the_timeout():
    """OpenEnv's reaper looks every 5 s; a session silent for longer than the timeout is closed."""
    with serving(max_sessions=1, session_timeout=0.5) as url, AipoEnvClient(base_url=url).sync() as idle:
        idle.reset(seed=0)
        assert eventually(lambda: _can_play(url), within=12)
        with pytest.raises(RuntimeError, match="session is closed"):
            idle.step(AipoAction(text=CONSULT))


def _can_play(url: str) -> bool:
    """Whether a new session gets an env (the server has room for one more)."""
    try:
        with AipoEnvClient(base_url=url).sync() as env:
            return not env.reset(seed=0).done
    except RuntimeError as error:
        assert "CAPACITY_REACHED" in str(error)
        return False


def eventually(check: Any, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
