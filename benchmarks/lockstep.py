"""Lock-step worker processes for side-by-side benchmarks on one (shared) machine.

Each framework runs in its own process, so that its peak memory is its own. The driver lets one
worker run a step while the others wait, rotating the order every step, so that all of them see
the same load. A worker prints ``READY`` and waits for ``go`` on stdin before each step, and
prints ``RESULT <json>`` at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Gate:
    """The worker's side: wait for ``go`` before each step; a step's time runs from ``go`` to its end."""

    def __init__(self) -> None:
        self.opened = 0.0
        self.step_s: list[float] = []

    def wait(self) -> None:
        print("READY", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("the driver went away")
        self.opened = time.perf_counter()

    def step_done(self) -> None:
        self.step_s.append(time.perf_counter() - self.opened)


class Worker:
    """The driver's side of one worker process: ``script --worker NAME *arguments``."""

    def __init__(self, script: str, name: str, arguments: Sequence[str], log_dir: Path, threads: int) -> None:
        self.name = name
        self.log = open(log_dir / f"{name}.log", "w")  # noqa: SIM115  (closed in finish)
        environment = os.environ | {"OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
        self.process = subprocess.Popen(
            [sys.executable, script, "--worker", name, *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=environment,
        )

    def expect(self, prefix: str) -> str:
        """Read stdout up to the next line that starts with ``prefix``; return the rest of it."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"the {self.name} worker stopped; see {self.log.name}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self) -> dict[str, Any]:
        self.go()
        result = json.loads(self.expect("RESULT "))
        self.process.wait()
        self.log.close()
        return result


def run_round(workers: dict[str, Worker], steps: int) -> dict[str, dict[str, Any]]:
    """``steps`` steps of every worker, one at a time (the order rotates each step); their results."""
    names = list(workers)
    for worker in workers.values():
        worker.expect("READY")
    for step in range(steps):
        turn = step % len(names)
        for name in names[turn:] + names[:turn]:
            workers[name].go()
            workers[name].expect("READY")
    return {name: worker.finish() for name, worker in workers.items()}
