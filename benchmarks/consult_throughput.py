"""Consults per second through the OpenAI-compatible backend against a local `transformers serve`.

Builds the tiny chat model (or takes ``--model``), starts ``transformers serve`` on 127.0.0.1 once
per server mode, and sends ``--consults`` distinct Verify consults through an ``OpenAIAgent``
with ``max_concurrency`` 1 and 8 (cache off), ``Agent.reply_batch`` in chunks of
``4 * concurrency``. It reports consults per second per level and the ratio rate(8) / rate(1).

Each rate is the median of ``--repeats`` runs. The server runs with ``--server-threads`` torch
threads (default 1): on a small shared CPU, a tiny model's OpenMP threads fight the client for the
cores and the rates swing tenfold from run to run; one thread keeps them steady.

Server modes: ``plain`` is ``transformers serve`` as it starts by default (one generate call at
a time, so concurrency only overlaps the HTTP and tokenisation work); ``cb`` adds
``--continuous-batching`` (the server batches concurrent requests).

    python benchmarks/consult_throughput.py                  # both modes, tiny model
    python benchmarks/consult_throughput.py --modes plain --consults 64

Writes ``results/benchmarks/consult_throughput.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib
from tqdm import tqdm

from aipo_env.agents import AgentConfig
from aipo_env.agents.base import ConsultRequest
from aipo_env.agents.local_server import TransformersServer
from aipo_env.agents.openai_backend import OpenAIAgent
from aipo_env.episode import Segment
from aipo_env.tasks.arithmetic import ArithmeticTask
from policies.tiny_chat import save_tiny_chat_model

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

LEVELS = (1, 8)


def requests(count: int) -> list[ConsultRequest]:
    """``count`` distinct Verify consults on arithmetic problems."""
    task = ArithmeticTask(level=4)
    made = []
    for number in range(count):
        problem = task.problem(number)
        segments = (Segment("prompt", None, task.prompt(problem)), Segment("policy", None, "Let me check."))
        made.append(ConsultRequest("verify", f"Is step {number} right?", problem, task, segments))
    return made


def measure(
    base_url: str, model: str, concurrency: int, consults: int, max_tokens: int, repeats: int, label: str
) -> float:
    """Consults per second with ``concurrency`` requests in flight (median of ``repeats`` runs)."""
    config = AgentConfig.model_validate(
        {
            "backend": {
                "kind": "openai",
                "base_url": base_url,
                "model": model,
                "max_concurrency": concurrency,
            },
            "sampling": {"max_tokens": max_tokens},
            "cache": False,
        }
    )
    agent = OpenAIAgent("verify", config)
    agent.reply_batch(requests(8))  # warm-up: client import, connections, the server's first generate calls
    batch = requests(consults)
    chunk = 4 * concurrency
    rates = []
    with tqdm(
        total=consults * repeats, desc=f"{label} concurrency {concurrency}", unit="consult"
    ) as progress:
        for _ in range(repeats):
            start = time.perf_counter()
            for offset in range(0, consults, chunk):
                replies = agent.reply_batch(batch[offset : offset + chunk])
                failed = [reply.error for reply in replies if not reply.ok]
                if failed:
                    raise RuntimeError(f"{len(failed)} consults failed, e.g. {failed[0]}")
                progress.update(len(replies))
            rates.append(consults / (time.perf_counter() - start))
    agent.close()
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model directory to serve (default: build the tiny chat model)")
    parser.add_argument("--modes", default="plain,cb", help="comma-separated server modes: plain, cb")
    parser.add_argument("--consults", type=int, default=64, help="consults per concurrency level")
    parser.add_argument("--max-tokens", type=int, default=32, help="reply length in tokens")
    parser.add_argument("--repeats", type=int, default=3, help="runs per level; the median is reported")
    parser.add_argument("--server-threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    arguments = parser.parse_args()
    modes = [mode.strip() for mode in arguments.modes.split(",") if mode.strip()]
    unknown = set(modes) - {"plain", "cb"}
    if arguments.consults < 1 or arguments.repeats < 1 or arguments.server_threads < 1:
        parser.error("--consults, --repeats and --server-threads must be at least 1")
    if unknown or not modes:
        parser.error(f"--modes takes plain and/or cb, got {arguments.modes!r}")

    with tempfile.TemporaryDirectory() as scratch:
        model = arguments.model or str(save_tiny_chat_model(Path(scratch) / "tiny"))
        results: dict[str, dict[str, float]] = {}
        for mode in modes:
            threads = {"OMP_NUM_THREADS": str(arguments.server_threads)}
            with TransformersServer(model, continuous_batching=mode == "cb", environment=threads) as server:
                rates = {
                    level: measure(
                        server.base_url,
                        model,
                        level,
                        arguments.consults,
                        arguments.max_tokens,
                        arguments.repeats,
                        mode,
                    )
                    for level in LEVELS
                }
            results[mode] = {f"concurrency_{level}": rate for level, rate in rates.items()}
            results[mode]["ratio"] = rates[LEVELS[1]] / rates[LEVELS[0]]

    report = {
        "benchmark": "consult_throughput",
        "model": arguments.model or "tiny chat model (policies.tiny_chat.save_tiny_chat_model)",
        "consults_per_level": arguments.consults,
        "max_tokens": arguments.max_tokens,
        "repeats": arguments.repeats,
        "server_threads": arguments.server_threads,
        "consults_per_second": results,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "consult_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, arguments.out / "consult_throughput.png")
    for mode, rates in results.items():
        print(
            f"{mode:>5}: {rates['concurrency_1']:.1f} consults/s at concurrency 1, "
            f"{rates['concurrency_8']:.1f} at 8, ratio {rates['ratio']:.2f}"
        )
    print(f"wrote {arguments.out / 'consult_throughput.json'} and .png")


def plot(results: dict[str, dict[str, float]], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(5, 3.5))
    width = 0.8 / len(results)
    for offset, (mode, rates) in enumerate(results.items()):
        values = [rates[f"concurrency_{level}"] for level in LEVELS]
        positions = [index + offset * width for index in range(len(LEVELS))]
        bars = axes.bar(positions, values, width, label=f"{mode} (ratio {rates['ratio']:.1f}x)")
        axes.bar_label(bars, fmt="%.1f", fontsize=8)
    axes.set_xticks([index + width * (len(results) - 1) / 2 for index in range(len(LEVELS))])
    axes.set_xticklabels([f"concurrency {level}" for level in LEVELS])
    axes.set_ylabel("consults per second")
    axes.set_title("Consults through transformers serve (tiny model, CPU)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
