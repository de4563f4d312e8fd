"""Sandboxed executions per second for MBPP-sized programs, and the sandbox's cost over a bare run.

The programs are the MBPP rows' canonical solutions followed by their ``test_imports`` and
asserts, one program per row. Three ways of running them, each with ``--workers`` programs at
a time (threads that wait on processes):

* ``bare``: ``python -I -S main.py`` through :mod:`subprocess` in a fresh temporary directory,
  with no limits and no isolation (the floor);
* ``sandbox``: :meth:`Sandbox.run` on the same program (isolation, limits, scrubbed
  environment, process-group kill, clean-up);
* ``code task``: :meth:`CodeTask.score_many` on the canonical solution as a fenced response:
  what ``aipo/Code-v1`` does per final answer (the program answers the trusted judge's
  calls from the sandbox; the judge runs the asserts outside it).

Rows whose bare run takes longer than ``--max-seconds`` are left out of all three, so that one
slow algorithm does not stand in for the sandbox's cost; the report says how many. The three
ways take turns on chunks of ``--chunk`` programs, so that the load of a shared machine, which
drifts over seconds, weighs on all three alike.

    overhead per execution = median(sandbox latency) - median(bare latency)

The goal of the issue is at least 20 sandboxed executions per second on 2 cores.

Usage::

    python benchmarks/sandbox_throughput.py --data ../shared/data/mbpp_sanitized.jsonl --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aipo_env.sandbox import Limits, Sandbox
from aipo_env.tasks.code import code_task


@dataclass
class Timing:
    """One way of running the programs."""

    name: str
    latencies: list[float]
    seconds: float
    passed: int

    def row(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "name": self.name,
            "executions": len(self.latencies),
            "seconds": round(self.seconds, 3),
            "executions_per_second": round(len(self.latencies) / self.seconds, 2),
            "median_ms": round(1000 * statistics.median(ordered), 2),
            "p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 2),
            "passed": self.passed,
        }


def mbpp_program(row: dict[str, Any]) -> str:
    """The canonical solution, the test imports and the asserts, as one program."""
    return "\n".join([row["code"], *row.get("test_imports", []), *row["test_list"]]) + "\n"


def bare_run(source: str) -> bool:
    """Run ``source`` with the same interpreter and flags as the sandbox, and nothing else."""
    directory = tempfile.mkdtemp(prefix="aipo-bare-")
    try:
        Path(directory, "main.py").write_text(source, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-I", "-S", "main.py"], cwd=directory, capture_output=True, timeout=60
        )
        return done.returncode == 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def timed(name: str, items: list[Any], run: Callable[[Any], bool], workers: int) -> Timing:
    """Run ``run`` on every item, ``workers`` at a time, timing each call and the whole."""

    def one(item: Any) -> tuple[float, bool]:
        start = time.perf_counter()
        ok = run(item)
        return time.perf_counter() - start, ok

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(one, items))
    seconds = time.perf_counter() - start
    return Timing(name, [latency for latency, _ in outcomes], seconds, sum(ok for _, ok in outcomes))


def plot(timings: list[Timing], path: Path, workers: int) -> None:
    """Executions per second (bars) and per-execution latency (box plots) of each way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate, latency) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = [timing.name for timing in timings]
    rate.bar(names, [len(t.latencies) / t.seconds for t in timings], color=["grey", "tab:blue", "tab:green"])
    rate.axhline(20, color="red", linestyle="--", label="goal: 20/s")
    rate.set_ylabel(f"executions / s ({workers} workers)")
    rate.legend()
    latency.boxplot([[1000 * x for x in t.latencies] for t in timings], showfliers=False)
    latency.set_xticks(range(1, len(names) + 1), names)
    latency.set_ylabel("ms per execution")
    figure.suptitle("MBPP programs: bare subprocess vs sandbox vs code-task scoring")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mbpp_sanitized.jsonl"))
    parser.add_argument("--workers", type=int, default=2, help="programs run at a time")
    parser.add_argument("--limit", type=int, default=None, help="use the first N rows")
    parser.add_argument("--chunk", type=int, default=32, help="programs per turn of each way")
    parser.add_argument("--max-seconds", type=float, default=1.0, help="leave out rows slower than this bare")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/sandbox_throughput.json"))
    args = parser.parse_args(argv)
    if args.workers < 1 or args.chunk < 1:
        parser.error("--workers and --chunk must be at least 1")
    if not args.data.is_file():
        parser.error(f"{args.data}: no such file; pass --data the path of mbpp_sanitized.jsonl")

    rows = [json.loads(line) for line in args.data.open(encoding="utf-8") if line.strip()][: args.limit]
    programs = [mbpp_program(row) for row in rows]
    probe = timed("bare (probe)", programs, bare_run, args.workers)  # finds the slow rows
    kept = [i for i, latency in enumerate(probe.latencies) if latency <= args.max_seconds]
    programs = [programs[i] for i in kept]

    task = code_task("mbpp", data_path=str(args.data), limit=args.limit, workers=args.workers)
    sandbox = Sandbox(Limits(), workers=args.workers)
    isolation = sandbox.isolation.mode  # detect before timing
    problems = [task.problem(i) for i in kept]
    responses = [f"```python\n{problem.answer}\n```" for problem in problems]
    ways: list[tuple[str, list[Any], Callable[[Any], bool]]] = [
        ("bare", programs, bare_run),
        ("sandbox", programs, lambda source: sandbox.run(source).ok),
        ("code task", list(zip(problems, responses, strict=True)), lambda pair: task.score(*pair).correct),
    ]
    timings = [Timing(name, [], 0.0, 0) for name, _, _ in ways]
    for start in tqdm(range(0, len(programs), args.chunk), desc="chunks"):
        for timing, (name, items, run) in zip(timings, ways, strict=True):
            part = timed(name, items[start : start + args.chunk], run, args.workers)
            timing.latencies += part.latencies
            timing.seconds += part.seconds
            timing.passed += part.passed
    task.close()
    sandbox.close()

    bare, boxed = timings[0].row(), timings[1].row()
    overhead_ms = boxed["median_ms"] - bare["median_ms"]
    print(
        f"isolation: {isolation}, workers: {args.workers}, cpus: {os.cpu_count()}, programs: {len(programs)}"
    )
    print(f"left out {len(rows) - len(kept)} rows slower than {args.max_seconds:g} s bare")
    print(f"{'way':<11}{'runs':>6}{'runs/s':>9}{'median ms':>11}{'p90 ms':>9}{'passed':>8}")
    for timing in timings:
        row = timing.row()
        print(
            f"{row['name']:<11}{row['executions']:>6}{row['executions_per_second']:>9.1f}"
            f"{row['median_ms']:>11.1f}{row['p90_ms']:>9.1f}{row['passed']:>8}"
        )
    print(
        f"sandbox overhead: {overhead_ms:.1f} ms per execution (median), "
        f"{boxed['executions_per_second'] / bare['executions_per_second']:.2f}x the bare throughput"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "isolation": isolation,
        "workers": args.workers,
        "rows_left_out": len(rows) - len(kept),
        "overhead_ms_median": round(overhead_ms, 2),
        "results": [timing.row() for timing in timings],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(timings, args.out.with_suffix(".png"), args.workers)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
