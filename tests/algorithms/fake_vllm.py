"""A stand-in for a vLLM server on 127.0.0.1: the completions API with token ids, and a weight reload.

It samples with the tiny model through :class:`~policies.hf.HFPolicy` and answers in vLLM's
format: ``logprobs.tokens`` as ``"token_id:N"`` when the request asks for
``return_tokens_as_token_ids`` (as text otherwise), and ``token_logprobs`` of the sampled
tokens. ``POST /update_weights_from_disk`` loads a ``save_pretrained`` directory, as SGLang's
endpoint of that name does.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from policies import HFPolicy


class FakeVLLM:
    """Serves ``policy`` until :meth:`close`; ``reload_fails`` makes every reload answer an error."""

    def __init__(self, policy: HFPolicy, *, reload_fails: bool = False) -> None:
        self.policy, self.reload_fails = policy, reload_fails
        self.completions = self.reloads = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/v1/completions":
                    status, answer = 200, server.complete(request)
                elif self.path == "/update_weights_from_disk":
                    status, answer = server.reload(request)
                else:
                    status, answer = 404, {"message": f"no route {self.path}"}
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def complete(self, request: dict) -> dict:
        with self.lock:
            self.completions += 1
            self.policy.max_new_tokens = request["max_tokens"]
            self.policy.stop = tuple(request.get("stop") or ())
            self.policy._triggers = None  # the stop strings changed
            action = self.policy.generate([request["prompt"]], greedy=request["temperature"] == 0)[0]
        as_ids = request.get("return_tokens_as_token_ids")
        tokens = [f"token_id:{i}" if as_ids else self.policy.tokenizer.decode([i]) for i in action.token_ids]
        logprobs = {
            "tokens": tokens,
            "token_logprobs": list(action.logprobs),
            "text_offset": None,
            "top_logprobs": None,
        }
        choice = {"index": 0, "text": action.text, "logprobs": logprobs, "finish_reason": "stop"}
        return {
            "id": "cmpl-0",
            "object": "text_completion",
            "created": 0,
            "model": request["model"],
            "choices": [choice],
        }

    def reload(self, request: dict) -> tuple[int, dict]:
        if self.reload_fails:
            return 400, {"success": False, "message": "cannot load weights of another shape"}
        loaded = AutoModelForCausalLM.from_pretrained(request["model_path"])
        with self.lock, torch.no_grad():
            self.policy.model.load_state_dict(loaded.state_dict())
            self.reloads += 1
        return 200, {"success": True, "message": "loaded"}

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
