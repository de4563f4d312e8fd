"""The ``aipo`` command line.

aipo envs                      list the registered environment ids
aipo play ID [-o key=value]    play an episode yourself in the terminal
aipo demo [--quick]            the main job: GRPO vs AIPO beyond the warm-up boundary
aipo bench consult [--quick]   SB3 PPO/A2C/DQN learn when to consult, against fixed baselines
aipo train [CONFIG] [k=v ...]  train a policy with GRPO / AIPO (examples/*.yaml)
aipo eval [CONFIG] [k=v ...]   accuracy and pass@k of a policy alone, consults off
aipo ilr [--quick]             ILR co-training of two tiny models vs each trained alone with GRPO
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import typer

import aipo_env
from aipo import bench_consult, demo_command, evaluate, ilr, train
from aipo.play import parse_options
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
app.command("train")(_one_line_if_missing(train.command))
app.command("eval")(_one_line_if_missing(evaluate.command))
app.command("ilr")(_one_line_if_missing(ilr.command))
app.command("demo")(_one_line_if_missing(demo_command.command))


@app.command()
def envs() -> None:
    """List every registered aipo environment id with a one-line description."""
    width = max(len(env_id) for env_id in aipo_env.ENV_IDS)
    for env_id, description in aipo_env.ENV_IDS.items():
        typer.echo(f"{env_id:<{width}}  {description}")


@app.command()
def play(
    env_id: str = typer.Argument(..., help="An id from `aipo envs`, e.g. aipo/Arithmetic-v0."),
    option: list[str] = typer.Option([], "--option", "-o", help="Env keyword, key=value (repeatable)."),
    seed: int | None = typer.Option(None, help="Seed for drawing the problem."),
    index: int | None = typer.Option(None, help="Play problem number INDEX of the dataset."),
) -> None:
    """Play one episode: the problem is shown, you type turns, helper replies and the reward are printed.

    A turn is one line; end a line with a backslash to continue the turn on the next line. End a
    turn with <consult agent="verify|knowledge|reasoning">question</consult> to consult a helper.
    """
    env = _make(env_id, option)
    if not isinstance(env.unwrapped, aipo_env.ReasoningEnv):
        typer.secho(
            f"{env_id} has no text turns to type (its actions are {env.action_space}); "
            "play a text env such as aipo/Arithmetic-v0",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=2)
    observation, info = env.reset(seed=seed, options=None if index is None else {"index": index})
    typer.secho(f"Problem {info['problem']['id']}", bold=True)
    typer.echo(observation)
    shown = len(observation)
    while True:
        turn = _read_turn(info["turns_left"])
        if turn is None:
            typer.echo("\nNo more input: the episode is left unfinished.")
            raise typer.Exit(code=1)
        observation, reward, terminated, truncated, info = env.step(turn)
        reply = observation[shown + len(turn) :]
        shown = len(observation)
        if reply.strip():
            typer.secho(reply.strip(), fg=typer.colors.CYAN)
        if terminated or truncated:
            verdict = "correct" if info["correct"] else "not correct"
            typer.secho(
                f"Episode over: {verdict}, answer read: {info['extracted_answer']}, "
                f"return {info['episode'].reward:.3g}",
                bold=True,
            )
            return


def _make(env_id: str, options: list[str]) -> gym.Env:
    try:
        return gym.make(env_id, **parse_options(options))
    except gym.error.Error as exc:
        typer.secho(f"{exc}\nKnown ids: {', '.join(aipo_env.ENV_IDS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    except (TypeError, ValueError) as exc:
        typer.secho(f"Cannot build {env_id}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc


def _read_turn(turns_left: int) -> str | None:
    lines: list[str] = []
    prompt = f"your turn ({turns_left} left)> "
    while True:
        typer.echo(prompt, nl=False)
        line = sys.stdin.readline()
        if not line:
            return "\n".join(lines) if lines else None
        line = line.rstrip("\n")
        if line.endswith("\\"):
            lines.append(line[:-1])
            prompt = "... "
            continue
        lines.append(line)
        return "\n".join(lines)


if __name__ == "__main__":
    app()
