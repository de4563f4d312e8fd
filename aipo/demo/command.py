"""``aipo demo [--quick] [--seeds ...] [--warmup fresh] [--task rule|arithmetic] [--ablation] [--scripted]``.

The command-line face of :mod:`aipo.demo`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aipo_env.extras import require_extra


def command(
    overrides: list[str] = typer.Argument(
        None, metavar="[KEY=VALUE]...", help="Overrides, e.g. warmup.steps=500."
    ),
    quick: bool = typer.Option(False, "--quick", help="The same pipeline on a small budget (< 2 minutes)."),
    config: Path | None = typer.Option(None, "--config", help="A demo YAML (default examples/demo.yaml)."),
    task: str = typer.Option(
        "rule",
        "--task",
        help="rule: the skill only the helpers show (examples/demo.yaml); arithmetic: the earlier "
        "multiplication experiment (examples/demo_arithmetic.yaml).",
    ),
    warmup: str = typer.Option(
        "shipped", "--warmup", help="shipped: start from the shipped warm-up; fresh: retrain it per seed."
    ),
    seeds: list[int] = typer.Option(None, "--seeds", help="Seeds to run, one after another (repeatable)."),
    ablation: bool = typer.Option(
        False,
        "--ablation",
        help="Run the AIPO arm under every helper-token mode (mask, raw, luffy, aipo, own_voice) instead.",
    ),
    scripted: bool = typer.Option(False, "--scripted", help="Only play one scripted consulting episode."),
    level: int = typer.Option(4, help="--scripted: difficulty level of the episode."),
) -> None:
    """The capability-boundary experiment: a skill only the helpers show, GRPO / AIPO / AIPO in the policy's own voice / trajectory guidance / a supervised control, evaluation alone.

    Writes output_dir (results/demo/: demo.json, results.md, learning_curves.png, pass_at_k.png) and prints
    a summary.
    """
    if scripted:
        from aipo.commands.play import show_scripted_episode

        show_scripted_episode(level)
        return
    require_extra("train", "aipo demo")
    from transformers.utils import logging as transformers_logging

    from aipo.bundled import config_path
    from aipo.demo.config import AGENT_MODES, EXAMPLES, ablation_config, load_demo_config
    from aipo.demo.report import summary_text
    from aipo.demo.run import run_demo
    from algorithms.config import ConfigError

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    tasks = {"rule": "demo.yaml", "arithmetic": "demo_arithmetic.yaml"}
    if task not in tasks or warmup not in ("shipped", "fresh"):
        typer.secho(
            f"error: --task takes {' or '.join(tasks)} (got {task!r}); --warmup takes shipped or fresh "
            f"(got {warmup!r})",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=2)
    if task != "rule" and (quick or config):
        typer.secho(
            "error: --task picks a demo YAML; it cannot be combined with --quick or --config",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=2)
    path = config_path(config) if config else EXAMPLES / ("demo_quick.yaml" if quick else tasks[task])
    extra = list(overrides or []) + ([f"seeds={list(seeds)}"] if seeds else [])
    extra += [f"warmup.source={warmup}"] if warmup == "fresh" else []
    try:
        demo = load_demo_config(path, extra)
        if ablation:
            demo = ablation_config(demo, list(AGENT_MODES))
    except (ConfigError, ValueError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
    results = run_demo(demo, log=typer.echo)
    directory = demo.output_dir
    paths = {
        name: directory / name for name in ("demo.json", "results.md", "learning_curves.png", "pass_at_k.png")
    }
    typer.echo(summary_text(results, paths))
