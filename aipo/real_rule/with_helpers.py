"""The real-model experiment with the helpers answering: what each saved model does with them.

    python -m aipo.real_rule.with_helpers results/real_rule

The run's evaluation again (its held-out problems, samples, sampling seed per seed, token limit),
for the warm-up and every arm's final model, but with consults answered (``consult="agents"``,
:func:`algorithms.evaluation.evaluate`) as in training. Beside accuracy alone (the run's own
numbers, consults unanswered) it tells a model that learned the skill from one that learned to
lean on the helpers: the second gains much with them and loses much without. Per model: accuracy
alone, accuracy with the helpers and consults per episode with them, mean ± std over seeds.
Writes ``with_helpers.json`` and ``with_helpers.md`` beside the run's ``demo.json``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from aipo.real_rule.saved import load_saved, model_directories, read_run, report, summarise
from algorithms.evaluation import evaluate, spread_problems

KEYS = ("alone", "with_helpers", "consults")


def measure(run: Path) -> dict[str, Any]:
    """Every saved model of the run in ``run`` with the helpers answering (module docstring)."""
    results = read_run(run)
    settings = results["settings"]["demo"]
    env, evaluation = settings["eval_env"], settings["eval"]
    problems = spread_problems(env["id"], env["kwargs"], evaluation["problems"])
    max_new_tokens = next(iter(results["settings"]["arms"].values()))["rollout"]["max_new_tokens"]
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    for seed, models in model_directories(run, results).items():
        per_seed[seed] = {}
        for name, path in models.items():
            policy = load_saved(settings, path, max_new_tokens=max_new_tokens)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))  # as the run's own evaluation of this seed
                helped = evaluate(
                    policy, env["id"], env["kwargs"], problems=problems, samples=evaluation["samples"],
                    batch_size=evaluation["batch_size"], progress=False, consult="agents",
                )  # fmt: skip
            alone = results["seeds"][seed][name]["accuracy"]
            per_seed[seed][name] = {
                "alone": alone,
                "with_helpers": helped.accuracy,
                "consults": helped.consults_attempted,
            }
    summary = summarise(per_seed, KEYS)
    return {
        "problems": len(problems),
        "samples": evaluation["samples"],
        "seeds": per_seed,
        "summary": summary,
    }


def markdown(measured: Mapping[str, Any]) -> str:
    """The table of :func:`measure`'s summary, one row per model."""
    rows = [
        "| model | accuracy alone | accuracy with the helpers | consults per episode with them |",
        "|---|---|---|---|",
    ]
    for name, numbers in measured["summary"].items():
        cells = [f"{numbers[key]['mean']:.3f} ± {numbers[key]['std']:.3f}" for key in KEYS]
        rows.append(f"| {name} | {' | '.join(cells)} |")
    rows.append(
        f"\nHeld-out problems of the run's evaluation ({measured['problems']} x {measured['samples']} "
        f"samples), mean ± std over {len(measured['seeds'])} seed(s); alone: the run's own numbers "
        "(consults unanswered); with the helpers: consults answered (aipo/real_rule/with_helpers.py)."
    )
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m aipo.real_rule.with_helpers RESULTS_DIR")
    run = Path(argv[0])
    report(run, "with_helpers", lambda: measure(run), markdown)


if __name__ == "__main__":
    main(sys.argv[1:])
