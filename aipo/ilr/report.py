"""The table and plot of ``aipo ilr``: accuracy alone per model and condition, training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONDITIONS = ("warm-up", "GRPO alone", "ILR")


def table(results: dict[str, Any]) -> str:
    """A Markdown table: accuracy (pass@1) alone, mean ± std over seeds, and the per-seed values."""
    runs = results["seeds"]
    settings = results["settings"]
    lines = [
        f"ILR vs GRPO alone: arithmetic level {settings['level']}, {settings['steps']} RL steps x "
        f"{settings['problems_per_step']} problems x {settings['group_size']} samples; accuracy alone "
        f"(consults off) on {settings['eval_problems']} test problems x {settings['eval_samples']} samples; "
        f"seeds {settings['seeds']}",
        "",
        "| model | " + " | ".join(CONDITIONS) + " |",
        "|---|" + "---|" * len(CONDITIONS),
    ]
    for name, conditions in results["summary"].items():
        cells = []
        for condition in CONDITIONS:
            stats = conditions[condition]
            per_seed = ", ".join(f"{run[name][condition]['accuracy']:.3f}" for run in runs.values())
            cells.append(f"{stats['mean']:.3f} ± {stats['std']:.3f} ({per_seed})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], directory: Path) -> None:
    """Write ``table.md`` and ``ilr.png`` into ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (directory / "table.md").write_text(table(results))
    runs = list(results["seeds"].values())
    names = list(results["summary"])
    figure, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(CONDITIONS)
    for position, condition in enumerate(CONDITIONS):
        xs = [index + (position - 1) * width for index in range(len(names))]
        means = [results["summary"][name][condition]["mean"] for name in names]
        bars.bar(xs, means, width, label=condition)
        for x, name in zip(xs, names, strict=True):
            bars.scatter([x] * len(runs), [run[name][condition]["accuracy"] for run in runs], color="k", s=8)
    bars.set_xticks(range(len(names)), names)
    bars.set_ylabel("accuracy alone (pass@1)")
    bars.set_ylim(0, 1)
    bars.set_title("final models, evaluated alone (dots: seeds)")
    bars.legend(fontsize=8)
    colours = dict(zip(names, ("tab:blue", "tab:red"), strict=False))
    for key in runs[0]["curves"]:
        condition, _, name = key.partition("/")
        if condition in ("GRPO alone", "ILR"):
            series = [run["curves"][key] for run in runs]
            mean = [sum(values) / len(values) for values in zip(*series, strict=True)]
            style = "-" if condition == "ILR" else "--"
            curves.plot(range(1, len(mean) + 1), mean, style, color=colours.get(name), label=key)
    curves.set_xlabel("RL step")
    curves.set_ylabel("training reward (ILR: fused answer, raw)")
    curves.set_ylim(0, 1)
    curves.set_title("training reward, mean over seeds")
    curves.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(directory / "ilr.png", dpi=100)
    plt.close(figure)
