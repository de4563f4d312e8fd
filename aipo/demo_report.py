"""The demo's outputs: mean and spread over seeds, the markdown table, the plots, the summary.

Spread is the sample standard deviation over seeds (0 for one seed) and the per-seed values
are listed next to it, so nothing is hidden behind an average.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TABLE_KS = (1, 4, 16)


def mean_spread(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` of per-seed values (``std`` = sample std, 0 for one value)."""
    values = [float(value) for value in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": spread, "values": values}


def summarise_seeds(seeds: Mapping[str, Mapping[str, Any]], models: Sequence[str]) -> dict[str, Any]:
    """Per model: accuracy, pass@k for every k, and the boundary counts, each as :func:`mean_spread`."""
    summary: dict[str, Any] = {}
    for model in models:
        runs = [seed[model] for seed in seeds.values()]
        ks = sorted({int(k) for run in runs for k in run["pass_at_k"]})
        summary[model] = {
            "accuracy": mean_spread([run["accuracy"] for run in runs]),
            "pass_at_k": {str(k): mean_spread([run["pass_at_k"][str(k)] for run in runs]) for k in ks},
            "solved_outside_warmup": mean_spread([run["solved_outside_warmup"] for run in runs]),
            "outside_warmup": mean_spread([run["outside_warmup"] for run in runs]),
            "consults_attempted": mean_spread([run["consults_attempted"] for run in runs]),
        }
        if "easy" in runs[0]:
            summary[model]["easy_accuracy"] = mean_spread([run["easy"] for run in runs])
    return summary


def markdown_table(results: Mapping[str, Any]) -> str:
    """The results table: one row per model, mean ± std over seeds and the per-seed accuracies."""
    summary = results["summary"]
    n = max(int(k) for k in next(iter(summary.values()))["pass_at_k"])
    ks = [k for k in TABLE_KS if k < n] + [n]
    header = ["model", "accuracy alone", *[f"pass@{k}" for k in ks], "solved beyond warm-up", "per seed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, numbers in summary.items():
        cells = [model, _cell(numbers["accuracy"])]
        cells += [_cell(numbers["pass_at_k"][str(k)]) for k in ks]
        outside = numbers["outside_warmup"]["mean"]
        cells.append(f"{numbers['solved_outside_warmup']['mean']:.1f} of {outside:.1f}")
        cells.append(", ".join(f"{value:.3f}" for value in numbers["accuracy"]["values"]))
        lines.append("| " + " | ".join(cells) + " |")
    seeds = len(results["seeds"])
    demo = results["settings"]["demo"]
    lines.append("")
    lines.append(
        f"Held-out hard problems (test split), consults off: {demo['eval']['problems']} problems x "
        f'{demo["eval"]["samples"]} samples, mean ± std over {seeds} seed(s). "Solved beyond warm-up": '
        "problems the warm-up model never solved in any sample that the model solves at least once."
    )
    return "\n".join(lines) + "\n"


def write_outputs(results: Mapping[str, Any], directory: Path) -> dict[str, Path]:
    """Write ``demo.json``, ``results.md``, ``learning_curves.png`` and ``pass_at_k.png``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / "demo.json",
        "table": directory / "results.md",
        "curves": directory / "learning_curves.png",
        "pass_at_k": directory / "pass_at_k.png",
    }
    paths["json"].write_text(json.dumps(results, indent=1))
    paths["table"].write_text(markdown_table(results))
    plot_learning_curves(results, paths["curves"])
    plot_pass_at_k(results, paths["pass_at_k"])
    return paths


def plot_learning_curves(results: Mapping[str, Any], path: Path) -> None:
    """Held-out accuracy alone, training reward and consult rate per RL step, mean over seeds (band: min-max)."""
    plt = _pyplot()
    figure, (held_out, reward, consults) = plt.subplots(1, 3, figsize=(14, 3.8))
    arms = [model for model in results["summary"] if model != "warm-up"]
    for arm in arms:
        runs = [seed[arm] for seed in results["seeds"].values()]
        if runs[0]["curve"]:
            _band(held_out, [[p["step"] for p in run["curve"]] for run in runs],
                  [[p["accuracy"] for p in run["curve"]] for run in runs], arm)  # fmt: skip
        steps = [[row["step"] for row in run["training"]] for run in runs]
        for axis, name in ((reward, "rollout/reward"), (consults, "rollout/consult_rate")):
            _band(axis, steps, [[row.get(name, 0.0) for row in run["training"]] for run in runs], arm)
    held_out.set_title("held-out hard problems, consults off")
    held_out.set_ylabel("accuracy alone")
    reward.set_title("training episodes, consults on")
    reward.set_ylabel("reward")
    consults.set_title("training episodes that consult")
    consults.set_ylabel("consult rate")
    for axis in (held_out, reward, consults):
        axis.set_xlabel("RL step")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_pass_at_k(results: Mapping[str, Any], path: Path) -> None:
    """pass@k against k (log scale) for every model, mean over seeds with a ± std band."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for model, numbers in results["summary"].items():
        ks = sorted(int(k) for k in numbers["pass_at_k"])
        means = [numbers["pass_at_k"][str(k)]["mean"] for k in ks]
        spreads = [numbers["pass_at_k"][str(k)]["std"] for k in ks]
        axis.plot(ks, means, marker="o", markersize=3, label=model)
        axis.fill_between(ks, [m - s for m, s in zip(means, spreads, strict=True)], [m + s for m, s in zip(means, spreads, strict=True)],
                          alpha=0.2)  # fmt: skip
    axis.set_xscale("log", base=2)
    axis.set_xlabel("k (samples per problem)")
    axis.set_ylabel("pass@k, consults off")
    axis.set_ylim(0, 1)
    axis.set_title(f"held-out hard problems ({len(results['seeds'])} seed(s))")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def summary_text(results: Mapping[str, Any], paths: Mapping[str, Path]) -> str:
    """The one-screen summary printed at the end of ``aipo demo``."""
    lines = [markdown_table(results).rstrip(), ""]
    minutes, cpu = results["wall_seconds"] / 60, results.get("cpu_seconds", 0.0) / 60
    lines.append(f"wall time {minutes:.1f} min (CPU time {cpu:.1f} min)")
    lines += [f"  {name}: {path}" for name, path in paths.items()]
    return "\n".join(lines)


def _cell(numbers: Mapping[str, Any]) -> str:
    return f"{numbers['mean']:.3f} ± {numbers['std']:.3f}"


def _band(axis: Any, steps: list[list[int]], values: list[list[float]], label: str) -> None:
    length = min(len(run) for run in values)
    if length == 0:
        return
    columns = list(zip(*(run[:length] for run in values), strict=True))
    means = [sum(column) / len(column) for column in columns]
    (line,) = axis.plot(steps[0][:length], means, label=label)
    if len(values) > 1:
        axis.fill_between(steps[0][:length], [min(c) for c in columns], [max(c) for c in columns],
                          color=line.get_color(), alpha=0.2)  # fmt: skip


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
