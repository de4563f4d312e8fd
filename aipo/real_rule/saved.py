"""A finished real-model run's saved models: where they are and how to load them.

``aipo demo`` leaves ``demo.json`` (every setting and number), the warm-up (``warmup/`` when it is
shared by the seeds, else ``seed-N/warmup/``) and every arm's final model (``seed-N/ARM/final/``).
The diagnostics of :mod:`aipo.real_rule` measure those models again.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from algorithms.config import ModelConfig
from algorithms.models import load_policy
from policies.hf import HFPolicy

WARMUP = "warm-up"


def read_run(run: Path) -> dict[str, Any]:
    """The ``demo.json`` of the run in ``run``.

    Raises:
        ValueError: there is none (the run was not made or not finished there).
    """
    source = run / "demo.json"
    if not source.is_file():
        raise ValueError(f"{source} does not exist: run `aipo demo --config examples/real_rule.yaml` first")
    return json.loads(source.read_text())


def model_directories(run: Path, results: Mapping[str, Any]) -> dict[str, dict[str, Path]]:
    """Per seed of ``results`` (the run's ``demo.json``), the saved warm-up and every arm's final model.

    Raises:
        ValueError: naming the models that are not there.
    """
    shared = run / "warmup"
    found: dict[str, dict[str, Path]] = {}
    for seed in results["seeds"]:
        directory = run / f"seed-{seed}"
        found[seed] = {WARMUP: shared if (shared / "config.json").is_file() else directory / "warmup"}
        found[seed] |= {arm: directory / arm / "final" for arm in results["settings"]["demo"]["arms"]}
    missing = [str(path) for models in found.values() for path in models.values() if not path.is_dir()]
    if missing:
        raise ValueError(f"no saved model in {', '.join(missing)}: was the demo run to the end here?")
    return found


def load_saved(settings: Mapping[str, Any], path: Path, **generation: Any) -> HFPolicy:
    """The model saved in ``path``, on the CPU, as the run's ``settings.demo.model`` describes it.

    A directory of LoRA adapters (the control's) is put on the base its ``adapter_config.json``
    records (the warm-up), as the run's own evaluation loads it, not on the demo's starting model.
    """
    model = ModelConfig.model_validate({**settings["model"], "name_or_path": str(path)})
    return load_policy(model, torch.device("cpu"), trainable=False, **generation)


def summarise(
    per_seed: Mapping[str, Mapping[str, Mapping[str, float]]], keys: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per model and key of ``per_seed[seed][model][key]``, the mean and the standard deviation over
    seeds (0 for one seed)."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for model in next(iter(per_seed.values())):
        summary[model] = {}
        for key in keys:
            values = [seed[model][key] for seed in per_seed.values()]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[model][key] = {"mean": statistics.fmean(values), "std": spread}
    return summary


def report(
    run: Path, name: str, measure: Callable[[], dict[str, Any]], markdown: Callable[[Any], str]
) -> None:
    """A diagnostic's command: ``measure()``, then ``NAME.json`` and the table ``NAME.md`` beside the
    run's ``demo.json``, the table printed; a missing run or model exits with its one line."""
    try:
        measured = measure()
    except ValueError as error:
        raise SystemExit(str(error)) from None
    (run / f"{name}.json").write_text(json.dumps(measured, indent=1))
    table = markdown(measured)
    (run / f"{name}.md").write_text(table)
    print(table)
