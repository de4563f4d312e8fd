"""``aipo eval [CONFIG.yaml] [key=value ...]``: accuracy and pass@k of a policy reasoning alone.

Evaluates a trained model (``model.name_or_path=runs/x/final``) or a scripted baseline
(``policy=never_consult``, ``consult_first:reasoning``, ``random``) with consults off, and writes
``eval.json`` and ``pass_at_k.png`` into ``output_dir``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from aipo.train import split_arguments

if TYPE_CHECKING:
    from algorithms.config import EvalConfig
    from algorithms.evaluation import EvalResult
    from policies.base import Policy

BASELINES = ("never_consult", "consult_first:AGENT", "random")


def build_policy(config: EvalConfig) -> Policy:
    """The model, or the scripted baseline that ``config.policy`` names."""
    from policies import ConsultFirst, NeverConsult, RandomPolicy

    name, _, agent = config.policy.partition(":")
    if name == "model":
        from algorithms.models import load_policy, resolve_device

        settings = {"max_new_tokens": config.max_new_tokens, "temperature": config.temperature}
        return load_policy(config.model, resolve_device(config.device), trainable=False, **settings)
    if name == "never_consult":
        return NeverConsult()
    if name == "consult_first" and agent:
        return ConsultFirst(agent)
    if name == "random":
        return RandomPolicy(seed=config.seed)
    raise ValueError(f"policy={config.policy!r} is not known; use 'model' or one of {', '.join(BASELINES)}")


def run_eval(config: EvalConfig) -> EvalResult:
    """Evaluate as ``config`` says and write the outputs; returns the result."""
    import torch

    from algorithms.evaluation import evaluate, write_result

    torch.manual_seed(config.seed)
    policy = build_policy(config)
    problems = range(config.first_problem, config.first_problem + config.problems)
    result = evaluate(
        policy,
        config.env.id,
        config.env.kwargs,
        problems=problems,
        samples=config.samples,
        batch_size=config.batch_size,
        greedy=config.greedy,
        progress=config.progress,
    )
    result.settings.update(policy=config.policy, model=config.model.name_or_path, seed=config.seed)
    write_result(result, config.output_dir, title=f"{config.policy}: {config.model.name_or_path}")
    return result


def command(
    arguments: list[str] = typer.Argument(
        None,
        metavar="[CONFIG.yaml] [KEY=VALUE]...",
        help="A YAML eval config and dotted overrides, e.g. model.name_or_path=runs/aipo/final samples=8.",
    ),
) -> None:
    """Evaluate a model or scripted baseline with consults off: accuracy, pass@k, eval.json, pass_at_k.png."""
    from transformers.utils import logging as transformers_logging

    from algorithms.config import ConfigError, EvalConfig, load_config

    transformers_logging.disable_progress_bar()  # one bar (evaluation) is enough
    path, overrides = split_arguments(arguments or [])
    try:
        config = load_config(EvalConfig, path, overrides)
        result = run_eval(config)
    except (ConfigError, ValueError, OSError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
    n = config.samples
    typer.echo(
        f"accuracy {result.accuracy:.3f}, pass@{n} {result.pass_at_k[n]:.3f}; "
        f"eval.json and pass_at_k.png in {config.output_dir}"
    )
