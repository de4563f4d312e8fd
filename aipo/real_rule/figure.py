"""The real-model experiment's figure: accuracy alone with 95% intervals, and training accuracy per step.

    python -m aipo.real_rule.figure results/real_rule docs/real_rule_smollm2.png

Reads the ``demo.json`` that ``aipo demo --config examples/real_rule.yaml`` writes. Left: each
model's held-out accuracy alone (consults off) with its bootstrap interval over seeds and problems
(``intervals.held_out``, :mod:`aipo.demo.intervals`). Right: each rl arm's training accuracy of the
episodes the policy played itself (``rollout/sampled_accuracy``: reference episodes left out,
guided ones kept), mean over seeds, per step.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TRAINING = "rollout/sampled_accuracy"


def draw(results: Mapping[str, Any], path: Path) -> None:
    """Write the two-panel PNG of ``results`` (a ``demo.json``) to ``path``."""
    held_out = results.get("intervals", {}).get("held_out")
    if held_out is None:
        raise ValueError(
            "demo.json has no held-out intervals (intervals.held_out): was the demo run to the end?"
        )
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    models = list(held_out["models"])
    colors = {model: f"C{position}" for position, model in enumerate(models)}  # one colour per model
    for position, model in enumerate(models):
        accuracy = held_out["models"][model]["accuracy"]
        error = [[accuracy["estimate"] - accuracy["low"]], [accuracy["high"] - accuracy["estimate"]]]
        left.errorbar(position, accuracy["estimate"], yerr=error, fmt="o", capsize=4, color=colors[model])
    left.set_xticks(range(len(models)), models, rotation=30, ha="right")
    left.set_ylabel("accuracy alone")
    left.set_title(
        f"held-out: {held_out['problems']} problems x {held_out['samples']}, {held_out['seeds']} seeds"
    )
    for arm, curve in training_curves(results["seeds"]).items():
        right.plot(range(1, len(curve) + 1), curve, label=arm, color=colors.get(arm))
    right.set_xlabel("RL step")
    right.set_ylabel("own episodes correct")
    right.set_title("training accuracy (mean over seeds)")
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def training_curves(seeds: Mapping[str, Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per rl arm, the mean over seeds of ``rollout/sampled_accuracy`` at each step (steps all seeds reached)."""
    arms = [arm for arm, run in next(iter(seeds.values())).items() if run.get("training")]
    curves = {}
    for arm in arms:
        runs = [[row.get(TRAINING, 0.0) for row in seed[arm]["training"]] for seed in seeds.values()]
        steps = min(len(run) for run in runs)
        curves[arm] = [sum(run[step] for run in runs) / len(runs) for step in range(steps)]
    return curves


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m aipo.real_rule.figure RESULTS_DIR OUT.png")
    source = Path(argv[0]) / "demo.json"
    if not source.is_file():
        raise SystemExit(f"{source} does not exist: run `aipo demo --config examples/real_rule.yaml` first")
    draw(json.loads(source.read_text()), Path(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
