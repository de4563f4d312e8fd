"""The demo's 95% intervals: each model's accuracy and pass@n, and AIPO's paired differences, per split.

For each split (``held_out``, ``shifted``) and model, the seeds' per-problem results form a
seeds x problems table, with ``c_si`` of the ``n`` samples of problem ``i`` correct in seed ``s``:

    accuracy:  x[s, i] = c_si / n          pass@n:  x[s, i] = 1 if c_si > 0 else 0

:func:`algorithms.bootstrap.bootstrap_mean` gives each model's interval and
:func:`algorithms.bootstrap.paired_difference` the interval of ``aipo - baseline``, resampling
both on the same seeds and problems. A difference is "distinguishable from 0" when its interval
excludes 0. Each interval answers one comparison on its own: among the several of a report, one
may exclude 0 by chance. The resampling seed is fixed, so the same results give the same report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from algorithms.bootstrap import Interval, bootstrap_mean, paired_difference

CONFIDENCE = 0.95
RESAMPLING_SEED = 0
PAIRED_WITH = "aipo"
SPLITS = {"held_out": "held-out", "shifted": "shifted"}
_METRICS = ("accuracy", "pass_at_n")
DISTINGUISHABLE, NOT_DISTINGUISHABLE = "distinguishable from 0", "not distinguishable"


def split_intervals(
    seeds: Mapping[str, Mapping[str, Any]], models: Sequence[str], resamples: int = 10_000
) -> dict[str, Any]:
    """Per split: each model's accuracy and pass@n intervals and the paired ``aipo - model`` ones.

    A split is left out when a seed has no results for it (e.g. seeds reused from a run without
    a shifted split), and listed under ``"skipped"`` when its runs played different problems or
    sample counts (seeds reused from a run with other settings): they cannot be paired.
    """
    out: dict[str, Any] = {"confidence": CONFIDENCE, "resamples": resamples, "seed": RESAMPLING_SEED}
    for split in SPLITS:
        runs = {model: [_split_run(seed[model], split) for seed in seeds.values()] for model in models}
        if any(run is None for model_runs in runs.values() for run in model_runs):
            continue
        played = _played(runs)
        if played is None:
            out.setdefault("skipped", {})[split] = "the runs played different problems or samples"
            continue
        problems, samples = played
        tables = {model: _tables(model_runs, samples) for model, model_runs in runs.items()}
        numbers: dict[str, Any] = {"problems": problems, "samples": samples, "seeds": len(seeds)}
        numbers["models"] = {
            model: {metric: _plain(bootstrap_mean(table, resamples, CONFIDENCE, RESAMPLING_SEED))
                    for metric, table in metrics.items()}
            for model, metrics in tables.items()
        }  # fmt: skip
        if PAIRED_WITH in models:
            numbers["paired"] = {
                model: {
                    metric: _verdict(paired_difference(tables[PAIRED_WITH][metric], table, resamples,
                                                       CONFIDENCE, RESAMPLING_SEED))
                    for metric, table in metrics.items()
                }
                for model, metrics in tables.items()
                if model != PAIRED_WITH
            }  # fmt: skip
        out[split] = numbers
    return out


def interval_tables(results: Mapping[str, Any]) -> str:
    """The intervals as markdown: one table of every model, one of AIPO's paired differences per split."""
    intervals = results.get("intervals") or {}
    splits = [split for split in SPLITS if split in intervals]
    if not splits:
        return ""
    n = intervals[splits[0]]["samples"]
    header = ["model"] + [
        f"{SPLITS[split]} {metric}" for split in splits for metric in ("accuracy", f"pass@{n}")
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in intervals[splits[0]]["models"]:
        cells = [_value(intervals[split]["models"][model][metric]) for split in splits for metric in _METRICS]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", _description(results, splits)]
    for split in splits:
        paired = intervals[split].get("paired")
        if not paired:
            continue
        lines += [
            "",
            f"| {PAIRED_WITH} − baseline, {SPLITS[split]} | accuracy difference | | pass@{n} difference | |",
            "|---|---|---|---|---|",
        ]
        for model, row in paired.items():
            cells = [
                cell for metric in _METRICS for cell in (_difference(row[metric]), row[metric]["verdict"])
            ]
            lines.append(f"| {PAIRED_WITH} − {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _split_run(run: Mapping[str, Any], split: str) -> Mapping[str, Any] | None:
    return run if split == "held_out" else run.get(split)


def _tables(runs: Sequence[Mapping[str, Any]], samples: int) -> dict[str, list[list[float]]]:
    """``{"accuracy": x, "pass_at_n": x}``, each ``x[s][i]`` as in the module docstring."""
    return {
        "accuracy": [[c / samples for c in run["per_problem_correct"]] for run in runs],
        "pass_at_n": [[float(c > 0) for c in run["per_problem_correct"]] for run in runs],
    }


def _played(runs: Mapping[str, list[Mapping[str, Any]]]) -> tuple[int, int] | None:
    """The split's problem and sample counts when every run played the same problems, else ``None``."""
    played = {
        (tuple(run.get("problems") or range(len(run["per_problem_correct"]))), max(int(k) for k in run["pass_at_k"]))
        for model_runs in runs.values()
        for run in model_runs
    }  # fmt: skip
    if len(played) != 1:
        return None
    problems, samples = played.pop()
    return len(problems), samples


def _plain(interval: Interval) -> dict[str, float]:
    return {"estimate": interval.estimate, "low": interval.low, "high": interval.high}


def _verdict(interval: Interval) -> dict[str, Any]:
    verdict = DISTINGUISHABLE if interval.excludes_zero else NOT_DISTINGUISHABLE
    return {**_plain(interval), "distinguishable": interval.excludes_zero, "verdict": verdict}


def _value(numbers: Mapping[str, float]) -> str:
    return f"{numbers['estimate']:.3f} [{numbers['low']:.3f}, {numbers['high']:.3f}]"


def _difference(numbers: Mapping[str, float]) -> str:
    return f"{numbers['estimate']:+.3f} [{numbers['low']:+.3f}, {numbers['high']:+.3f}]"


def _description(results: Mapping[str, Any], splits: Sequence[str]) -> str:
    intervals, demo = results["intervals"], results["settings"]["demo"]
    envs = {"held_out": demo.get("eval_env", {}), "shifted": demo.get("shifted_env", {})}
    parts = []
    for split in splits:
        env, numbers = envs[split], intervals[split]
        changed = demo["eval"].get("shifted") if split == "shifted" else None
        where = f"{env.get('id', 'the arms env')} test split"
        if changed:
            where += " with " + ", ".join(f"{key}={value}" for key, value in changed.items())
        parts.append(
            f"{SPLITS[split]}: {numbers['problems']} problems of {where} x {numbers['samples']} samples"
        )
    seeds = intervals[splits[0]]["seeds"]
    return (
        f"Mean and {CONFIDENCE:.0%} bootstrap interval over {seeds} seed(s) and the problems, consults off "
        f"({'; '.join(parts)}; {intervals['resamples']:,} resamples of seeds and problems together, "
        f"algorithms/bootstrap.py). A paired difference resamples both models on the same seeds and "
        f'problems; "{DISTINGUISHABLE}": its interval excludes 0 (each comparison on its own).'
    )
