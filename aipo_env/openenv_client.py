"""OpenEnv's client for an aipo env server (``aipo serve``), typed: a session over one WebSocket.

::

    from aipo_env.openenv_client import AipoAction, AipoEnvClient

    with AipoEnvClient(base_url="http://127.0.0.1:8000").sync() as env:
        result = env.reset(seed=0)
        result = env.step(AipoAction(text='<consult agent="reasoning">First step?</consult>'))
        print(result.observation.feedback, result.reward, result.done)

OpenEnv's ``GenericEnvClient`` works too, without aipo installed: it sends ``{"text": ...}`` and
returns plain dicts. Needs the ``serve`` extra (``openenv-core``).
"""

from __future__ import annotations

from typing import Any

from openenv.core import EnvClient
from openenv.core.client_types import StepResult

from aipo_env.openenv_models import AipoAction, AipoObservation, AipoState

__all__ = ["AipoAction", "AipoEnvClient", "AipoObservation", "AipoState"]


class AipoEnvClient(EnvClient[AipoAction, AipoObservation, AipoState]):
    """One session on an aipo env server; ``reset(seed=..., options={"index": i})``, ``step``, ``state``.

    Async like every OpenEnv client (``async with``); ``.sync()`` gives the blocking one. A server
    error (a malformed action, a step after the episode ended, a full server) raises
    ``RuntimeError`` with the server's message and code; the session goes on.
    """

    def _step_payload(self, action: AipoAction) -> dict[str, Any]:
        return action.model_dump()

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[AipoObservation]:
        fields = {key: value for key, value in payload.get("observation", {}).items() if key in _FIELDS}
        observation = AipoObservation(**fields, reward=payload.get("reward"), done=payload.get("done", False))
        return StepResult(observation=observation, reward=observation.reward, done=observation.done)

    def _parse_state(self, payload: dict[str, Any]) -> AipoState:
        return AipoState(**payload)


# what a newer server may add is left out rather than refused (the models forbid unknown fields)
_FIELDS = set(AipoObservation.model_fields) - {"reward", "done", "metadata"}
