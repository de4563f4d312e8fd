"""The table and the frontier plot of ``aipo bench consult`` (see :mod:`aipo.bench_consult.benchmark`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_LABELS = {
    "never": "never consult",
    "always": "always consult",
    "random": "random",
    "threshold": "threshold rule",
    "ppo": "PPO",
    "a2c": "A2C",
    "dqn": "DQN",
}


def _cell(stat: dict[str, float], digits: int = 3) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """One table: every method at every cost, mean ± std over seeds; the best return in bold."""
    config = results["config"]
    lines = [
        "# When to consult: SB3 algorithms against fixed baselines",
        "",
        f"`aipo/ConsultDecision-v0`, levels {config['level'][0]}-{config['level'][1]}, "
        f"{config['max_consults']} consults per episode; {config['timesteps']} training steps per run, "
        f"{config['seeds']} seed(s), {config['eval_episodes']} held-out episodes per evaluation; "
        f"wall time {results['wall_seconds']} s.",
        "",
        "| cost | method | accuracy | consults / episode | return | train s |",
        "|-----:|--------|---------:|-------------------:|-------:|--------:|",
    ]
    for cost in config["costs"]:
        rows = [row for row in results["summary"] if row["cost"] == cost]
        best = max(row["ret"]["mean"] for row in rows)
        for row in rows:
            ret = _cell(row["ret"])
            if row["ret"]["mean"] == best:
                ret = f"**{ret}**"
            train = _cell(row["train_seconds"], 1) if row["train_seconds"]["mean"] else "-"
            lines.append(
                f"| {cost:g} | {_LABELS.get(row['method'], row['method'])} | {_cell(row['accuracy'])} | "
                f"{_cell(row['consults'], 2)} | {ret} | {train} |"
            )
    lines += ["", "Threshold rule swept (accuracy against consults, cost-free):", ""]
    lines += ["| threshold | accuracy | consults / episode |", "|---:|---:|---:|"]
    lines += [
        f"| {p['threshold']:g} | {p['accuracy']:.3f} | {p['consults']:.2f} |" for p in results["frontier"]
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plot(results: dict[str, Any], path: Path) -> None:
    """Accuracy against consults per episode, one panel per cost, with the threshold-rule frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = results["config"]["costs"]
    figure, axes = plt.subplots(1, len(costs), figsize=(4.6 * len(costs), 5.0), sharey=True, squeeze=False)
    frontier = results["frontier"]
    for axis, cost in zip(axes[0], costs, strict=True):
        axis.plot(
            [p["consults"] for p in frontier],
            [p["accuracy"] for p in frontier],
            color="0.6",
            linestyle="--",
            marker=".",
            label="threshold rule, swept",
        )
        for row in (row for row in results["summary"] if row["cost"] == cost):
            axis.errorbar(
                row["consults"]["mean"],
                row["accuracy"]["mean"],
                xerr=row["consults"]["std"],
                yerr=row["accuracy"]["std"],
                fmt="o",
                capsize=3,
                label=f"{_LABELS.get(row['method'], row['method'])} (return {row['ret']['mean']:.2f})",
            )
        axis.set_title(f"consult cost {cost:g}")
        axis.set_xlabel("consults per episode")
        axis.grid(alpha=0.3)
        axis.legend(
            fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2
        )  # below: no point hidden
    axes[0][0].set_ylabel("accuracy")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
