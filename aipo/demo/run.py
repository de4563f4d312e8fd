"""``aipo demo``: the capability-boundary experiment on CPU, warm-up -> RL arms -> evaluation alone.

The default experiment (``examples/demo.yaml``) tests the claim where its mechanism can act: a
skill only the helpers show (:mod:`aipo_env.tasks.arithmetic_rule`: "double it" is written
``v + v``), a warm-up that lacks it, and a control proving the model can learn it from text.

For every seed:

1. **Warm-up.** The shipped model ``warmup:arithmetic`` (:mod:`policies.shipped`), trained once by
   supervised learning on worked solutions of the easy arithmetic levels, a share of which consult
   the Reasoning agent (:mod:`policies.demonstrations`). It adds and subtracts digits but has never
   seen "double it". ``warmup.source: fresh`` trains one per seed the same way instead, ``shared``
   one for every seed.
2. **Arms.** From that model, each arm trains with the same seed, problem stream and budget:
   RL arms are ``aipo train`` configs; the ``sft`` arm is the learnability control
   (:mod:`aipo.demo.control`).
3. **Evaluation alone.** The warm-up model and every arm play, with consults off and ``samples``
   times each, the whole held-out split (the first arm's env, ``split="test"``, recorded as
   ``settings.demo.eval_env``) and a shifted split (``eval.shifted``, e.g. 3 operations where
   training had 2: ``settings.demo.shifted_env``): accuracy, pass@k, and how many problems the
   warm-up never solved each model solves at least once. Across seeds, 95% bootstrap intervals of
   each model's accuracy and of AIPO's paired differences (:mod:`aipo.demo.intervals`) say which
   differences are distinguishable from 0. Learning curves (:mod:`aipo.demo.curve`) add the
   skill's key-token log-probs.

Results go to ``output_dir``: ``demo.json`` (every number and setting), ``results.md`` (the
tables), ``learning_curves.png`` and ``pass_at_k.png``; per-seed runs under ``seed-N/``, each
arm's final model in ``seed-N/ARM/final``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from aipo.demo.config import DemoConfig, arm_config, eval_env, eval_splits, rl_arms
from aipo.demo.curve import HeldOutCurve
from algorithms.evaluation import EvalResult, evaluate, spread_problems
from algorithms.models import load_policy, resolve_device
from algorithms.run_log import read_metrics
from algorithms.sft import SFTSettings, supervised_warmup
from policies.demonstrations import ARITHMETIC, warmup_demonstrations
from policies.hf import HFPolicy
from policies.shipped import PREFIX, resolve

WARMUP = "warm-up"


def run_demo(config: DemoConfig, log: Any = print) -> dict[str, Any]:
    """Run the whole experiment as ``config`` says, write the outputs, return the results dict."""
    from aipo.demo.intervals import split_intervals
    from aipo.demo.report import paired_differences, summarise_seeds, write_outputs

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
        log(f"== seed {seed}: {', '.join(config.arms)}")
        seeds[str(seed)] = run_seed(config, seed, log)
        saved.write_text(json.dumps(seeds[str(seed)]))
    results = {
        "settings": settings_of(config),
        "seeds": seeds,
        "summary": summarise_seeds(seeds, [WARMUP, *config.arms]),
        "paired": paired_differences(seeds, [WARMUP, *config.arms]),
        "intervals": split_intervals(seeds, [WARMUP, *config.arms], config.eval.bootstrap),
        "wall_seconds": time.perf_counter() - started,
        # CPU time tells what the run costs on an idle machine; wall time depends on the load.
        "cpu_seconds": time.process_time() - cpu_started,
        # per seed, as it was run (also for seeds reused from an earlier run)
        "seed_seconds": {seed: sum(run[model]["seconds"] for model in run) for seed, run in seeds.items()},
    }
    write_outputs(results, config.output_dir)
    return results


def run_seed(config: DemoConfig, seed: int, log: Any = print) -> dict[str, Any]:
    """Warm-up, every arm and the evaluations for one seed."""
    started = time.perf_counter()
    warmup_dir, history = warmup_model(config, seed, log)
    held_out = eval_env(config)
    easy = {**warmup_env_kwargs(config), "split": "test"}  # the warm-up's own levels, held out
    max_new = arm_config(config, rl_arms(config)[0], seed, warmup_dir).rollout.max_new_tokens
    warm = _load(config, warmup_dir, max_new)
    easy_problems = list(range(config.eval.easy_problems))
    out: dict[str, Any] = {
        WARMUP: {
            "sft_loss": [point["loss"] for point in history],
            "easy": _evaluate(config, warm, {"id": ARITHMETIC, "kwargs": easy}, easy_problems, seed).accuracy,
        }
    }
    numbers, warm_results = evaluate_alone(config, warm, seed)
    out[WARMUP].update(numbers)
    curve_start = _curve(config, held_out, seed)
    if config.eval.curve_every:
        curve_start.measure(warm, 0)
    out[WARMUP]["curve"] = curve_start.points
    out[WARMUP]["seconds"] = time.perf_counter() - started  # the warm-up and its evaluations
    log(f"   warm-up: easy accuracy {out[WARMUP]['easy']:.3f}, {_accuracies(out[WARMUP])}")
    for arm in config.arms:
        out[arm] = run_arm(config, arm, seed, warmup_dir, curve_start.points, warm_results)
        log(f"   {arm}: {_accuracies(out[arm])} (alone), held-out pass@{config.eval.samples} "
            f"{out[arm]['pass_at_k'][str(config.eval.samples)]:.3f}")  # fmt: skip
    return out


def run_arm(
    config: DemoConfig,
    arm: str,
    seed: int,
    warmup_dir: Path | str,
    curve_start: list[dict[str, float]],
    warm_results: Mapping[str, EvalResult],
) -> dict[str, Any]:
    """Train arm ``arm`` for ``seed`` from the warm-up and evaluate it alone; its entry of ``seed.json``.

    ``warm_results``: the warm-up's evaluation per split (:func:`evaluate_alone`).
    """
    started = time.perf_counter()
    spec, held_out = config.arms[arm], eval_env(config)
    if spec.kind == "sft":
        from aipo.demo.control import helper_tokens, train_control

        matched = arm_config(config, spec.match, seed, warmup_dir)
        directory = config.output_dir / f"seed-{seed}" / arm
        tokens = helper_tokens(matched, spec.tokens)
        extra = train_control(
            matched, warmup_dir, tokens, spec.lr, spec.batch_size, directory, config.progress, spec.steps
        )
        final, extra["curve"], extra["training"] = directory / "final", [], []
    else:
        from algorithms.trainer import Trainer

        train = arm_config(config, arm, seed, warmup_dir)
        curve = _curve(config, held_out, seed)
        curve.points = list(curve_start)
        Trainer(train, callbacks=[curve]).learn()
        final = train.output_dir / "final"
        extra = {"curve": curve.points, "training": _training_log(train.output_dir / "metrics.jsonl")}
    max_new = arm_config(config, rl_arms(config)[0], seed, warmup_dir).rollout.max_new_tokens
    numbers, _ = evaluate_alone(config, _load(config, final, max_new), seed, warm_results)
    return {**numbers, **extra, "seconds": time.perf_counter() - started}


def evaluate_alone(
    config: DemoConfig, policy: HFPolicy, seed: int, warm: Mapping[str, EvalResult] | None = None
) -> tuple[dict[str, Any], dict[str, EvalResult]]:
    """``policy`` alone on every split of :func:`~aipo.demo.config.eval_splits`: its numbers and results.

    The held-out split's numbers (:func:`_numbers`) are the top level, the shifted split's are
    under ``"shifted"``. ``warm``: the warm-up's results per split (``None``: ``policy`` is it).
    """
    results = {
        name: _evaluate(config, policy, env, spread_problems(env["id"], env["kwargs"], problems), seed)
        for name, (env, problems) in eval_splits(config).items()
    }
    warm = warm or results
    numbers = _numbers(results["held_out"], warm["held_out"])
    if "shifted" in results:
        numbers["shifted"] = _numbers(results["shifted"], warm["shifted"])
    return numbers, results


def warmup_model(
    config: DemoConfig, seed: int, log: Any = print
) -> tuple[Path | str, list[dict[str, float]]]:
    """The warm-up model's directory for ``seed`` (shipped, reused or trained now) and its training loss."""
    if config.warmup.source == "shipped":
        log(f"   warm-up: the shipped model {PREFIX}{config.warmup.shipped}")
        return resolve(PREFIX + config.warmup.shipped), []
    shared = config.warmup.source == "shared"
    place = Path("warmup") if shared else Path(f"seed-{seed}") / "warmup"
    earlier_ones = [config.warmup_from / place] if config.warmup_from else []
    if shared:  # also reused when an earlier seed of this run (or a parallel one) saved it
        earlier_ones.append(config.output_dir / place)
    for earlier in earlier_ones:
        if (earlier / "config.json").is_file():
            log(f"   reusing the warm-up model in {earlier}")
            return earlier, []
    directory = config.output_dir / place
    held_out = eval_env(config)
    if config.warmup.hard_share > 0 and held_out["id"] != ARITHMETIC:
        raise ValueError(f"warmup.hard_share > 0 needs an {ARITHMETIC} evaluation, not {held_out['id']}")
    trained_with = config.warmup.shared_seed if shared else seed
    return directory, warm_up(config, trained_with, directory, hard_level=held_out["kwargs"].get("level"))


def _curve(config: DemoConfig, held_out: dict, seed: int) -> HeldOutCurve:
    return HeldOutCurve(
        held_out["id"], held_out["kwargs"], config.eval.curve_problems, config.eval.curve_samples,
        config.eval.curve_every, seed, config.eval.batch_size,
    )  # fmt: skip


def warm_up(config: DemoConfig, seed: int, directory: Path, hard_level: Any) -> list[dict[str, float]]:
    """Supervised warm-up of ``config.model`` on the easy levels, saved into ``directory``.

    The model is the fresh tiny one (seeded by ``seed``) or a saved one to continue. Of the
    ``warmup.demonstrations`` episodes, ``round(hard_share * demonstrations)`` solve train-split
    problems of ``hard_level`` without consulting; the rest are the easy levels' demonstrations.
    """
    warmup = config.warmup
    env_kwargs = warmup_env_kwargs(config)
    hard = round(warmup.hard_share * warmup.demonstrations)
    records = warmup_demonstrations(
        env_kwargs, warmup.demonstrations - hard, warmup.consult_share, seed=seed, style=warmup.consult_style
    )
    if hard:
        records += warmup_demonstrations({**env_kwargs, "level": hard_level}, hard, 0.0, seed=seed)
    model = config.model.model_copy(update={"tiny": config.model.tiny.model_copy(update={"seed": seed})})
    policy = load_policy(model, resolve_device(config.device))
    settings = SFTSettings(
        steps=warmup.steps, batch_size=warmup.batch_size, lr=warmup.lr, seed=seed, progress=config.progress
    )
    history = supervised_warmup(policy, records, settings)
    provenance = {"started_from": model.name_or_path, "seed": seed, **config.warmup.model_dump(mode="json")}
    save_whole(directory, lambda partial: _save_warmup(policy, provenance, partial))
    return history


def save_whole(directory: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(partial)`` into a sibling directory, then rename it to ``directory``: an interrupted
    save leaves no half-written model where a later run would reuse it. When ``directory`` appeared
    meanwhile (a parallel run's shared warm-up), that one is kept and this copy removed."""
    partial = directory.with_name(f"{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    try:
        partial.rename(directory)
    except OSError:
        if not (directory / "config.json").is_file():
            raise
        shutil.rmtree(partial)


def _save_warmup(policy: HFPolicy, provenance: dict[str, Any], directory: Path) -> None:
    policy.save_pretrained(directory)
    (directory / "warmup.yaml").write_text(yaml.safe_dump(provenance))


def warmup_env_kwargs(config: DemoConfig) -> dict[str, Any]:
    """The ``aipo/Arithmetic-v0`` keywords of the warm-up's demonstrations (its easy levels)."""
    return {"level": list(config.warmup.levels), "max_turns": 4, "max_consults": 3, "instructions": False}


def settings_of(config: DemoConfig) -> dict[str, Any]:
    """The demo's settings (with ``eval_env``) and each rl arm's full train config (as run for the first seed)."""
    arms = {
        arm: arm_config(config, arm, config.seeds[0], config.output_dir / "seed-N" / "warmup").model_dump(
            mode="json"
        )
        for arm in rl_arms(config)
    }
    splits = eval_splits(config)
    demo = {**config.model_dump(mode="json"), "eval_env": splits["held_out"][0]}
    if "shifted" in splits:
        demo["shifted_env"] = splits["shifted"][0]
    return {"demo": demo, "arms": arms, "torch": torch.__version__}


def _load(config: DemoConfig, path: Path, max_new_tokens: int) -> HFPolicy:
    model = config.model.model_copy(update={"name_or_path": str(path)})
    return load_policy(model, resolve_device(config.device), trainable=False, max_new_tokens=max_new_tokens)


def _evaluate(config: DemoConfig, policy: HFPolicy, env: dict, problems: list[int], seed: int) -> EvalResult:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return evaluate(
            policy, env["id"], env["kwargs"], problems=problems, samples=config.eval.samples,
            batch_size=config.eval.batch_size, progress=config.progress,
        )  # fmt: skip


def _accuracies(numbers: Mapping[str, Any]) -> str:
    shifted = numbers.get("shifted")
    return f"held-out accuracy {numbers['accuracy']:.3f}" + (
        f", shifted {shifted['accuracy']:.3f}" if shifted else ""
    )


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
        "problems": [p.index for p in result.problems],
        "per_problem_correct": [p.correct for p in result.problems],
    }


def _training_log(path: Path) -> list[dict[str, float]]:
    kept = (
        "rollout/reward", "rollout/accuracy", "rollout/sampled_accuracy", "rollout/consult_rate",
        "rollout/agent_tokens", "losses/agent_coef", "losses/agent_at_min", "charts/agent_tokens_learned",
    )  # fmt: skip
    rows = read_metrics(path)
    return [{"step": row["step"], **{name: row[name] for name in kept if name in row}} for row in rows]
