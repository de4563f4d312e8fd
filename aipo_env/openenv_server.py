"""Any registered aipo text env as an OpenEnv environment server (``aipo serve``; ``docs/openenv.md``).

OpenEnv's own server (``openenv.core.env_server.HTTPEnvServer``, set up as its ``create_fastapi_app``
does) speaks the protocol; this module maps aipo onto it:

* :class:`AipoEnvironment` is OpenEnv's ``Environment`` over one ``gym.make(env_id, **kwargs)``:
  ``reset(seed, episode_id, options)`` and ``step(AipoAction)`` return an
  :class:`~aipo_env.openenv_models.AipoObservation` (transcript, the step's feedback, reward,
  done, Gymnasium's ``info``), and ``state`` an :class:`~aipo_env.openenv_models.AipoState`.
* :func:`build_app` serves it: every WebSocket connection to ``/ws`` (what OpenEnv's
  ``EnvClient`` opens) is a session with an env of its own, built when it connects and closed
  when it disconnects, runs out of idle time (``session_timeout``), or stops answering the
  server's pings (a vanished client). At most ``max_sessions`` live at once; one more is told
  ``CAPACITY_REACHED``. A malformed message gets an error reply and the session goes on.
  OpenEnv's HTTP ``/reset``, ``/step`` and ``/state`` are stateless (a fresh env per request).

Needs the ``serve`` extra (``openenv-core``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import uuid
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from gymnasium.error import ResetNeeded
from openenv.core.env_server import ConcurrencyConfig, Environment, HTTPEnvServer
from openenv.core.env_server.types import EnvironmentMetadata, WSErrorCode, WSErrorResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from aipo_env.core import ReasoningEnv
from aipo_env.episode import EpisodeRecord
from aipo_env.openenv_models import AipoAction, AipoObservation, AipoState
from aipo_env.registration import ENV_IDS

MAX_SESSIONS = 64
SESSION_TIMEOUT_S = 300.0
# uvicorn pings every WebSocket this often and drops one whose pong is this late: a client that
# vanished without closing its connection frees its session within about 40 s.
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0


class AipoEnvironment(Environment[AipoAction, AipoObservation, AipoState]):
    """One session's env: ``gym.make(env_id, **env_kwargs)`` behind OpenEnv's ``Environment``.

    Args:
        env_id: a registered id whose env is a :class:`~aipo_env.core.ReasoningEnv`.
        env_kwargs: its keyword arguments, as ``gym.make`` takes them.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # every session builds its own env; nothing is shared

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.env_id = env_id
        self.env = make_text_env(env_id, env_kwargs or {})
        self._state = AipoState(env_id=env_id)
        self._transcript = ""
        self._closed = False

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        options: dict[str, Any] | None = None,
        **unknown: Any,
    ) -> AipoObservation:
        """Start an episode: Gymnasium's ``reset(seed=..., options=...)``, e.g. ``options={"index": 3}``."""
        self._check_open()
        if unknown:
            raise ValueError(
                f"reset takes seed, episode_id and options (e.g. options={{'index': 3}}), "
                f"not {', '.join(sorted(unknown))}"
            )
        text, info = self.env.reset(seed=seed, options=options)
        self._transcript = text
        self._state = AipoState(
            episode_id=episode_id or uuid.uuid4().hex,
            env_id=self.env_id,
            problem=json_safe(info["problem"]),
            done=False,
            consults=dict(info["consults"]),
        )
        return AipoObservation(text=text, info=json_safe(info), reward=None, done=False)

    def step(self, action: AipoAction, timeout_s: float | None = None, **kwargs: Any) -> AipoObservation:
        """Play one turn: Gymnasium's ``step(action.text)``."""
        self._check_open()
        text, reward, terminated, truncated, info = self.env.step(action.text)
        # the transcript grows by the action as the env wrote it down, then by what the env answered
        written = self.env.unwrapped.protocol.parse(action.text).text
        feedback = text[len(self._transcript) + len(written) :]
        self._transcript = text
        done = bool(terminated or truncated)
        self._state.step_count += 1
        self._state.episode_return += float(reward)
        self._state.done = done
        self._state.consults = dict(info["consults"])
        return AipoObservation(
            text=text,
            feedback=feedback,
            truncated=bool(truncated),
            info=json_safe(info),
            reward=float(reward),
            done=done,
        )

    @property
    def state(self) -> AipoState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        """The env id, its one-line description, and its class docstring (Markdown) as the readme."""
        return EnvironmentMetadata(
            name=self.env_id,
            description=ENV_IDS.get(self.env_id, self.env_id),
            readme_content=inspect.getdoc(type(self.env.unwrapped)),
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.close()

    def _check_open(self) -> None:
        if self._closed:  # OpenEnv's idle-session reaper closed the env under a live connection
            raise RuntimeError(
                "this session is closed: it was idle longer than the server's session timeout; "
                "connect again for a new one"
            )


def make_text_env(env_id: str, env_kwargs: Mapping[str, Any]) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)``, checked to be a text env.

    Raises:
        ValueError: an unknown id, options the env does not take, or an env without text turns;
            the message says which, in one line.
    """
    try:
        env = gym.make(env_id, **env_kwargs)
    except gym.error.Error as error:
        raise ValueError(f"{error} Known ids: {', '.join(ENV_IDS)}") from error
    except (TypeError, ValueError, OSError) as error:
        raise ValueError(f"cannot build {env_id}: {error}") from error
    if not isinstance(env.unwrapped, ReasoningEnv):
        actions = env.action_space
        env.close()
        raise ValueError(
            f"{env_id} has no text turns to serve (its actions are {actions}); "
            "serve a text env such as aipo/Arithmetic-v0"
        )
    return env


def build_app(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    max_sessions: int = MAX_SESSIONS,
    session_timeout: float | None = SESSION_TIMEOUT_S,
) -> FastAPI:
    """OpenEnv's app serving ``env_id``: one env per WebSocket session (see the module docstring).

    Args:
        env_id: a registered text env id.
        env_kwargs: the env's keyword arguments, for every session.
        max_sessions: sessions alive at once (OpenEnv's ``max_concurrent_envs``).
        session_timeout: seconds a session may go without a message before its env is closed;
            ``None`` keeps idle sessions until they disconnect.
    """
    factory = functools.partial(AipoEnvironment, env_id, dict(env_kwargs or {}))
    config = ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=session_timeout)
    server = HTTPEnvServer(factory, AipoAction, AipoObservation, concurrency_config=config)
    app = FastAPI(title=f"{env_id} (aipo, OpenEnv protocol)", description=ENV_IDS.get(env_id, ""))
    server.register_routes(app)  # what OpenEnv's create_fastapi_app does, keeping `server` for the door
    app.add_middleware(SessionDoor, server=server)
    app.add_exception_handler(ResetNeeded, _stateless_step)
    app.add_exception_handler(ValueError, _bad_request)
    return app


class SessionDoor:
    """ASGI middleware in front of OpenEnv's ``/ws``: a full server refuses in words, a gone client is quiet.

    OpenEnv 0.3 accepts a connection beyond ``max_concurrent_envs``, sends ``CAPACITY_REACHED``
    and closes at once, so its own client, which sends ``reset`` before it reads, usually meets
    a closed socket instead of the error. Here a connection that finds the server full is
    answered on its first message with OpenEnv's ``CAPACITY_REACHED`` error, then closed with
    code 1013 (try again later). And when a client vanished, OpenEnv's handler frees the session
    and then fails to close the dead socket (``WebSocketDisconnect``); that is expected, not an
    error to log.
    """

    def __init__(self, app: ASGIApp, server: HTTPEnvServer, first_message_timeout: float = 30.0) -> None:
        self.app, self.server, self.first_message_timeout = app, server, first_message_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope["path"] != "/ws":
            await self.app(scope, receive, send)
            return
        if self.server.active_sessions >= self.server.max_concurrent_envs:
            await self._refuse(WebSocket(scope, receive, send))
            return
        with contextlib.suppress(WebSocketDisconnect):
            await self.app(scope, receive, send)

    async def _refuse(self, websocket: WebSocket) -> None:
        active, limit = self.server.active_sessions, self.server.max_concurrent_envs
        message = (
            f"Server at capacity: {active}/{limit} sessions active; "
            "close a session or start the server with a larger --max-sessions"
        )
        error = WSErrorResponse(data={"message": message, "code": WSErrorCode.CAPACITY_REACHED})
        await websocket.accept()
        try:
            await asyncio.wait_for(websocket.receive(), self.first_message_timeout)
            await websocket.send_text(error.model_dump_json())
            await websocket.close(code=1013)
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError):
            pass


def make_server(
    app: FastAPI, *, ping_interval: float = PING_INTERVAL_S, ping_timeout: float = PING_TIMEOUT_S
) -> uvicorn.Server:
    """A uvicorn server for ``app``; run it with ``server.run(sockets=[socket])``.

    Args:
        app: what :func:`build_app` returns.
        ping_interval, ping_timeout: seconds between WebSocket pings, and how long a pong may take
            before the connection (and its session) is dropped.
    """
    config = uvicorn.Config(
        app, log_level="warning", ws_ping_interval=ping_interval, ws_ping_timeout=ping_timeout
    )
    return uvicorn.Server(config)


def json_safe(value: Any) -> Any:
    """``value`` in JSON's types: records and dataclasses as dicts, NumPy values as numbers or lists."""
    if isinstance(value, EpisodeRecord):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(item) for item in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


async def _stateless_step(request: Request, error: Exception) -> JSONResponse:
    detail = (
        f"{error}. OpenEnv's HTTP /reset and /step are stateless (each request gets a fresh env): "
        "play episodes over a WebSocket session at /ws, as OpenEnv's EnvClient does"
    )
    return JSONResponse(status_code=409, content={"detail": detail})


async def _bad_request(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=400, content={"detail": str(error)})
