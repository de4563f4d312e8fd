"""``aipo serve``: one clear line and exit 2 for a wrong setting, a startup line with the URL, a served env."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aipo.cli import app

pytestmark = pytest.mark.timeout(120)
RUNNER = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["aipo/Nope-v0"], "Known ids: aipo/Arithmetic-v0"),
        (["aipo/Arithmetic-v0", "-o", "levle=3"], "unexpected keyword argument 'levle'"),
        (["aipo/Arithmetic-v0", "-o", "level"], "must look like key=value"),
        (["aipo/Arithmetic-v0", "-o", "max_turns=0"], "max_turns"),
        (["aipo/Math-v0", "-o", "dataset=nope"], "unknown math dataset 'nope'"),
        (["aipo/ConsultDecision-v0"], "has no text turns to serve"),
    ],
)
def test_a_wrong_env_or_option_is_one_line_and_exit_2(arguments, says):
    pytest.importorskip("openenv")
    result = RUNNER.invoke(app, ["serve", *arguments])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert says in result.output


def test_a_taken_port_is_one_line_and_exit_2():
    pytest.importorskip("openenv")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = RUNNER.invoke(app, ["serve", "aipo/Arithmetic-v0", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_without_the_serve_extra_it_names_the_install(monkeypatch):
    for module in [name for name in sys.modules if name.split(".")[0] == "openenv"] or ["openenv"]:
        monkeypatch.setitem(sys.modules, module, None)  # submodules too: an imported one would be found
    for module in ("aipo_env.openenv_server", "aipo_env.openenv_models"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    result = RUNNER.invoke(app, ["serve", "aipo/Arithmetic-v0"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == 'aipo serve needs the OpenEnv server extra: pip install "aipo[serve]"'


@pytest.mark.slow  # a fresh interpreter imports OpenEnv (gradio, fastmcp): several seconds
def test_serve_prints_its_url_and_serves_until_interrupted():
    pytest.importorskip("openenv")
    from aipo_env.openenv_client import AipoAction, AipoEnvClient

    command = [
        sys.executable,
        "-m",
        "aipo.cli",
        "serve",
        "aipo/Arithmetic-v0",
        "-o",
        "level=2",
        "--port",
        "0",
    ]
    with subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            line = server.stdout.readline()
            found = re.search(
                r"at (http://127\.0\.0\.1:\d+) \(sessions: ws://127\.0\.0\.1:\d+/ws, up to 64,", line
            )
            assert found, line + server.stderr.read() if server.poll() is not None else line
            with AipoEnvClient(base_url=found.group(1)).sync() as env:
                result = env.reset(seed=0)
                assert result.observation.info["problem"]["difficulty"] == 2
                result = env.step(AipoAction(text='<consult agent="verify">Is it \\boxed{1}?</consult>'))
                assert '<feedback agent="verify">' in result.observation.feedback
        finally:
            server.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn shuts down, then exits as interrupted
            assert server.wait(timeout=30) in (0, 128 + signal.SIGINT)
            assert "Traceback" not in server.stderr.read()
