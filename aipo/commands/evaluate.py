"""``aipo eval [CONFIG.yaml] [key=value ...]``: accuracy and pass@k of a policy reasoning alone.

Evaluates a trained model (``model.name_or_path=runs/x/final``), a model behind an
OpenAI-compatible server (``policy=openai openai.model=NAME openai.base_url=URL``, e.g. ``vllm
serve``; see :class:`~policies.OpenAIPolicy`) or a scripted baseline (``policy=never_consult``,
``consult_first:reasoning``, ``random``) with consults off, and writes ``eval.json`` and
``pass_at_k.png`` into ``output_dir``. ``eval.json`` records what was evaluated under ``settings``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from aipo.bundled import existing_config
from aipo.commands.train import split_arguments
from aipo.errors import DEBUG_HELP, debug_wanted, one_line_errors
from aipo_env.extras import require_extra

if TYPE_CHECKING:
    from algorithms.config import EvalConfig
    from algorithms.evaluation import EvalResult
    from policies.base import Policy

BASELINES = ("never_consult", "consult_first:AGENT", "random")


def build_policy(config: EvalConfig) -> Policy:
    """The model, the served model, or the scripted baseline that ``config.policy`` names.

    A served model (``policy=openai``) samples at ``temperature``, or at 0 with ``greedy``.
    """
    from policies import ConsultFirst, NeverConsult, OpenAIPolicy, RandomPolicy

    name, _, agent = config.policy.partition(":")
    if name == "model":
        from algorithms.models import load_policy, resolve_device
        from algorithms.setup import policy_protocol

        settings = {"max_new_tokens": config.max_new_tokens, "temperature": config.temperature}
        settings.update(policy_protocol(config.env.kwargs))  # a model trained with tool calls
        return load_policy(config.model, resolve_device(config.device), trainable=False, **settings)
    if name == "openai":
        served = config.openai
        assert served.model is not None  # EvalConfig checks it
        return OpenAIPolicy(
            served.model,
            base_url=served.base_url,
            api_key_env=served.api_key_env,
            temperature=0.0 if config.greedy else config.temperature,
            max_tokens=served.max_tokens,
            max_concurrency=served.max_concurrency,
        )
    if name == "never_consult":
        return NeverConsult()
    if name == "consult_first" and agent:
        return ConsultFirst(agent)
    if name == "random":
        return RandomPolicy(seed=config.seed)
    raise ValueError(
        f"policy={config.policy!r} is not known; use 'model', 'openai' or one of {', '.join(BASELINES)}"
    )


def evaluated(config: EvalConfig) -> dict[str, Any]:
    """What ``eval.json`` records as evaluated: the policy and its model (never an API key)."""
    if config.policy == "openai":
        served = config.openai.model_dump(exclude={"max_concurrency"})
        temperature = 0.0 if config.greedy else config.temperature
        return {
            "policy": "openai",
            "model": served.pop("model"),
            "server": served,
            "temperature": temperature,
        }
    if config.policy == "model":
        return {"policy": "model", "model": config.model.name_or_path, "temperature": config.temperature}
    return {"policy": config.policy, "model": None}


def run_eval(config: EvalConfig) -> EvalResult:
    """Evaluate as ``config`` says and write the outputs; returns the result."""
    import torch

    from algorithms.evaluation import evaluate, write_result
    from algorithms.setup import env_kwargs

    torch.manual_seed(config.seed)
    policy = build_policy(config)
    problems = range(config.first_problem, config.first_problem + config.problems)
    try:
        result = evaluate(
            policy,
            config.env.id,
            env_kwargs(config.env.kwargs, policy),
            problems=problems,
            samples=config.samples,
            batch_size=config.batch_size,
            greedy=config.greedy,
            progress=config.progress,
            consult=config.consult,
        )
    finally:
        policy.close()
    what = evaluated(config)
    result.settings.update(what, seed=config.seed)
    title = config.policy if what["model"] is None else f"{config.policy}: {what['model']}"
    write_result(result, config.output_dir, title=title)
    return result


def command(
    arguments: list[str] = typer.Argument(
        None,
        metavar="[CONFIG.yaml] [KEY=VALUE]...",
        help="A YAML eval config and dotted overrides, e.g. model.name_or_path=runs/aipo/final samples=8.",
    ),
    debug: bool = typer.Option(False, "--debug", help=DEBUG_HELP),
) -> None:
    """Evaluate a model, a served model or a baseline with consults off: accuracy, pass@k, eval.json, PNG."""
    require_extra("train", "aipo eval")
    import openai
    from transformers.utils import logging as transformers_logging

    from algorithms.config import ConfigError, EvalConfig, load_config

    transformers_logging.disable_progress_bar()  # one bar (evaluation) is enough
    path, overrides = split_arguments(arguments or [])
    try:
        with one_line_errors(debug, ConfigError, ValueError, OSError):
            config = load_config(EvalConfig, existing_config(path), overrides)
            result = run_eval(config)
    except openai.APIError as error:  # policy=openai: the server is down, refuses the key, or the model
        if debug_wanted(debug):
            raise
        message = (
            f"error: the server of policy=openai failed ({type(error).__name__}: {error}); check openai.*"
        )
        typer.secho(message, fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from error
    n = config.samples
    typer.echo(
        f"accuracy {result.accuracy:.3f}, pass@{n} {result.pass_at_k[n]:.3f}; "
        f"eval.json and pass_at_k.png in {config.output_dir}"
    )
