"""``aipo bench consult``: classic RL algorithms learn *when to consult*, against fixed baselines.

Stable-Baselines3 PPO, A2C and DQN train on ``aipo/ConsultDecision-v0`` (the built-in arithmetic
chains, a noisy scripted solver, the reference helpers) at a few consult costs and seeds. Each
trained model and each fixed baseline (never consult, always consult, random, the threshold rule
of :class:`~aipo_env.decision.baselines.ThresholdRule`) is evaluated on the same held-out
episodes of the ``test`` split: accuracy, consults per episode and return, mean and spread over
seeds. The threshold rule is also swept over its threshold to draw the accuracy-vs-consults
frontier that a cost-aware policy should reach.

Outputs under ``--out`` (default ``results/bench_consult/``): ``results.json`` (configuration,
every run, the summary, the frontier), ``results.md`` (the table) and ``frontier.png``.

The SB3 settings depart from the library defaults only where a 20k-step budget needs it
(:data:`ALGORITHMS`): PPO and A2C update more often and keep a little entropy bonus; DQN starts
learning earlier, explores for 30% of training and updates its target network more often.
Training runs in ``workers`` processes with one torch thread each.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import typer
from pydantic import Field, ValidationError, field_validator
from tqdm.auto import tqdm

from aipo.bench_consult.report import write_markdown, write_plot
from aipo_env.decision import (
    AlwaysConsult,
    ConsultDecisionEnv,
    DecisionPolicy,
    NeverConsult,
    RandomDecision,
    ThresholdRule,
)
from aipo_env.extras import require_extra
from aipo_env.strict import Strict

Algorithm = Literal["ppo", "a2c", "dqn"]

#: SB3 class name and keyword arguments of each algorithm (see the module docstring)
ALGORITHMS: dict[str, tuple[str, dict[str, Any]]] = {
    "ppo": ("PPO", {"n_steps": 512, "batch_size": 64, "ent_coef": 0.01}),
    "a2c": ("A2C", {"n_steps": 16, "ent_coef": 0.01}),
    "dqn": (
        "DQN",
        {
            "learning_starts": 1000,
            "exploration_fraction": 0.3,
            "exploration_final_eps": 0.02,
            "target_update_interval": 250,
            "train_freq": 4,
            "gradient_steps": 2,
            "learning_rate": 5e-4,
            "batch_size": 64,
        },
    ),
}
BASELINES: tuple[str, ...] = ("never", "always", "random", "threshold")
_EVAL_SEED = 10_000


class ConsultBenchConfig(Strict):
    """Settings of the benchmark (the command line's options; ``--quick`` presets some).

    Attributes:
        costs: consult costs to compare (one reward unit per right answer).
        seeds: training and evaluation seeds per cost.
        timesteps: SB3 training steps per run.
        eval_episodes: held-out episodes per evaluation.
        algorithms: which SB3 algorithms to train.
        threshold: the threshold rule's confidence threshold.
        level: the arithmetic levels episodes are drawn from.
        max_consults: consults per episode.
        workers: processes that train in parallel.
        out: output directory.
    """

    costs: list[float] = Field(default=[0.02, 0.1, 0.3], min_length=1)
    seeds: int = Field(default=3, ge=1)
    timesteps: int = Field(default=20_000, ge=64)
    eval_episodes: int = Field(default=500, ge=1)
    algorithms: list[Algorithm] = Field(default=["ppo", "a2c", "dqn"])
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    level: tuple[int, int] = (1, 10)
    max_consults: int = Field(default=6, ge=1)
    workers: int = Field(default=2, ge=1)
    out: Path = Path("results/bench_consult")

    @field_validator("costs")
    @classmethod
    def _costs_not_negative(cls, costs: list[float]) -> list[float]:
        if any(cost < 0 for cost in costs):
            raise ValueError(f"consult costs must be >= 0, got {costs}")
        return costs

    @classmethod
    def preset(cls, quick: bool = False, **overrides: Any) -> ConsultBenchConfig:
        """The defaults, or the ``--quick`` preset (one cost, one seed, 1,500 steps), then overrides."""
        base: dict[str, Any] = (
            {"costs": [0.1], "seeds": 1, "timesteps": 1500, "eval_episodes": 50, "workers": 1}
            if quick
            else {}
        )
        return cls(**{**base, **overrides})

    def env(self, cost: float, split: str) -> ConsultDecisionEnv:
        """The decision env of one cost on the ``train`` or ``test`` split."""
        return ConsultDecisionEnv(
            consult_cost=cost, level=self.level, max_consults=self.max_consults, split=split
        )


@dataclass(frozen=True)
class Run:
    """One evaluated policy: a method at one cost and seed."""

    method: str
    cost: float
    seed: int
    accuracy: float
    consults: float
    ret: float
    train_seconds: float = 0.0


def evaluate(policy: Any, env: ConsultDecisionEnv, episodes: int, seed: int) -> tuple[float, float, float]:
    """``(accuracy, consults per episode, mean return)`` of a policy with SB3's ``predict``.

    Episode ``i`` is reset with seed ``10000 + 1000 * seed + i``, so every method of a seed meets
    the same problems and the same solver noise until their decisions differ.
    """
    correct = consults = total = 0.0
    for episode in range(episodes):
        observation, _ = env.reset(seed=_EVAL_SEED + 1000 * seed + episode)
        done, info = False, {}
        while not done:
            action, _ = policy.predict(observation, deterministic=True)
            observation, reward, done, _, info = env.step(int(action))
            total += reward
        correct += info["correct"]
        consults += sum(info["consults"].values())
    return correct / episodes, consults / episodes, total / episodes


def train_and_evaluate(config: ConsultBenchConfig, algorithm: str, cost: float, seed: int) -> Run:
    """Train one SB3 model on the ``train`` split and evaluate it on the ``test`` split."""
    import stable_baselines3
    import torch

    torch.set_num_threads(1)  # tiny networks: one thread per worker beats contention on a few cores
    class_name, kwargs = ALGORITHMS[algorithm]
    model_class = getattr(stable_baselines3, class_name)
    started = time.perf_counter()
    model = model_class("MlpPolicy", config.env(cost, "train"), seed=seed, device="cpu", verbose=0, **kwargs)
    model.learn(total_timesteps=config.timesteps)
    seconds = time.perf_counter() - started
    accuracy, consults, ret = evaluate(model, config.env(cost, "test"), config.eval_episodes, seed)
    return Run(algorithm, cost, seed, accuracy, consults, ret, seconds)


def baseline(name: str, config: ConsultBenchConfig, seed: int) -> DecisionPolicy:
    """A fresh fixed baseline by name."""
    policies = {
        "never": NeverConsult,
        "always": AlwaysConsult,
        "random": lambda: RandomDecision(seed),
        "threshold": lambda: ThresholdRule(config.threshold),
    }
    return policies[name]()


def run_benchmark(config: ConsultBenchConfig, progress: bool = True) -> dict[str, Any]:
    """Run every method at every cost and seed, write the outputs, and return the results."""
    started = time.perf_counter()
    jobs = [
        (algorithm, cost, seed)
        for algorithm in config.algorithms
        for cost in config.costs
        for seed in range(config.seeds)
    ]
    bar = tqdm(total=len(jobs) + 1, desc="bench consult", unit="run", disable=not progress)
    runs = [
        Run(
            name,
            cost,
            seed,
            *evaluate(baseline(name, config, seed), config.env(cost, "test"), config.eval_episodes, seed),
        )
        for name in BASELINES
        for cost in config.costs
        for seed in range(config.seeds)
    ]
    frontier = threshold_frontier(config)
    bar.update(1)
    if config.workers == 1:
        for job in jobs:
            runs.append(train_and_evaluate(config, *job))
            bar.update(1)
    else:
        with ProcessPoolExecutor(config.workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(train_and_evaluate, config, *job) for job in jobs]
            for future in as_completed(futures):
                runs.append(future.result())
                bar.update(1)
    bar.close()
    results = {
        "config": json.loads(config.model_dump_json()),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "summary": summarise(runs, [*BASELINES, *config.algorithms], config.costs),
        "frontier": frontier,
        "runs": [asdict(run) for run in runs],
    }
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_markdown(results, config.out / "results.md")
    write_plot(results, config.out / "frontier.png")
    return results


def threshold_frontier(config: ConsultBenchConfig, points: int = 11) -> list[dict[str, float]]:
    """The threshold rule swept from 0 (never consults) to 1: accuracy against consults."""
    env = config.env(0.0, "test")
    frontier = []
    for threshold in np.linspace(0.0, 1.0, points):
        accuracy, consults, _ = evaluate(ThresholdRule(float(threshold)), env, config.eval_episodes, 0)
        frontier.append({"threshold": round(float(threshold), 3), "accuracy": accuracy, "consults": consults})
    return frontier


def summarise(runs: list[Run], methods: list[str], costs: list[float]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of each metric, per cost and method."""
    rows = []
    for cost in costs:
        for method in methods:
            chosen = [run for run in runs if run.method == method and run.cost == cost]
            row: dict[str, Any] = {"cost": cost, "method": method, "seeds": len(chosen)}
            for metric in ("accuracy", "consults", "ret", "train_seconds"):
                values = np.array([getattr(run, metric) for run in chosen])
                row[metric] = {"mean": float(values.mean()), "std": float(values.std())}
            rows.append(row)
    return rows


def command(
    quick: bool = typer.Option(False, "--quick", help="One cost, one seed, 1,500 steps: a CI smoke run."),
    cost: list[float] = typer.Option(
        [], "--cost", help="A consult cost (repeatable). Default 0.02, 0.1, 0.3."
    ),
    algorithm: list[str] = typer.Option([], "--algorithm", help="ppo, a2c or dqn (repeatable). Default all."),
    seeds: int | None = typer.Option(None, help="Seeds per cost. Default 3."),
    timesteps: int | None = typer.Option(None, help="Training steps per run. Default 20000."),
    eval_episodes: int | None = typer.Option(None, help="Held-out episodes per evaluation. Default 500."),
    workers: int | None = typer.Option(None, help="Training processes. Default 2."),
    out: Path | None = typer.Option(None, help="Output directory. Default results/bench_consult."),
) -> None:
    """Train SB3 PPO, A2C and DQN to decide when to consult; compare with fixed baselines."""
    require_extra("sb3", "aipo bench consult")
    given = {
        "costs": cost or None,
        "algorithms": algorithm or None,
        "seeds": seeds,
        "timesteps": timesteps,
        "eval_episodes": eval_episodes,
        "workers": workers,
        "out": out,
    }
    try:
        config = ConsultBenchConfig.preset(
            quick, **{key: value for key, value in given.items() if value is not None}
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
        typer.secho(f"Bad benchmark settings: {problems}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    results = run_benchmark(config)
    typer.echo((config.out / "results.md").read_text(encoding="utf-8"))
    typer.echo(f"Wrote {config.out}/results.json, results.md, frontier.png in {results['wall_seconds']} s")
