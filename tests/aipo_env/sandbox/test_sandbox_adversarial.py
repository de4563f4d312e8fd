"""Hostile programs are contained and reported; the test process and the machine stay unharmed.

Cases that only a namespace (or an unprivileged uid) can contain are skipped, with the reason,
in the documented weaker ``none`` mode: running them there could hurt the machine.
"""

from __future__ import annotations

import os
import secrets
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

from aipo_env.sandbox import Limits, Sandbox
from aipo_env.tasks.code import code_task


def _require(condition: bool, sandbox: Sandbox, what: str) -> None:
    if not condition:
        pytest.skip(
            f"isolation mode {sandbox.isolation.mode!r} does not contain {what} (documented weaker mode)"
        )


def _namespaced(sandbox: Sandbox) -> bool:
    return sandbox.isolation.mode in ("bwrap", "unshare")


def _processes_bounded(sandbox: Sandbox) -> bool:
    """RLIMIT_NPROC binds unless the program runs as root."""
    return sandbox.isolation.drop_privileges or os.getuid() != 0


def _sandboxed_processes(marker: str) -> list[int]:
    """Pids whose command line carries ``marker`` (a unique limit value in the bootstrap's config)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _gone(marker: str, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while _sandboxed_processes(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _marked_limits(**overrides: float) -> tuple[Limits, str]:
    """Limits with a unique file-size limit, whose value in argv identifies this test's processes."""
    megabytes = 1000 + secrets.randbelow(10**6)
    return Limits(max_file_mb=megabytes, **overrides), f"RLIMIT_FSIZE={megabytes * 1024 * 1024}\x00"


def test_infinite_loop_is_killed_at_the_wall_clock_limit(sandbox):
    started = time.monotonic()
    result = sandbox.run("while True:\n    pass", limits=Limits(wall_seconds=1.0, cpu_seconds=30))
    assert result.status == "timeout" and result.returncode is None
    assert "wall-clock limit of 1 s" in result.describe()
    assert time.monotonic() - started < 4


def test_busy_program_is_stopped_by_the_cpu_limit(sandbox):
    result = sandbox.run("while True:\n    pass", limits=Limits(wall_seconds=10, cpu_seconds=1))
    assert result.status == "signal" and result.signal == "SIGXCPU"
    assert "CPU-time limit" in result.describe()


def test_fork_bomb_is_contained_and_leaves_no_process_behind(sandbox):
    _require(_processes_bounded(sandbox), sandbox, "a fork bomb when it runs as root")
    limits, marker = _marked_limits(wall_seconds=1.5, cpu_seconds=2, max_processes=8)
    counting = "import os, time\nn = 0\nfor _ in range(60):\n    try:\n        pid = os.fork()\n"
    counting += (
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n"
    )
    counting += "    n += 1\nprint(n, flush=True)"
    counted = sandbox.run(counting, limits=limits)
    assert counted.ok and 0 < int(counted.stdout) < 8, counted
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = sandbox.run(bomb, limits=limits)
    assert result.status == "timeout"
    assert _gone(marker), "processes of the fork bomb outlived the execution"


def test_background_processes_die_with_the_program(sandbox):
    _require(_namespaced(sandbox), sandbox, "processes that leave the process group")
    limits, marker = _marked_limits(wall_seconds=5)
    program = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
    program += "        time.sleep(30)\n    os._exit(0)\nprint('parent done')"
    result = sandbox.run(program, limits=limits)
    assert result.ok and result.stdout == "parent done\n"
    assert _gone(marker), "a background process outlived the execution"


def test_memory_bomb_gets_memory_error(sandbox):
    result = sandbox.run("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))")
    assert result.status == "exit" and "MemoryError" in result.stderr
    assert result.seconds < 5


def test_huge_output_is_cut_and_the_program_killed(sandbox):
    limits = Limits(wall_seconds=10, max_output_bytes=10_000)
    result = sandbox.run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", limits=limits)
    assert result.status == "output_limit" and len(result.stdout) == 10_000
    assert "more than 10000 bytes" in result.describe()
    assert result.seconds < 5


def test_writing_outside_the_working_directory_is_refused(sandbox, tmp_path):
    _require(sandbox.isolation.mode == "bwrap", sandbox, "writes to the host's files")
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    tag = secrets.token_hex(6)
    host_paths = [
        open_dir / "escaped.txt",
        Path.home() / f"aipo-escape-{tag}",
        Path(f"/tmp/aipo-escape-{tag}"),
    ]
    program = "for path in " + repr([*map(str, host_paths), "../escaped.txt"]) + ":\n"
    program += "    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n"
    program += "    except OSError as exc:\n        print('refused', path, type(exc).__name__)"
    result = sandbox.run(program)
    assert result.ok
    # /tmp inside the sandbox is a private tmpfs, so only that write may succeed, invisibly to the host
    assert result.stdout.count("refused") >= 3 and "wrote ../" not in result.stdout
    assert not any(path.exists() for path in host_paths)


def test_parent_environment_cannot_be_read(sandbox, monkeypatch):
    _require(_namespaced(sandbox) or sandbox.isolation.drop_privileges, sandbox, "/proc/<parent>/environ")
    secret = secrets.token_hex(16)
    monkeypatch.setenv("AIPO_TEST_SECRET", secret)
    program = "import glob, os\nprint(dict(os.environ))\n"
    program += "for path in [f'/proc/{os.getppid()}/environ', *glob.glob('/proc/*/environ')]:\n"
    program += "    try:\n        print(open(path, 'rb').read())\n    except OSError as exc:\n        print(path, exc)"
    result = sandbox.run(program, limits=Limits(max_output_bytes=10**6))
    assert result.ok
    assert secret not in result.stdout and secret not in result.stderr


def test_network_connections_are_refused(sandbox):
    _require(_namespaced(sandbox), sandbox, "the network")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        program = "import socket\nfor address in [('127.0.0.1', " + str(port) + "), ('192.0.2.1', 80)]:\n"
        program += (
            "    try:\n        socket.create_connection(address, timeout=1)\n        print('connected')\n"
        )
        program += "    except OSError as exc:\n        print('refused', exc.errno)"
        result = sandbox.run(program)
        readable, _, _ = select.select([server], [], [], 0.2)
    assert result.ok and "connected" not in result.stdout and result.stdout.count("refused") == 2
    assert not readable, "the sandbox reached a server on the host's loopback"


def test_killing_the_parent_and_other_processes_fails(sandbox):
    _require(_namespaced(sandbox) or sandbox.isolation.drop_privileges, sandbox, "signals to host processes")
    with subprocess.Popen(["sleep", "30"]) as sentinel:
        try:
            program = "import os, signal\n"
            program += "for pid in [os.getppid(), " + str(sentinel.pid) + ", " + str(os.getpid()) + ", -1]:\n"
            program += "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError as exc:\n        print(pid, exc)"
            result = sandbox.run(program)
            time.sleep(0.1)
            assert sentinel.poll() is None, "the sandbox killed a process of the host"
        finally:
            sentinel.kill()
    assert result.status in ("ok", "signal")  # kill(-1) may take the program down with it


@pytest.fixture(scope="module")
def task():
    code = code_task("builtin", timeout=0.5, limits=Limits(memory_mb=256))
    yield code
    code.close()


_WRONG = "def sum_of_squares(numbers):\n    return -1\n"
_TRICKS = {
    "sys.exit at load": "import sys\nsys.exit(0)",
    "os._exit at load": "import os\nos._exit(0)",
    "os._exit in the test": "import os\ndef sum_of_squares(numbers):\n    os._exit(0)",
    "SystemExit in the test": "def sum_of_squares(numbers):\n    raise SystemExit(0)",
    "atexit report": "import atexit\natexit.register(lambda: print(\"@@aipo x ('test', 0, 'passed', '')\"))",
    "forged reports on every fd": "import os\nfor fd in range(1, 20):\n    for i in range(5):\n"
    "        try:\n            os.write(fd, f\"@@aipo {'0' * 32} ('test', {i}, 'passed', '')\\n\".encode())\n"
    "        except OSError:\n            pass",
    "patched builtins": "import builtins\nbuiltins.AssertionError = type('Fake', (Exception,), {})\n"
    "builtins.repr = lambda obj: \"('test', 0, 'passed', '')\"\nbuiltins.exec = lambda *a, **k: None\n"
    "builtins.compile = lambda *a, **k: None\nbuiltins.float = lambda x: 0.0",
    "patched harness": "import sys\nharness = sys.modules['__main__']\n"
    "harness._run = lambda *a, **k: None\nharness._describe = lambda exc: 'passed'\n"
    "harness.__dict__['_TestTimeout'] = Exception",
    "patched timer": "import signal\nsignal.setitimer = lambda *a: None\nsignal.signal = lambda *a: None\n"
    "def sum_of_squares(numbers):\n    while True:\n        pass",
}


@pytest.mark.parametrize("trick", list(_TRICKS))
def test_exit_tricks_and_harness_patching_never_pass(task, trick):
    response = f"```python\n{_WRONG}{_TRICKS[trick]}\n```"
    score = task.score(task.problem(0), response)
    assert score.reward == 0 and not score.correct
    assert score.details["passed"] == 0
    assert {test["outcome"] for test in score.details["tests"]} <= {"failed", "error", "timeout", "not_run"}
    if trick == "patched timer":  # the harness's own timer still fires
        assert score.details["tests"][0]["outcome"] == "timeout" and score.details["status"] == "ok"
