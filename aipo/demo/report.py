"""The demo's outputs: mean and spread over seeds, the markdown tables, the plots, the summary.

Spread is the sample standard deviation over seeds (0 for one seed) and the per-seed values
are listed next to it, so nothing is hidden behind an average. The paired table compares AIPO
with each other model seed by seed (same seed, same problems):

    d_s = m_s(aipo) - m_s(baseline),   reported as mean ± std of d and #{s : d_s > 0}

for m = the accuracy alone and m = pass@n (n samples per problem: the boundary). The 95% bootstrap
intervals over seeds and problems, and which differences they distinguish from 0, are
:mod:`aipo.demo.intervals`'s.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aipo.demo.intervals import PAIRED_WITH, interval_tables

TABLE_KS = (4, 16)  # pass@1 is the accuracy alone


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


def paired_differences(
    seeds: Mapping[str, Mapping[str, Any]], models: Sequence[str], arm: str = PAIRED_WITH
) -> dict[str, Any]:
    """Per baseline: the per-seed differences ``arm - baseline`` (:func:`mean_spread`) and how many are > 0.

    The top level is the accuracy's; ``pass_at_n`` is the same for pass@n (``n`` = samples per
    problem, the boundary).
    """
    if arm not in models:
        return {}
    runs = list(seeds.values())
    n = str(max(int(k) for k in runs[0][arm]["pass_at_k"]))
    paired = {}
    for baseline in models:
        if baseline == arm:
            continue
        accuracy = [run[arm]["accuracy"] - run[baseline]["accuracy"] for run in runs]
        boundary = [run[arm]["pass_at_k"][n] - run[baseline]["pass_at_k"][n] for run in runs]
        paired[baseline] = {
            **_paired(accuracy),
            "pass_at_n": {**_paired(boundary), "n": int(n)},
        }
    return paired


def _paired(differences: list[float]) -> dict[str, Any]:
    return {**mean_spread(differences), "positive": sum(d > 0 for d in differences)}


def paired_table(results: Mapping[str, Any]) -> str:
    """The paired differences as markdown (empty without an ``aipo`` arm)."""
    paired = results.get("paired") or {}
    if not paired:
        return ""
    seeds = len(results["seeds"])
    n = next(iter(paired.values()))["pass_at_n"]["n"]
    lines = [
        f"| {PAIRED_WITH} − baseline | accuracy difference | seeds ahead | pass@{n} difference | seeds ahead |",
        "|---|---|---|---|---|",
    ]
    for name, row in paired.items():
        boundary = row["pass_at_n"]
        lines.append(
            f"| {PAIRED_WITH} − {name} | {_cell(row)} | {row['positive']} of {seeds} | {_cell(boundary)} | "
            f"{boundary['positive']} of {seeds} |"
        )
    return "\n".join(lines) + "\n"


def markdown_table(results: Mapping[str, Any]) -> str:
    """The results table: one row per model, mean ± std over seeds and the per-seed accuracies."""
    summary = results["summary"]
    n = max(int(k) for k in next(iter(summary.values()))["pass_at_k"])
    ks = [k for k in TABLE_KS if k < n] + [n]  # n: pass@n, the boundary
    header = [
        "model",
        "accuracy alone",
        *[f"pass@{k}" for k in ks],
        "solved beyond warm-up",
        "accuracy per seed",
    ]
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
    held_out = demo.get("eval_env", {}).get("id", "the arms' env")
    first = next(iter(results["seeds"].values()))
    problems = len(next(iter(first.values()))["per_problem_correct"])
    lines.append(
        f"Held-out problems of {held_out} (test split), consults off: {problems} problems x "
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
    tables = [markdown_table(results), interval_tables(results), paired_table(results)]
    paths["table"].write_text("\n".join(table for table in tables if table))
    plot_learning_curves(results, paths["curves"])
    plot_pass_at_k(results, paths["pass_at_k"])
    return paths


#: the learning-curve panels: (title, y label, where the value is: "curve" or "training", its key)
PANELS = (
    ("held-out problems, consults off", "accuracy alone", "curve", "accuracy"),
    ("key tokens, written alone", "log p(v + v) (nats)", "curve", "key_logprob_alone"),
    ("key tokens, inside a helper reply", "log p(v + v) (nats)", "curve", "key_logprob_in_reply"),
    ("training episodes that consult", "consult rate", "training", "rollout/consult_rate"),
    ("helper tokens learned per step", "tokens", "training", "charts/agent_tokens_learned"),
    ("learned helper tokens at c_min", "share", "training", "losses/agent_at_min"),
)


def plot_learning_curves(results: Mapping[str, Any], path: Path) -> None:
    """Every panel of :data:`PANELS` per RL step, mean over seeds (band: min-max); empty panels are left out."""
    plt = _pyplot()
    arms = [model for model in results["summary"] if model != "warm-up"]
    runs = {arm: [seed[arm] for seed in results["seeds"].values()] for arm in arms}
    shown = [
        panel for panel in PANELS
        if any(row.get(panel[3]) is not None for arm in arms for run in runs[arm] for row in run.get(panel[2], []))
    ]  # fmt: skip
    columns = min(3, max(len(shown), 1))
    rows = -(-max(len(shown), 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.6 * rows), squeeze=False)
    for axis, (title, label, where, key) in zip(axes.flat, shown, strict=False):
        for arm in arms:
            points = [[row for row in run.get(where, []) if key in row] for run in runs[arm]]
            if all(points):
                _band(axis, [[row["step"] for row in run] for run in points],
                      [[row[key] for row in run] for run in points], arm, _color(results, arm))  # fmt: skip
        axis.set_title(title)
        axis.set_ylabel(label)
        axis.set_xlabel("RL step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(shown) :]:
        axis.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
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
        color = _color(results, model)
        axis.plot(ks, means, marker="o", markersize=3, label=model, color=color)
        axis.fill_between(ks, [m - s for m, s in zip(means, spreads, strict=True)], [m + s for m, s in zip(means, spreads, strict=True)],
                          alpha=0.2, color=color)  # fmt: skip
    axis.set_xscale("log", base=2)
    axis.set_xlabel("k (samples per problem)")
    axis.set_ylabel("pass@k, consults off")
    axis.set_ylim(0, 1)
    axis.set_title(f"held-out problems ({len(results['seeds'])} seed(s))")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def summary_text(results: Mapping[str, Any], paths: Mapping[str, Path]) -> str:
    """The one-screen summary printed at the end of ``aipo demo``."""
    lines = []
    for table in (markdown_table(results), interval_tables(results), paired_table(results)):
        if table:
            lines += [table.rstrip(), ""]
    minutes, cpu = results["wall_seconds"] / 60, results.get("cpu_seconds", 0.0) / 60
    lines.append(f"wall time {minutes:.1f} min (CPU time {cpu:.1f} min)")
    per_seed = results.get("seed_seconds", {})
    if per_seed:
        lines.append(
            "per seed, as run: " + ", ".join(f"seed {s} {t / 60:.1f} min" for s, t in per_seed.items())
        )
    lines += [f"  {name}: {path}" for name, path in paths.items()]
    return "\n".join(lines)


def _cell(numbers: Mapping[str, Any]) -> str:
    return f"{numbers['mean']:.3f} ± {numbers['std']:.3f}"


def _color(results: Mapping[str, Any], model: str) -> str:
    """One colour per model, the same in every plot."""
    return f"C{list(results['summary']).index(model) % 10}"


def _band(axis: Any, steps: list[list[int]], values: list[list[float]], label: str, color: str) -> None:
    length = min(len(run) for run in values)
    if length == 0:
        return
    columns = list(zip(*(run[:length] for run in values), strict=True))
    means = [sum(column) / len(column) for column in columns]
    axis.plot(steps[0][:length], means, label=label, color=color)
    if len(values) > 1:
        axis.fill_between(steps[0][:length], [min(c) for c in columns], [max(c) for c in columns],
                          color=color, alpha=0.2)  # fmt: skip


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
