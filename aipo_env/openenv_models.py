"""The wire types of an aipo env served with OpenEnv's protocol (``aipo serve``, ``docs/openenv.md``).

They play the part of an OpenEnv environment's ``models.py``: the server
(:mod:`aipo_env.openenv_server`) validates actions against :class:`AipoAction`, sends
:class:`AipoObservation` and :class:`AipoState`, and the typed client
(:mod:`aipo_env.openenv_client`) reads them back. OpenEnv sends an observation's fields, its
``reward`` and ``done``, but not its ``metadata``, so Gymnasium's ``info`` is a field here.

Needs the ``serve`` extra (``openenv-core``).
"""

from __future__ import annotations

from typing import Any

from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field


class AipoAction(Action):
    """One turn of the policy: the text Gymnasium's ``env.step`` takes."""

    text: str = Field(
        ...,
        description='The turn\'s text; ending it with <consult agent="verify|knowledge|reasoning">'
        "question</consult> consults a helper, any other turn is the final response.",
    )


class AipoObservation(Observation):
    """What the env shows after ``reset`` or a step, with Gymnasium's ``info``.

    ``reward`` is the step's reward (``None`` after ``reset``) and ``done`` is
    ``terminated or truncated``.
    """

    text: str = Field(default="", description="The whole transcript so far (Gymnasium's observation).")
    feedback: str = Field(
        default="",
        description="What the env wrote after this step's action: a helper's "
        '<feedback agent="..."> reply or a system note; empty after reset and after a final response.',
    )
    truncated: bool = Field(default=False, description="The episode was cut short, not ended by the policy.")
    info: dict[str, Any] = Field(
        default_factory=dict,
        description="Gymnasium's info as JSON; at the episode's end it holds correct, score, "
        "extracted_answer and the whole episode record (segments by source).",
    )


class AipoState(State):
    """The session's episode: OpenEnv's ``episode_id`` and ``step_count``, and where it stands."""

    env_id: str = Field(default="", description="The served env's id, e.g. aipo/Arithmetic-v0.")
    problem: dict[str, Any] = Field(
        default_factory=dict, description="The problem played, as info['problem']."
    )
    done: bool = Field(default=True, description="No episode is under way: call reset.")
    episode_return: float = Field(default=0.0, description="The sum of this episode's step rewards.")
    consults: dict[str, int] = Field(default_factory=dict, description="Answered consults per agent.")
