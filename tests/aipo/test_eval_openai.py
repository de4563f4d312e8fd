"""``aipo eval policy=openai``: a served model evaluated through a local fake OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from typer.testing import CliRunner

import aipo_env  # noqa: F401  (registers the ids)
from aipo.cli import app

pytestmark = pytest.mark.timeout(60)
SECRET = "sk-eval-test-51c2"


class ServedModel:
    """Answers level-1 arithmetic: right on even problem indices, wrong on odd ones; one model name."""

    def __init__(self, name: str) -> None:
        task = gym.make("aipo/Arithmetic-v0", level=1).unwrapped.task
        self.problems = [task.problem(index) for index in range(8)]
        self.name, self.requests, self.lock = name, [], threading.Lock()

    def answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            self.requests.append((body, headers))
        if body["model"] != self.name:
            return 404, {"error": {"message": f"model {body['model']} does not exist", "type": "not_found"}}
        transcript = body["messages"][-1]["content"]
        index = next(i for i, problem in enumerate(self.problems) if problem.question in transcript)
        answer = int(self.problems[index].answer) + index % 2
        message = {"role": "assistant", "content": f"So it is \\boxed{{{answer}}}."}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        return 200, {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": self.name,
            "choices": [choice],
        }


@pytest.fixture
def served() -> Iterator[tuple[ServedModel, str]]:
    model = ServedModel("served-7b")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            status, payload = model.answer(body, {k.lower(): v for k, v in self.headers.items()})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield model, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def run_eval(tmp_path: Path, *overrides: str):
    arguments = ["eval", "policy=openai", "problems=4", "samples=2", "progress=false"]
    arguments += ["env.kwargs={level: 1, max_turns: 2}", f"output_dir={tmp_path}", *overrides]
    return CliRunner().invoke(app, arguments)


def test_a_served_model_is_evaluated_and_eval_json_says_which(served, tmp_path, monkeypatch):
    model, url = served
    monkeypatch.setenv("AIPO_EVAL_KEY", SECRET)
    result = run_eval(
        tmp_path,
        "openai.model=served-7b",
        f"openai.base_url={url}",
        "openai.api_key_env=AIPO_EVAL_KEY",
        "openai.max_tokens=256",
        "temperature=0.7",
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["accuracy"] == 0.5 and saved["pass_at_k"] == {"1": 0.5, "2": 0.5}
    settings = saved["settings"]
    assert (
        settings["policy"] == "openai" and settings["model"] == "served-7b" and settings["temperature"] == 0.7
    )
    assert settings["server"] == {"base_url": url, "api_key_env": "AIPO_EVAL_KEY", "max_tokens": 256}
    assert (tmp_path / "pass_at_k.png").is_file()
    assert len(model.requests) == 8  # 4 problems x 2 samples, one turn each
    body, headers = model.requests[0]
    assert body["max_tokens"] == 256 and body["temperature"] == 0.7 and body["model"] == "served-7b"
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in (tmp_path / "eval.json").read_text() and SECRET not in result.output


def test_greedy_asks_the_server_for_temperature_zero(served, tmp_path):
    model, url = served
    result = run_eval(
        tmp_path, "openai.model=served-7b", f"openai.base_url={url}", "openai.api_key_env=null", "greedy=true"
    )
    assert result.exit_code == 0, result.output
    assert {body["temperature"] for body, _ in model.requests} == {0.0}


def test_a_missing_model_name_or_a_refusing_server_is_a_clear_error(served, tmp_path):
    _, url = served
    result = run_eval(tmp_path, f"openai.base_url={url}")
    assert result.exit_code == 2 and "openai.model" in result.output
    result = run_eval(
        tmp_path, "openai.model=no-such-model", f"openai.base_url={url}", "openai.api_key_env=null"
    )
    assert result.exit_code == 1 and "NotFoundError" in result.output and "no-such-model" in result.output
