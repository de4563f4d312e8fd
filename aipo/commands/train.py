"""``aipo train CONFIG.yaml [key=value ...]``: GRPO / AIPO training from a typed config.

The command parses the config (:class:`algorithms.config.TrainConfig`), then runs
:class:`algorithms.trainer.Trainer`. Torch and transformers are imported only when it runs, so
the rest of the command line stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from aipo.bundled import config_path, existing_config
from aipo.errors import DEBUG_HELP, one_line_errors
from aipo_env.extras import require_extra


def split_arguments(arguments: list[str]) -> tuple[Path | None, list[str]]:
    """``[CONFIG.yaml] key=value ...`` -> (config path or None, overrides); a config that names no
    file here may name an installed example (:func:`aipo.bundled.config_path`)."""
    if arguments and "=" not in arguments[0]:
        return config_path(Path(arguments[0])), arguments[1:]
    return None, list(arguments)


def command(
    arguments: list[str] = typer.Argument(
        None,
        metavar="[CONFIG.yaml] [KEY=VALUE]...",
        help="A YAML config (see examples/) and dotted overrides, e.g. optim.lr=1e-4 loss.agent_mode=mask.",
    ),
    debug: bool = typer.Option(False, "--debug", help=DEBUG_HELP),
) -> None:
    """Train a policy with GRPO or AIPO (loss.agent_mode) on an aipo env; checkpoints and metrics go to output_dir."""
    require_extra("train", "aipo train")
    from transformers.utils import logging as transformers_logging

    from algorithms.config import ConfigError, TrainConfig, load_config
    from algorithms.trainer import Trainer

    transformers_logging.disable_progress_bar()  # one bar (training) is enough
    path, overrides = split_arguments(arguments or [])
    # Only setting up is guarded: an error while training is a bug, and its traceback is wanted.
    with one_line_errors(debug, ConfigError, OSError):
        config = load_config(TrainConfig, existing_config(path), overrides)
        trainer = Trainer(config)
    metrics = trainer.learn()
    if os.environ.get("RANK", "0") != "0":  # under torchrun / accelerate, rank 0 speaks for the job
        return
    summary = ", ".join(
        f"{name.split('/')[-1]} {metrics[name]:.3f}"
        for name in ("rollout/reward", "rollout/accuracy", "rollout/consult_rate")
        if name in metrics
    )
    typer.echo(f"done: {summary}; model in {config.output_dir / 'final'}, metrics in {config.output_dir}")
