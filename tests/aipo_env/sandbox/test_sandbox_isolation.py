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
    with Sandbox(Limits(wall_seconds=1, max_output_bytes=1000), isolation="none") as box:
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
