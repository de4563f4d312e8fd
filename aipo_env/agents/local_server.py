"""Running a local OpenAI-compatible server for the helpers.

:class:`TransformersServer` starts ``transformers serve`` (needs the ``serving`` extra:
``pip install 'aipo[serving]'``) on 127.0.0.1 in a child process, waits until it answers, and
stops it again; the agents reach it through the ``openai`` backend at :attr:`base_url`::

    with TransformersServer("runs/helper") as server:
        config = AgentsConfig(verify=AgentConfig(backend=OpenAIBackend(base_url=server.base_url,
                                                                        model="runs/helper")))
        env = gym.make("aipo/Arithmetic-v0", agents=config)

A tiny chat model to serve in tests and benchmarks is :func:`policies.tiny_chat.save_tiny_chat_model`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType


class TransformersServer:
    """``transformers serve MODEL`` on 127.0.0.1, as a context manager.

    Args:
        model: a local model directory (or hub name, when the hub is reachable).
        port: the port; ``None`` picks a free one.
        device: where the server runs the model.
        continuous_batching: let the server batch concurrent requests (``--continuous-batching``).
        startup_timeout_s: how long :meth:`start` waits for the server to answer.
        log_path: where the server's output goes; ``None`` = a temporary file.
        environment: extra environment variables for the server (e.g. ``OMP_NUM_THREADS``).

    Raises:
        RuntimeError: from :meth:`start`, when the ``transformers`` command is missing, or the
            server exits or does not answer in time (the message holds the end of its log).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        port: int | None = None,
        device: str = "cpu",
        continuous_batching: bool = False,
        startup_timeout_s: float = 180.0,
        log_path: str | Path | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.model = str(model)
        self.port = port or _free_port()
        self.device, self.continuous_batching = device, continuous_batching
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(suffix=".log")[1])
        self.environment = dict(environment or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The API root the ``openai`` backend points at."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> TransformersServer:
        """Start the server and wait until ``/health`` answers."""
        command = _serve_command()
        command += [self.model, "--host", "127.0.0.1", "--port", str(self.port), "--device", self.device]
        if self.continuous_batching:
            command.append("--continuous-batching")
        # Offline: a local model must never trigger a hub lookup; the hub cache dir must exist.
        cache = Path(tempfile.gettempdir()) / "aipo-hf-cache"
        cache.mkdir(exist_ok=True)
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), **self.environment}
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited with code {self._process.returncode}:\n{self._log_tail()}"
                )
            if self._healthy():
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"transformers serve did not answer within {self.startup_timeout_s:g} s:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 10 s). Safe to call twice."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> TransformersServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-characters:]


def _serve_command() -> list[str]:
    executable = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    if not Path(executable).exists():
        raise RuntimeError(
            "the `transformers` command is not installed; pip install 'aipo[serving]' "
            "(transformers with its serving extra)"
        )
    return [executable, "serve"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
