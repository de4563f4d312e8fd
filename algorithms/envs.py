"""Building the envs that a config's ``env`` section names, with errors that say which key is wrong.

Gymnasium reports an unknown id, a misspelt keyword or an unreadable data file in its own words,
deep in a traceback; :func:`make_envs` turns each into a :class:`~algorithms.config.ConfigError`
that names ``env.id`` or ``env.kwargs`` and what to do about it.

The envs of a run share one set of agents: the first env builds them from ``env.kwargs`` and the
others are handed the same instances, so a run holds one client, one connection pool, one reply
cache and one set of failure counters per role, however many envs it steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

import aipo_env
from aipo_env.agents import Agent
from aipo_env.tasks.loading import DataError
from algorithms.config import ConfigError


def make_envs(env_id: str, kwargs: Mapping[str, Any], count: int) -> list[gym.Env]:
    """``count`` copies of ``gym.make(env_id, **kwargs)``, all sharing the first one's agents.

    Raises:
        ConfigError: the id is not registered, a keyword is not the env's, its data cannot be
            read, or the env refuses a value; the message names the key and the fix.
    """
    try:
        envs = [gym.make(env_id, **kwargs)] if count > 0 else []
        agents = shared_agents(envs)
        shared = {**kwargs, "agents": agents} if agents is not None else kwargs
        return envs + [gym.make(env_id, **shared) for _ in range(count - 1)]
    except (TypeError, ValueError, gym.error.Error) as error:
        raise ConfigError(env_error_message(env_id, kwargs, error)) from error


def shared_agents(envs: Sequence[gym.Env]) -> dict[str, Agent] | None:
    """The agents (role -> agent) of the first of ``envs``; ``None`` for an env without consult agents."""
    agents = getattr(envs[0].unwrapped, "agents", None) if envs else None
    return dict(agents) if isinstance(agents, Mapping) else None


def env_error_message(env_id: str, kwargs: Mapping[str, Any], error: Exception) -> str:
    """What a user should read when ``gym.make(env_id, **kwargs)`` raised ``error``."""
    if isinstance(error, gym.error.Error):
        known = ", ".join(aipo_env.ENV_IDS)
        return f"env.id={env_id!r} is not a registered environment ({error}); use one of: {known}"
    if isinstance(error, DataError):
        return f"env {env_id} cannot read its problems: {error}"
    if isinstance(error, TypeError):
        # Gymnasium appends "was raised from the environment creator ..." to the constructor's message
        reason = str(error).split(" was raised from the environment creator")[0]
        entry_point = gym.spec(env_id).entry_point
        return (
            f"env.kwargs={dict(kwargs)} for {env_id}: {reason}; "
            f"the keywords it takes are under Arguments in the docstring of {entry_point}"
        )
    return f"env.id={env_id!r} with env.kwargs={dict(kwargs)}: {error}"


def check_reference_solution(env: gym.Env, env_id: str) -> None:
    """Play problem 0's written solution in ``env``; refuse ``rollout.reference_per_group`` if it does not score.

    Raises:
        ConfigError: the task has no worked solutions, or its written solution
            (:func:`~aipo_env.tasks.base.written_solution`) is not a correct answer of that task
            (code, for instance, must be a fenced program, not steps).
    """
    from aipo_env.tasks.base import written_solution

    env.reset(options={"index": 0})
    try:
        solution = written_solution(env.unwrapped.problem)
    except ValueError as error:
        raise ConfigError(f"rollout.reference_per_group: {error}; set it to 0 for {env_id}") from error
    *_, info = env.step(solution)
    if not info.get("correct"):
        raise ConfigError(
            f"rollout.reference_per_group: the written reference solution of {env_id} does not score as "
            "correct (its steps are not an answer this task accepts); set rollout.reference_per_group=0"
        )
