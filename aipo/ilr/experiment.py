"""``aipo ilr [--quick]``: ILR co-training of two tiny models against each trained alone with GRPO.

For each seed, two tiny models are warmed up on worked solutions of the built-in arithmetic
family (:mod:`policies.demonstrations`, :mod:`algorithms.sft`) for different numbers of steps (a
strong and a weak model). From those two starts it
trains (a) each model alone with GRPO and (b) both together with ILR (:mod:`algorithms.ilr`), for
the same number of steps, problems per step and samples per problem; then it evaluates every
model alone (consults off) on the test split. Results go to ``output_dir``: ``results.json``,
``table.md`` and ``ilr.png``. Torch is imported only when the command runs.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import Field

from aipo_env.extras import require_extra
from aipo_env.strict import Strict

PLAYER_NAMES = ("strong", "weak")
CONDITIONS = ("warm-up", "GRPO alone", "ILR")


class ILRSettings(Strict):
    """Every option of the experiment (the defaults take about 10-15 minutes on 2 CPU cores)."""

    seeds: list[int] = Field([0, 1], min_length=1, description="One full experiment per seed.")
    level: int = Field(1, ge=1, le=10, description="Level of the built-in arithmetic family.")
    strong_warmup: int = Field(900, ge=0, description="Supervised warm-up steps of the strong model.")
    weak_warmup: int = Field(500, ge=0, description="Supervised warm-up steps of the weak model.")
    demonstrations: int = Field(512, ge=1, description="Worked solutions the warm-up learns from.")
    idea3_demonstrations: int = Field(
        0, ge=0, description="Idea3 games added to the warm-up (every turn the worked solution): the format."
    )
    steps: int = Field(20, ge=1, description="RL steps, the same for ILR and for each model alone.")
    problems_per_step: int = Field(8, ge=1)
    group_size: int = Field(4, ge=2, description="Samples per problem (GRPO group).")
    max_new_tokens: int = Field(40, ge=1, description="Most tokens per turn (ILR: per stage).")
    lr: float = Field(1e-4, gt=0, description="GRPO learning rate (1e-3 wrecked the warmed-up models).")
    calibrate: bool = Field(True, description="Perception-calibrated rewards in ILR.")
    validation_problems: int = Field(16, ge=0, description="IRT fit: validation problems (0 = no IRT).")
    validation_samples: int = Field(4, ge=1)
    irt_every: int = Field(5, ge=0, description="Refit IRT every N steps (0 = once).")
    eval_problems: int = Field(64, ge=1, description="Test problems per evaluation.")
    eval_samples: int = Field(4, ge=1, description="Samples per test problem (n of pass@k).")
    output_dir: Path = Path("results/ilr")
    progress: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> ILRSettings:
        """A seconds-long run that exercises every piece (for CI), not a measurement."""
        small = dict(
            seeds=[0], strong_warmup=4, weak_warmup=1, demonstrations=8, steps=1, problems_per_step=2, group_size=2,
            max_new_tokens=8, validation_problems=2, validation_samples=1, eval_problems=2, eval_samples=2,
        )  # fmt: skip
        return cls(**{**small, **overrides})


def run(settings: ILRSettings) -> dict[str, Any]:
    """Run every seed, write ``results.json``, ``table.md`` and ``ilr.png``; returns the results."""
    import torch

    from aipo.ilr.report import write_report

    # One thread: on a shared 2-core machine a second thread mostly waits (measured 20x slower).
    torch.set_num_threads(1)
    started = time.perf_counter()
    runs = {str(seed): _run_seed(settings, seed) for seed in settings.seeds}
    results = {
        "settings": settings.model_dump(mode="json"),
        "seeds": runs,
        "summary": _summary(runs),
        "wall_s": time.perf_counter() - started,
    }
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    (settings.output_dir / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, settings.output_dir)
    return results


def _run_seed(settings: ILRSettings, seed: int) -> dict[str, Any]:
    from algorithms.ilr.cotrain import CoTrainer
    from algorithms.sft import SFTSettings, supervised_warmup
    from algorithms.trainer import Trainer
    from policies.hf import HFPolicy

    out = settings.output_dir / f"seed-{seed}"
    demonstrations = _demonstrations(settings)
    warmed = {}
    for offset, (name, steps) in enumerate(
        zip(PLAYER_NAMES, (settings.strong_warmup, settings.weak_warmup), strict=True)
    ):
        policy = HFPolicy.from_pretrained(
            "tiny",
            device="cpu",
            max_new_tokens=settings.max_new_tokens,
            tiny_options={"seed": seed * 10 + offset},
        )
        if steps:
            sft = SFTSettings(steps=steps, batch_size=16, seed=seed * 10 + offset, progress=settings.progress)
            supervised_warmup(policy, demonstrations, sft)
        warmed[name] = policy
    result: dict[str, Any] = {name: {"warm-up": _evaluate(settings, warmed[name])} for name in PLAYER_NAMES}
    curves: dict[str, Any] = {}
    for name in PLAYER_NAMES:
        trainer = Trainer(
            _train_config(settings, seed, out / f"alone-{name}"), policy=copy.deepcopy(warmed[name])
        )
        history = [trainer.train_step() for _ in range(settings.steps)]
        trainer.log.close()
        result[name]["GRPO alone"] = _evaluate(settings, trainer.policy)
        curves[f"GRPO alone/{name}"] = [metrics["rollout/reward"] for metrics in history]
    trainers = [
        Trainer(_train_config(settings, seed, out / f"ilr-{name}"), policy=copy.deepcopy(warmed[name]))
        for name in PLAYER_NAMES
    ]
    cotrainer = CoTrainer(
        trainers,
        validation_env=("aipo/Arithmetic-v0", {"level": settings.level, "seed": 1, "max_turns": 1}),
        validation_problems=settings.validation_problems,
        validation_samples=settings.validation_samples,
        irt_every=settings.irt_every,
        calibrate=settings.calibrate,
    )
    history = cotrainer.learn(settings.steps, progress=settings.progress)
    for index, (name, trainer) in enumerate(zip(PLAYER_NAMES, trainers, strict=True)):
        trainer.log.close()
        result[name]["ILR"] = _evaluate(settings, trainer.policy)
        curves[f"ILR/{name}"] = [metrics[f"player_{index}/rollout/reward"] for metrics in history]
        curves[f"ILR share/{name}"] = [metrics[f"player_{index}/rollout/share_score"] for metrics in history]
        curves[f"ILR cooperate/{name}"] = [
            metrics[f"player_{index}/rollout/cooperate_fraction"] for metrics in history
        ]
    if cotrainer.irt is not None:
        result["irt"] = {
            "abilities": dict(zip(PLAYER_NAMES, cotrainer.irt.abilities.tolist(), strict=True)),
            "difficulty_by_level": {str(level): value for level, value in cotrainer.level_difficulty.items()},
        }
    result["curves"] = curves
    return result


def _demonstrations(settings: ILRSettings) -> list[Any]:
    """Worked solutions of training problems, played alone as evaluation will (consults off)."""
    import gymnasium as gym

    from policies.demonstrations import demonstrate

    count = settings.demonstrations
    env = gym.make("aipo/Arithmetic-v0", level=settings.level, max_turns=1, consult="off", size=count)
    records = [demonstrate(env, index) for index in range(count)]
    env.close()
    return records + _idea3_demonstrations(settings)


def _idea3_demonstrations(settings: ILRSettings) -> list[Any]:
    """Idea3 games in which both players write the worked solution at every stage (both records).

    They teach a small model the exchange's format only: to answer the problem afresh after the
    partner's text. Analysis by recomputation is our simplification, not ILR's.
    """
    from aipo_env.idea3 import PLAYERS, Idea3Env
    from aipo_env.tasks.arithmetic import ArithmeticTask
    from aipo_env.tasks.base import written_solution

    count = settings.idea3_demonstrations
    env = Idea3Env(ArithmeticTask(level=settings.level, size=max(count, 1), seed=2))
    records = []
    for index in range(count):
        modes = dict(zip(PLAYERS, ("cooperate", "compete")[:: 1 if index % 2 else -1], strict=True))
        env.reset(options={"index": index, "modes": modes})
        problem = env.problem
        assert problem is not None
        turn = written_solution(problem)
        infos: dict[str, Any] = {}
        for _stage in range(3):
            _, _, _, _, infos = env.step(dict.fromkeys(PLAYERS, turn))
        records += [infos[player]["episode"] for player in PLAYERS]
    return records


def _train_config(settings: ILRSettings, seed: int, output_dir: Path) -> Any:
    from algorithms.config import TrainConfig

    return TrainConfig.model_validate(
        {
            "env": {"kwargs": {"level": settings.level, "max_turns": 1, "consult": "off"}},
            "rollout": {
                "problems_per_step": settings.problems_per_step,
                "group_size": settings.group_size,
                "max_new_tokens": settings.max_new_tokens,
            },
            "loss": {"agent_mode": "mask"},
            "optim": {"lr": settings.lr, "micro_batch_size": 64},
            "steps": settings.steps,
            "seed": seed,
            "device": "cpu",
            "output_dir": str(output_dir),
            "progress": False,
        }
    )


def _evaluate(settings: ILRSettings, policy: Any) -> dict[str, Any]:
    from algorithms.evaluation import evaluate

    result = evaluate(
        policy,
        "aipo/Arithmetic-v0",
        {"level": settings.level, "split": "test", "max_turns": 1},
        problems=list(range(settings.eval_problems)),
        samples=settings.eval_samples,
        progress=False,
    )
    return {"accuracy": result.accuracy, "pass_at_k": {str(k): v for k, v in result.pass_at_k.items()}}


def _summary(runs: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and sample standard deviation over seeds of each model's accuracy per condition."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name in PLAYER_NAMES:
        summary[name] = {}
        for condition in CONDITIONS:
            values = [run[name][condition]["accuracy"] for run in runs.values()]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[name][condition] = {"mean": statistics.fmean(values), "std": spread, "n": len(values)}
    return summary


def command(
    quick: bool = typer.Option(
        False, "--quick", help="A seconds-long run of every piece (CI), not a measurement."
    ),
    seeds: str = typer.Option("", help="Comma-separated seeds (default 0,1; quick: 0)."),
    steps: int | None = typer.Option(None, help="RL steps for ILR and for each model alone."),
    idea3_warmup: int = typer.Option(0, help="Idea3 games added to both models' warm-up (the format)."),
    output_dir: Path = typer.Option(Path("results/ilr"), help="Where results.json, table.md and ilr.png go."),
) -> None:
    """ILR (two tiny models learning together) vs each model trained alone with GRPO, evaluated alone."""
    require_extra("train", "aipo ilr")
    from pydantic import ValidationError
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    overrides: dict[str, Any] = {"output_dir": output_dir, "idea3_demonstrations": idea3_warmup}
    try:
        if seeds:
            overrides["seeds"] = [int(part) for part in seeds.split(",") if part.strip()]
        if steps is not None:
            overrides["steps"] = steps
        settings = ILRSettings.quick(**overrides) if quick else ILRSettings(**overrides)
    except (ValueError, ValidationError) as error:
        typer.secho(f"error: {error} (seeds look like 0,1,2; steps >= 1)", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
    results = run(settings)
    typer.echo((settings.output_dir / "table.md").read_text())
    typer.echo(f"wall time {results['wall_s']:.0f} s; results in {settings.output_dir}")
