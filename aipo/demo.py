"""``aipo demo``: the capability-boundary experiment on CPU, warm-up -> GRPO vs AIPO -> evaluation alone.

For every seed:

1. **Warm-up.** The tiny model (:mod:`policies.tiny`) is trained by supervised learning on
   worked solutions of the *easy* arithmetic levels, a share of which consult the Reasoning
   agent (:mod:`aipo.demonstrations`). This fixes the capability boundary.
2. **RL.** From that checkpoint, each arm (``examples/demo_grpo.yaml``, ``examples/demo_aipo.yaml``)
   trains on the *hard* level with the same seed, problem stream and budget. The arms differ in
   ``loss.agent_mode`` only: GRPO masks the helpers' tokens, AIPO learns from them.
3. **Evaluation alone.** The warm-up model and every arm play held-out hard problems
   (``split="test"``) with consults off, ``samples`` times each: accuracy, pass@k, and how many
   problems the warm-up never solved (pass@n = 0) each model solves at least once.

Results go to ``output_dir``: ``demo.json`` (every number and setting), ``results.md`` (the
table), ``learning_curves.png`` and ``pass_at_k.png``; per-seed runs under ``seed-N/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from aipo.demo_config import DemoConfig, arm_config
from aipo.demonstrations import warmup_demonstrations
from algorithms.evaluation import EvalResult, evaluate
from algorithms.models import load_policy
from algorithms.run_log import read_metrics
from algorithms.sft import SFTSettings, supervised_warmup
from policies.hf import HFPolicy

ENV_ID = "aipo/Arithmetic-v0"
WARMUP = "warm-up"


class HeldOutCurve:
    """A trainer callback: held-out accuracy alone (consults off) every ``every`` steps.

    The evaluation runs under a forked torch random state seeded by ``(seed, step)``, so the
    training run is the same with or without the curve and every arm is measured alike.
    """

    def __init__(
        self, env_kwargs: Mapping[str, Any], problems: int, samples: int, every: int, seed: int = 0
    ) -> None:
        self.env_kwargs, self.problems, self.samples, self.every = dict(env_kwargs), problems, samples, every
        self.seed = seed
        self.points: list[dict[str, float]] = []

    def measure(self, policy: HFPolicy, step: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 100_003 + step)
            result = evaluate(
                policy, ENV_ID, self.env_kwargs, problems=range(self.problems), samples=self.samples,
                batch_size=256, progress=False,
            )  # fmt: skip
        self.points.append({"step": step, "accuracy": result.accuracy})

    def __call__(self, trainer: Any, metrics: dict[str, float]) -> None:
        if self.every and (trainer.step % self.every == 0 or trainer.step == trainer.config.steps):
            self.measure(trainer.policy, trainer.step)


def run_demo(config: DemoConfig, log: Any = print) -> dict[str, Any]:
    """Run the whole experiment as ``config`` says, write the outputs, return the results dict."""
    from aipo.demo_report import summarise_seeds, write_outputs

    torch.set_num_threads(config.threads)
    started, cpu_started = time.perf_counter(), time.process_time()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    seeds: dict[str, Any] = {}
    for seed in config.seeds:
        saved = config.output_dir / f"seed-{seed}" / "seed.json"
        if config.reuse_seeds and saved.is_file():
            log(f"== seed {seed}: results of an earlier run, {saved}")
            seeds[str(seed)] = json.loads(saved.read_text())
            continue
        log(f"== seed {seed}: warm-up on levels {config.warmup.levels}, then {', '.join(config.arms)}")
        seeds[str(seed)] = run_seed(config, seed, log)
        saved.write_text(json.dumps(seeds[str(seed)]))
    results = {
        "settings": settings_of(config),
        "seeds": seeds,
        "summary": summarise_seeds(seeds, [WARMUP, *config.arms]),
        "wall_seconds": time.perf_counter() - started,
        # CPU time tells what the run costs on an idle machine; wall time depends on the load.
        "cpu_seconds": time.process_time() - cpu_started,
    }
    write_outputs(results, config.output_dir)
    return results


def run_seed(config: DemoConfig, seed: int, log: Any = print) -> dict[str, Any]:
    """Warm-up, every arm and the evaluations for one seed."""
    warmup_dir = config.output_dir / f"seed-{seed}" / "warmup"
    started = time.perf_counter()
    first = arm_config(config, next(iter(config.arms)), seed, warmup_dir)
    hard = {**first.env.kwargs, "split": "test"}
    earlier = config.warmup_from / f"seed-{seed}" / "warmup" if config.warmup_from else None
    if earlier is not None and (earlier / "config.json").is_file():
        log(f"   reusing the warm-up model in {earlier}")
        warmup_dir, history = earlier, []
    else:
        history = warm_up(config, seed, warmup_dir, hard_level=hard["level"])
    easy = {**hard, "level": list(config.warmup.levels)}
    warm = _load(config, warmup_dir, first.rollout.max_new_tokens)
    out: dict[str, Any] = {
        WARMUP: {
            "sft_loss": [point["loss"] for point in history],
            "seconds": time.perf_counter() - started,
            "easy": _evaluate(config, warm, easy, config.eval.easy_problems, seed).accuracy,
        }
    }
    warm_result = _evaluate(config, warm, hard, config.eval.problems, seed)
    out[WARMUP].update(_numbers(warm_result, warm_result))
    log(f"   warm-up: easy accuracy {out[WARMUP]['easy']:.3f}, hard accuracy {warm_result.accuracy:.3f}")
    for arm in config.arms:
        started = time.perf_counter()
        train = arm_config(config, arm, seed, warmup_dir)
        curve = HeldOutCurve(
            hard, config.eval.curve_problems, config.eval.curve_samples, config.eval.curve_every
        )
        if config.eval.curve_every:
            curve.measure(warm, 0)
        from algorithms.trainer import Trainer

        Trainer(train, callbacks=[curve]).learn()
        policy = _load(config, train.output_dir / "final", train.rollout.max_new_tokens)
        result = _evaluate(config, policy, hard, config.eval.problems, seed)
        out[arm] = {
            **_numbers(result, warm_result),
            "curve": curve.points,
            "training": _training_log(train.output_dir / "metrics.jsonl"),
            "seconds": time.perf_counter() - started,
        }
        log(f"   {arm}: hard accuracy {result.accuracy:.3f} (alone), pass@{config.eval.samples} "
            f"{result.pass_at_k[config.eval.samples]:.3f}")  # fmt: skip
    return out


def warm_up(config: DemoConfig, seed: int, directory: Path, hard_level: Any) -> list[dict[str, float]]:
    """Supervised warm-up of ``config.model`` on the easy levels, saved into ``directory``.

    The model is the fresh tiny one (seeded by ``seed``) or a saved one to continue. Of the
    ``warmup.demonstrations`` episodes, ``round(hard_share * demonstrations)`` solve train-split
    problems of ``hard_level`` without consulting; the rest are the easy levels' demonstrations.
    """
    warmup = config.warmup
    env_kwargs = {"level": list(warmup.levels), "max_turns": 4, "max_consults": 3, "instructions": False}
    hard = round(warmup.hard_share * warmup.demonstrations)
    records = warmup_demonstrations(
        env_kwargs, warmup.demonstrations - hard, warmup.consult_share, seed=seed, style=warmup.consult_style
    )
    if hard:
        records += warmup_demonstrations({**env_kwargs, "level": hard_level}, hard, 0.0, seed=seed)
    model = config.model.model_copy(update={"tiny": config.model.tiny.model_copy(update={"seed": seed})})
    policy = load_policy(model, torch.device("cpu"))
    settings = SFTSettings(
        steps=warmup.steps, batch_size=warmup.batch_size, lr=warmup.lr, seed=seed, progress=config.progress
    )
    history = supervised_warmup(policy, records, settings)
    policy.save_pretrained(directory)
    provenance = {"started_from": model.name_or_path, "seed": seed, **config.warmup.model_dump(mode="json")}
    (directory / "warmup.yaml").write_text(yaml.safe_dump(provenance))
    return history


def settings_of(config: DemoConfig) -> dict[str, Any]:
    """The demo's settings and each arm's full train config (as run for the first seed)."""
    arms = {
        arm: arm_config(config, arm, config.seeds[0], config.output_dir / "seed-N" / "warmup").model_dump(
            mode="json"
        )
        for arm in config.arms
    }
    return {"demo": config.model_dump(mode="json"), "arms": arms, "torch": torch.__version__}


def _load(config: DemoConfig, path: Path, max_new_tokens: int) -> HFPolicy:
    model = config.model.model_copy(update={"name_or_path": str(path)})
    return load_policy(model, torch.device("cpu"), trainable=False, max_new_tokens=max_new_tokens)


def _evaluate(config: DemoConfig, policy: HFPolicy, env_kwargs: dict, problems: int, seed: int) -> EvalResult:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return evaluate(
            policy, ENV_ID, env_kwargs, problems=range(problems), samples=config.eval.samples,
            batch_size=config.eval.batch_size, progress=config.progress,
        )  # fmt: skip


def _numbers(result: EvalResult, warm: EvalResult) -> dict[str, Any]:
    """Accuracy, pass@k and the boundary count of one evaluation (``warm``: the warm-up's)."""
    outside = {p.index for p in warm.problems if p.correct == 0}
    solved_outside = sum(1 for p in result.problems if p.index in outside and p.correct > 0)
    return {
        "accuracy": result.accuracy,
        "pass_at_k": {str(k): value for k, value in result.pass_at_k.items()},
        "consults_attempted": result.consults_attempted,
        "outside_warmup": len(outside),
        "solved_outside_warmup": solved_outside,
        "per_problem_correct": [p.correct for p in result.problems],
    }


def _training_log(path: Path) -> list[dict[str, float]]:
    kept = ("rollout/reward", "rollout/accuracy", "rollout/consult_rate", "losses/agent_coef")
    rows = read_metrics(path)
    return [{"step": row["step"], **{name: row[name] for name in kept if name in row}} for row in rows]
