"""``aipo serve ENV_ID``: a registered env served over HTTP and WebSocket with OpenEnv's protocol.

The env side lives in :mod:`aipo_env.openenv_server`; this command checks the env and its options
once, binds the address, prints where it listens, and serves until Ctrl-C. See ``docs/openenv.md``.
"""

from __future__ import annotations

import socket

import typer

from aipo.commands.play import parse_options
from aipo.errors import DEBUG_HELP, one_line_errors
from aipo_env.extras import needs_extra


def command(
    env_id: str = typer.Argument(..., help="An id from `aipo envs`, e.g. aipo/Arithmetic-v0."),
    option: list[str] = typer.Option([], "--option", "-o", help="Env keyword, key=value (repeatable)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 serves other machines."),
    port: int = typer.Option(8000, help="Port to listen on; 0 picks a free one."),
    max_sessions: int = typer.Option(64, min=1, help="Sessions (WebSocket connections) alive at once."),
    session_timeout: float = typer.Option(
        300.0, min=0.0, help="Seconds a session may stay silent before its env is closed; 0: never."
    ),
    debug: bool = typer.Option(False, "--debug", help=DEBUG_HELP),
) -> None:
    """Serve an env with OpenEnv's protocol: every WebSocket session at /ws plays its own env.

    Connect with OpenEnv's EnvClient (aipo_env.openenv_client.AipoEnvClient, or GenericEnvClient);
    the action is {"text": "..."}; reset takes seed, episode_id and options (e.g. {"index": 3}).
    """
    with needs_extra("serve", "aipo serve"):
        from aipo_env.openenv_server import build_app, make_server, make_text_env

    with one_line_errors(debug, ValueError, OSError):
        env_kwargs = parse_options(option)
        make_text_env(env_id, env_kwargs).close()  # a bad id or option fails here, not per session
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host, port), family=family)
        except OSError as error:
            raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    app = build_app(env_id, env_kwargs, max_sessions=max_sessions, session_timeout=session_timeout or None)
    bound_host, bound_port = listener.getsockname()[:2]
    address = f"[{bound_host}]:{bound_port}" if family == socket.AF_INET6 else f"{bound_host}:{bound_port}"
    timeout = f"closed after {session_timeout:g} s idle" if session_timeout else "no idle timeout"
    typer.echo(
        f"Serving {env_id} with OpenEnv's protocol at http://{address} (sessions: ws://{address}/ws, "
        f"up to {max_sessions}, {timeout}); Ctrl-C stops",
    )
    make_server(app).run(sockets=[listener])
