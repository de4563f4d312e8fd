"""Evaluation: the policy alone (consults off), accuracy and unbiased pass@k, JSON and a PNG curve.

Every problem is played ``n`` times. With ``c`` correct episodes out of ``n``, the unbiased
estimate of pass@k (the chance that at least one of ``k`` samples is correct; Chen et al., 2021) is

    pass@k = 1 - C(n - c, k) / C(n, k)          for k = 1..n,

averaged over problems; accuracy is the mean correctness of all episodes (equal to pass@1).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from math import comb
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm.auto import tqdm

import aipo_env  # noqa: F401  (registers the env ids)
from aipo_env.core import ConsultMode
from aipo_env.episode import EpisodeRecord
from algorithms.envs import make_envs
from algorithms.rollout import play
from policies.base import Policy


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct of ``n`` samples (formula in the module docstring)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def spread_problems(env_id: str, env_kwargs: Mapping[str, Any] | None, count: int | None) -> list[int]:
    """``count`` problem indices spread evenly over the env's ``N`` problems, or all ``N``.

    Index ``j`` is ``floor(j * N / count)`` for ``j = 0..count-1``, so a sample of a dataset
    enumerated in order (such as the rule task's, start by start) covers all of it; ``count``
    ``None`` or at least ``N`` gives ``0..N-1``.
    """
    env = gym.make(env_id, **dict(env_kwargs or {}))
    size = len(env.unwrapped.task)
    env.close()
    if count is None or count >= size:
        return list(range(size))
    return [j * size // count for j in range(count)]


@dataclass
class ProblemResult:
    """How one problem went: ``correct`` of ``samples`` episodes."""

    index: int
    id: str
    difficulty: Any
    samples: int
    correct: int
    mean_reward: float
    consults_attempted: float


@dataclass
class EvalResult:
    """The evaluation's summary and per-problem results.

    Attributes:
        accuracy: mean correctness over all episodes.
        pass_at_k: ``{k: pass@k}`` for ``k = 1..samples``.
        consults_attempted: mean consult requests per episode (unanswered when consults are off).
        accuracy_by_difficulty: accuracy per difficulty level, where the task has levels.
        problems: one :class:`ProblemResult` per problem.
        settings: what was evaluated (env, policy, samples, ...).
    """

    accuracy: float
    pass_at_k: dict[int, float]
    consults_attempted: float
    accuracy_by_difficulty: dict[str, float]
    problems: list[ProblemResult] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    policy: Policy,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    problems: Sequence[int],
    samples: int = 1,
    batch_size: int = 64,
    greedy: bool = False,
    progress: bool = True,
    consult: ConsultMode = "off",
) -> EvalResult:
    """Play every problem ``samples`` times with consults off and score the episodes.

    Args:
        policy: any policy; token policies are played as in training (see :func:`~algorithms.rollout.play`).
        env_id: a registered aipo id.
        env_kwargs: the env's keyword arguments; ``consult`` is set by the argument of that name.
        problems: dataset indices to evaluate.
        samples: episodes per problem (``n``).
        batch_size: episodes played at once (at least ``samples``).
        greedy: argmax decoding for token policies.
        progress: show a progress bar.
        consult: ``"off"`` (the default): the policy alone, its consults unanswered, the measure of
            what it learned; ``"agents"``: consults answered, accuracy with the helpers.
    """
    if samples < 1 or not problems:
        raise ValueError("evaluate needs samples >= 1 and at least one problem")
    kwargs = {**dict(env_kwargs or {}), "consult": consult}
    per_batch = max(1, batch_size // samples)
    envs = make_envs(env_id, kwargs, min(per_batch, len(problems)) * samples)
    task = envs[0].unwrapped.task
    results: list[ProblemResult] = []
    bar = tqdm(total=len(problems) * samples, desc="eval", unit="episode", disable=not progress)
    for start in range(0, len(problems), per_batch):
        chunk = [int(index) for index in problems[start : start + per_batch]]
        records = play(policy, envs, chunk, samples, greedy=greedy)
        for position, index in enumerate(chunk):
            group = records[position * samples : (position + 1) * samples]
            results.append(
                ProblemResult(
                    index=index,
                    id=group[0].problem_id,
                    difficulty=task.problem(index).difficulty,
                    samples=samples,
                    correct=sum(record.correct for record in group),
                    mean_reward=sum(record.reward for record in group) / samples,
                    consults_attempted=sum(_consults(record) for record in group) / samples,
                )
            )
        bar.update(len(chunk) * samples)
    bar.close()
    for env in envs:
        env.close()
    return summarise(results, {"env_id": env_id, "env_kwargs": kwargs, "samples": samples, "greedy": greedy})


def _consults(record: EpisodeRecord) -> int:
    """Consults an episode asked for: the unanswered ones (consults off) and the answered ones."""
    return record.unanswered_consults + sum(record.consults.values())


def summarise(results: Sequence[ProblemResult], settings: Mapping[str, Any]) -> EvalResult:
    """Accuracy, pass@k and per-difficulty accuracy of per-problem results."""
    samples = results[0].samples
    by_difficulty: dict[str, list[float]] = defaultdict(list)
    for result in results:
        if result.difficulty is not None:
            by_difficulty[str(result.difficulty)].append(result.correct / result.samples)
    return EvalResult(
        accuracy=sum(result.correct for result in results) / sum(result.samples for result in results),
        pass_at_k={
            k: sum(pass_at_k(r.samples, r.correct, k) for r in results) / len(results)
            for k in range(1, samples + 1)
        },
        consults_attempted=sum(result.consults_attempted for result in results) / len(results),
        accuracy_by_difficulty={
            level: sum(values) / len(values) for level, values in sorted(by_difficulty.items())
        },
        problems=list(results),
        settings=dict(settings),
    )


def write_result(result: EvalResult, directory: Path, title: str = "") -> tuple[Path, Path]:
    """Write ``eval.json`` and the pass@k curve ``pass_at_k.png`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "eval.json"
    json_path.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.5))
    ks = sorted(result.pass_at_k)
    axis.plot(ks, [result.pass_at_k[k] for k in ks], marker="o")
    axis.set_xlabel("k (samples per problem)")
    axis.set_ylabel("pass@k")
    axis.set_ylim(0, 1)
    axis.set_title(title or f"pass@k, consults off ({len(result.problems)} problems)")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    png_path = directory / "pass_at_k.png"
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return json_path, png_path
