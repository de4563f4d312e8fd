"""Fixtures for agent tests: consult requests, a scripted OpenAI-compatible server, a tiny chat model."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aipo_env.agents import AgentConfig, ConsultRequest
from aipo_env.episode import Segment
from aipo_env.tasks.base import Problem, Score, Task

SECRET_ANSWER = "QUOKKA-4217"
SECRET_STEP = "multiply the wombat count by nine"


class SecretTask(Task):
    """One problem whose answer and steps are easy to spot in any text that leaks them."""

    name = "secret"

    def __len__(self) -> int:
        return 1

    def problem(self, index: int) -> Problem:
        return Problem("s0", "How many divisors does 196 have?", SECRET_ANSWER, "test", steps=(SECRET_STEP,))

    def score(self, problem: Problem, response: str) -> Score:
        return Score(float(SECRET_ANSWER in response), SECRET_ANSWER in response)


def _make_request(
    agent: str = "verify", query: str = "Is 196 = 2^2 * 7^2?", work: str = ""
) -> ConsultRequest:
    task = SecretTask()
    problem = task.problem(0)
    segments = (Segment("prompt", None, task.prompt(problem)), Segment("policy", None, work))
    return ConsultRequest(agent, query, problem, task, segments)


def _openai_config(base_url: str, **backend: Any) -> AgentConfig:
    """An agent config for the server at ``base_url``; fast failure settings for tests."""
    settings = {"kind": "openai", "base_url": base_url, "model": "tiny", "max_retries": 0, "timeout_s": 5}
    settings.update(backend)
    return AgentConfig.model_validate({"backend": settings, "sampling": {"max_tokens": 16}})


def _chat_response(text: str | None, finish: str = "stop", logprobs: list[float] | None = None) -> dict:
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": finish,
        "message": {"role": "assistant", "content": text},
    }
    if logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {"token": "t", "logprob": value, "bytes": None, "top_logprobs": []} for value in logprobs
            ]
        }
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "tiny", "choices": [choice]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib's backlog of 5 drops the SYNs of a burst of connections (retried after 1 s).
    request_queue_size = 128


Reply = tuple[int, Any, float]  # status, JSON body (or raw bytes), delay in seconds


@dataclass
class FakeServer:
    """A local HTTP server speaking just enough of the chat-completions API, answering from a script.

    ``script(body)`` returns ``(status, body, delay)``; every request body and header set is recorded.
    """

    script: Callable[[dict], Reply]
    bodies: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def handle(self, body: dict, headers: dict) -> Reply:
        with self.lock:
            self.bodies.append(body)
            self.headers.append(headers)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            status, payload, delay = self.script(body)
            time.sleep(delay)
            return status, payload, delay
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def fake_server() -> Iterator[Callable[[Callable[[dict], Reply]], FakeServer]]:
    """Start a :class:`FakeServer` with a given script: ``server = fake_server(script)``."""
    started: list[ThreadingHTTPServer] = []

    def start(script: Callable[[dict], Reply]) -> FakeServer:
        fake = FakeServer(script)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                status, payload, _ = fake.handle(body, {k.lower(): v for k, v in self.headers.items()})
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append(server)
        fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return fake

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def private_reply_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default-configured caches go to a fresh directory, never to the user's ~/.cache."""
    monkeypatch.setenv("AIPO_CACHE_DIR", str(tmp_path / "aipo-cache"))


@pytest.fixture
def make_request() -> Callable[..., ConsultRequest]:
    """``make_request(agent, query, work)``: a consult on :class:`SecretTask`'s problem."""
    return _make_request


@pytest.fixture
def openai_config() -> Callable[..., AgentConfig]:
    """``openai_config(base_url, **backend_settings)``: an ``openai`` agent config."""
    return _openai_config


@pytest.fixture
def chat_response() -> Callable[..., dict]:
    """``chat_response(text, finish, logprobs)``: a chat-completions JSON body."""
    return _chat_response


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny chat model saved to a temporary directory (built locally, a few seconds)."""
    from policies.tiny_chat import save_tiny_chat_model

    return save_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat") / "model")


@pytest.fixture
def trickling_server() -> Iterator[Callable[..., str]]:
    """``base_url = trickling_server(interval_s, limit_s)``: a server that answers every POST with
    headers at once and then its body one byte every ``interval_s`` seconds, stopping after
    ``limit_s`` seconds (the body is never complete within that time)."""
    started: list[ThreadingHTTPServer] = []

    def start(interval_s: float = 0.3, limit_s: float = 10.0) -> str:
        body = json.dumps(_chat_response("Correct: 196 = 14^2. " * 20)).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.flush()
                    for index in range(min(len(body), int(limit_s / interval_s))):
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(interval_s)
                except OSError:
                    pass  # the client gave up: what a deadline should make it do

            def log_message(self, *args: Any) -> None:
                pass

        server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
