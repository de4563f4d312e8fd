"""Isolation is detected at run time; a weaker mode is announced once, with how to get bwrap."""

from __future__ import annotations

import os
import shutil
import sys
import warnings

import pytest

from aipo_env.sandbox import Isolation, Limits, Sandbox, SandboxUnavailable, SandboxWarning, detect_isolation
from aipo_env.sandbox import isolation as isolation_module


@pytest.fixture
def without_bwrap(monkeypatch):
    """This machine, as if bubblewrap were not installed; detection is re-run before and after."""
    real_which = shutil.which
    monkeypatch.setattr(
        isolation_module.shutil, "which", lambda name: None if name == "bwrap" else real_which(name)
    )
    isolation_module._detect_cached.cache_clear()
    yield
    isolation_module._detect_cached.cache_clear()


def test_auto_falls_back_with_one_warning_naming_the_fix(without_bwrap):
    with pytest.warns(SandboxWarning, match="apt-get install bubblewrap") as caught:
        chosen = detect_isolation("auto")
    assert chosen.mode in ("unshare", "none")
    assert "bwrap is not installed" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detect_isolation("auto") == chosen  # cached: no second warning


def test_explicit_bwrap_that_does_not_work_raises(without_bwrap):
    with pytest.raises(SandboxUnavailable, match="bwrap is not installed"):
        Sandbox(isolation="bwrap").run("pass")


def test_weakest_mode_still_applies_limits_and_scrubs_the_environment(monkeypatch):
    monkeypatch.setenv("AIPO_TEST_TOKEN", "do-not-leak")
    # as root, `none` cannot drop privileges for an interpreter under /root: it must be asked for
    box = Sandbox(Limits(wall_seconds=1, max_output_bytes=1000), isolation="none", unsafe_run_as_root=True)
    with box:
        assert box.isolation.mode == "none"
        looping = box.run("while True:\n    pass")
        chatty = box.run("while True:\n    print('x' * 100)")
        environment = box.run("import os\nprint(sorted(os.environ))")
    assert looping.status == "timeout" and chatty.status == "output_limit"
    assert "AIPO_TEST_TOKEN" not in environment.stdout


def test_unshare_mode_has_no_network_where_it_works():
    try:
        isolation = detect_isolation("unshare")
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    with Sandbox(isolation=isolation) as box:
        result = box.run(
            "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
            "except OSError as exc:\n    print('refused', exc.errno)"
        )
    assert result.ok and result.stdout.startswith("refused")


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="'auto' or one of bwrap, unshare, none"):
        detect_isolation("docker")  # type: ignore[arg-type]


def test_signals_are_read_from_each_modes_exit_status():
    assert Isolation("none").signal_number(-9) == 9
    assert Isolation("none").signal_number(137) is None  # a plain exit status there
    assert Isolation("bwrap").signal_number(128 + 24) == 24
    assert Isolation("bwrap").signal_number(3) is None


def test_python_installation_outside_usr_is_mounted_once():
    roots = isolation_module.python_roots(sys.executable)
    assert all(not root.startswith("/usr/") for root in roots)
    assert all(not a.startswith(f"{b}/") for a in roots for b in roots)
    executable = os.path.realpath(sys.executable)
    assert any(executable.startswith(f"{root}/") for root in [*roots, "/usr"])


_ROOT_ONLY = pytest.mark.skipif(os.getuid() != 0, reason="the parent must be root")


@pytest.fixture
def no_privilege_drop(monkeypatch):
    """This machine, as if no mode could switch the program to an unprivileged uid."""
    real_probe = isolation_module._probe
    monkeypatch.setattr(
        isolation_module,
        "_probe",
        lambda isolation: (
            "cannot drop privileges here" if isolation.drop_privileges else real_probe(isolation)
        ),
    )
    isolation_module._detect_cached.cache_clear()
    yield
    isolation_module._detect_cached.cache_clear()


@_ROOT_ONLY
def test_as_root_model_code_never_runs_as_root_unless_asked_to_be_unsafe(no_privilege_drop):
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap.*unsafe_run_as_root=True"):
        detect_isolation("auto")
    with pytest.raises(SandboxUnavailable, match="never run as root"):
        Sandbox().run("pass")
    from aipo_env.tasks.code import code_task

    with pytest.raises(SandboxUnavailable, match="unsafe_run_as_root"):
        code_task("builtin")  # refused when the env is made, not at the first answer
    with pytest.warns(SandboxWarning, match="runs as root"):
        unsafe = detect_isolation("auto", unsafe_run_as_root=True)
    assert not unsafe.drop_privileges
    with Sandbox(isolation=unsafe) as box:
        assert box.run("import os\nprint(os.getuid())").stdout == "0\n"


@_ROOT_ONLY
def test_unshare_mode_runs_an_interpreter_under_root_as_an_unprivileged_user(tmp_path):
    try:
        isolation = detect_isolation("unshare")
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    assert isolation.drop_privileges
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    host_tmp = f"/tmp/aipo-unshare-{os.getpid()}"
    program = (
        "import collections, json, os\n"  # standard modules load after the privilege drop
        "print(os.getuid() != 0)\n"
        "for path in [" + repr(str(secret)) + ", '/etc/shadow']:\n"
        "    try:\n        print(open(path).read())\n    except OSError as exc:\n        print('refused')\n"
        "open(" + repr(host_tmp) + ", 'w').write('x')\n"
        "print(len(os.listdir('/tmp')))\n"
    )
    with Sandbox(isolation=isolation) as box:
        result = box.run(program)
    assert result.ok, result.stderr
    lines = result.stdout.split()
    assert lines[:3] == ["True", "refused", "refused"]
    assert not os.path.exists(host_tmp), "a write to the private /tmp reached the host's /tmp"


def test_bwrap_runs_an_interpreter_from_a_venv_under_tmp(tmp_path):
    import subprocess

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    venv = tmp_path / "venv"  # pytest's tmp_path lives under /tmp, which bwrap makes private
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    isolation = detect_isolation("bwrap", python=python)
    with Sandbox(isolation=isolation) as box:
        result = box.run("import sys, json\nprint(sys.executable)")
    assert result.ok, result.stderr
    assert result.stdout.strip() == python


def test_bwrap_programs_see_no_third_party_packages(sandbox):
    """The sandbox runs on the standard library; site-packages (the package's own data, such as
    the built-in code problems with their tests, in a plain install) is empty and read-only."""
    from aipo_env.sandbox.isolation import site_directories

    if sandbox.isolation.mode != "bwrap":
        pytest.skip("only bubblewrap mode hides the host's files")
    directories = site_directories(sandbox.isolation.python)
    assert directories, "this interpreter has a site-packages directory"
    program = (
        "import os\n"
        f"for directory in {directories!r}:\n"
        "    print(os.listdir(directory))\n"
        "    try:\n        open(os.path.join(directory, 'planted.py'), 'w')\n"
        "    except OSError:\n        print('read-only')\n"
    )
    result = sandbox.run(program)
    assert result.ok and result.stdout == "[]\nread-only\n" * len(directories), result
