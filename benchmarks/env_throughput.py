"""Offline env throughput, and how much of an episode the env itself costs next to the verifier.

An episode is: ``reset(options={"index": i})``, one consult of the reference Verify agent about
the reference answer (``<consult agent="verify">Is \\boxed{answer} right?</consult>``), then the
final response (the reference solution, or its steps and the boxed answer), scored. Problems are
taken in dataset order, cycling.

Every call of the task's ``score`` is timed; the Verify agent judges the candidate answer with
``task.score`` too, so both calls count as verifier time:

    env share = (episode time - time inside task.score) / episode time

The issue's goal is an env share under 5% on MATH-500, where math-verify does the scoring.

Usage::

    python benchmarks/env_throughput.py --data ../shared/data/math500.jsonl --episodes 1000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm import tqdm

import aipo_env  # noqa: F401  (registers the ids)
from aipo_env.tasks.base import Problem, Score, Task


@dataclass
class Result:
    """Throughput of one env on one kind of episode."""

    env: str
    episodes: int
    seconds: float
    verifier_seconds: float
    correct: int

    @property
    def episodes_per_second(self) -> float:
        return self.episodes / self.seconds

    @property
    def env_share(self) -> float:
        """Share of episode time spent outside ``task.score``."""
        return (self.seconds - self.verifier_seconds) / self.seconds

    def row(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "episodes_per_second": round(self.episodes_per_second, 2),
            "ms_per_episode": round(1000 * self.seconds / self.episodes, 3),
            "env_ms_per_episode": round(1000 * (self.seconds - self.verifier_seconds) / self.episodes, 3),
            "env_share": round(self.env_share, 4),
        }


class ScoreTimer:
    """Wraps ``task.score`` on the task instance and adds up the seconds spent inside it."""

    def __init__(self, task: Task) -> None:
        self.seconds = 0.0
        self._score: Callable[[Problem, str], Score] = task.score
        task.score = self._timed  # type: ignore[method-assign]

    def _timed(self, problem: Problem, response: str) -> Score:
        start = time.perf_counter()
        try:
            return self._score(problem, response)
        finally:
            self.seconds += time.perf_counter() - start


def final_response(problem: Problem, solution: str | None) -> str:
    """The reference solution, or the reference steps followed by the boxed answer."""
    if solution is not None:
        return solution
    return "\n".join(problem.steps) + f"\nSo the answer is \\boxed{{{problem.answer}}}."


def run_episodes(env_id: str, episodes: int, solutions: list[str] | None, **make_kwargs: Any) -> Result:
    """Play ``episodes`` offline episodes and time them (see the module docstring)."""
    env = gym.make(env_id, agents="reference", **make_kwargs)
    task = env.unwrapped.task
    size = len(task)
    timer = ScoreTimer(task)
    correct = 0
    start = time.perf_counter()
    for episode in tqdm(range(episodes), desc=env_id, unit="ep", leave=False):
        index = episode % size
        env.reset(options={"index": index})
        problem = env.unwrapped.problem  # the env's own copy: generating it again would be timed too
        env.step(f'<consult agent="verify">Is \\boxed{{{problem.answer}}} right?</consult>')
        _, _, terminated, _, info = env.step(
            final_response(problem, None if solutions is None else solutions[index])
        )
        assert terminated, "the final response must end the episode"
        correct += bool(info["correct"])
    seconds = time.perf_counter() - start
    env.close()
    return Result(env_id, episodes, seconds, timer.seconds, correct)


def plot(results: list[Result], path: Path) -> None:
    """Stacked bars: milliseconds per episode inside the verifier and in the env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [result.env for result in results]
    verifier = [1000 * result.verifier_seconds / result.episodes for result in results]
    env = [1000 * (result.seconds - result.verifier_seconds) / result.episodes for result in results]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.bar(labels, verifier, label="task.score (verifier)")
    axes.bar(labels, env, bottom=verifier, label="env (reset, step, agents)")
    for position, result in enumerate(results):
        axes.annotate(
            f"env {100 * result.env_share:.1f}%",
            (position, verifier[position] + env[position]),
            ha="center",
            va="bottom",
        )
    axes.set_ylim(top=1.15 * max(v + e for v, e in zip(verifier, env, strict=True)))
    axes.set_ylabel("ms per episode")
    axes.set_title("Offline episode time (reset, one verify consult, final answer)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/math500.jsonl"),
        help="MATH-500 JSONL file (fields problem, solution, answer)",
    )
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per env")
    parser.add_argument("--arithmetic-level", type=int, nargs=2, default=(1, 10), metavar=("LOW", "HIGH"))
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/env_throughput.json"))
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    if not args.data.is_file():
        parser.error(f"{args.data}: no such file; pass --data the path of math500.jsonl")

    solutions = [json.loads(line)["solution"] for line in args.data.open(encoding="utf-8") if line.strip()]
    results = [
        run_episodes("aipo/Math-v0", args.episodes, solutions, dataset="math500", data_path=str(args.data)),
        run_episodes("aipo/Arithmetic-v0", args.episodes, None, level=tuple(args.arithmetic_level)),
    ]
    header = (
        f"{'env':<22}{'episodes':>9}{'ep/s':>10}{'ms/ep':>9}{'env ms/ep':>11}{'env share':>11}{'correct':>9}"
    )
    print(header)
    for result in results:
        row = result.row()
        print(
            f"{result.env:<22}{result.episodes:>9}{row['episodes_per_second']:>10.1f}{row['ms_per_episode']:>9.2f}"
            f"{row['env_ms_per_episode']:>11.3f}{100 * result.env_share:>10.2f}%{result.correct:>9}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "results": [result.row() for result in results],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
