"""Playing episodes in the terminal: by a person (``aipo play``, :func:`command`) or by a scripted helper-follower.

The scripted follower is the offline demonstration of the protocol: it asks the Reasoning agent
for each step in turn, writes the step down, asks the Verify agent about its answer, and then
answers. It reads only the transcript, like any policy.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym
import typer

import aipo_env
from aipo_env.episode import EpisodeRecord

_STEP_REPLY = re.compile(r'<feedback agent="reasoning">Step \d+: (?P<step>[^<]*)</feedback>\s*\Z')
_RESULT = re.compile(r"=\s*(-?\d+)\s*$", re.MULTILINE)
_LAST_FEEDBACK = re.compile(r'<feedback agent="(?P<agent>\w+)">[^<]*</feedback>\s*\Z')


def parse_options(options: Iterable[str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into env keyword arguments (values read as Python literals).

    Raises:
        ValueError: an option without ``=``, naming it.
    """
    parsed: dict[str, Any] = {}
    for option in options:
        key, separator, value = option.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"option {option!r} must look like key=value, e.g. level=5")
        try:
            parsed[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed[key.strip()] = value
    return parsed


def follow_reasoning(observation: str) -> str:
    """The scripted follower's next turn, read off the transcript.

    After a Reasoning reply ``Step k: a op b = c`` it writes the step down and asks for the next
    one; once the agent says every step is written (or a consult is refused) it asks Verify about
    its result; after Verify's reply it answers with that result.
    """
    results = _RESULT.findall("\n".join(re.findall(r"Step \d+: ([^<]*)<", observation)))
    last = results[-1] if results else "0"
    feedback = _LAST_FEEDBACK.search(observation)
    agent = feedback.group("agent") if feedback else None
    if agent in ("verify", "system"):
        return f"The answer is \\boxed{{{last}}}."
    step = _STEP_REPLY.search(observation)
    if step is not None:
        return f'{step.group("step").strip()}. <consult agent="reasoning">What is the next step?</consult>'
    if agent == "reasoning":
        return f'<consult agent="verify">Is the answer \\boxed{{{last}}}?</consult>'
    return '<consult agent="reasoning">What is the first step?</consult>'


def run_scripted_episode(
    env: gym.Env, policy: Callable[[str], str], seed: int | None = None, index: int | None = None
) -> EpisodeRecord:
    """Play one episode with a text policy ``observation -> action`` and return its record."""
    options = None if index is None else {"index": index}
    observation, _ = env.reset(seed=seed, options=options)
    while True:
        observation, _, terminated, truncated, info = env.step(policy(observation))
        if terminated or truncated:
            return info["episode"]


def show_scripted_episode(level: int = 4, seed: int = 0) -> EpisodeRecord:
    """Play and print one episode of the arithmetic family with :func:`follow_reasoning`."""
    env = gym.make("aipo/Arithmetic-v0", level=level, max_turns=16, max_consults=16)
    record = run_scripted_episode(env, follow_reasoning, seed=seed)
    for segment in record.segments:
        colour = {"prompt": None, "policy": typer.colors.GREEN, "agent": typer.colors.CYAN}[segment.source]
        typer.secho(segment.text.strip("\n"), fg=colour)
    typer.secho(
        f"\nreward {record.reward:.3g}, correct {record.correct}, consults {record.consults}", bold=True
    )
    return record


def command(
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
    try:
        observation, info = env.reset(seed=seed, options=None if index is None else {"index": index})
    except (IndexError, ValueError) as exc:
        typer.secho(f"Cannot play problem {index} of {env_id}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
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
