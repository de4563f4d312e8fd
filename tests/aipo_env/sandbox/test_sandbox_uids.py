"""Uids are leased machine-wide: no two live executions share one, whichever process started them,
so a process beside this one running sandboxes changes nothing here."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import aipo_env
from aipo_env.sandbox import Limits, uids
from aipo_env.sandbox.uids import UidLeases, lock_directory

_REPOSITORY = str(Path(aipo_env.__file__).resolve().parents[1])


def _python(code: str) -> subprocess.Popen:
    """Another Python process with this checkout importable, talking over pipes."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": _REPOSITORY},
    )


def _holder(directory: Path, first: int, count: int, take: int) -> tuple[subprocess.Popen, list[int]]:
    """A second process that leases ``take`` uids and keeps them until its stdin closes."""
    process = _python(f"""
        import sys
        from pathlib import Path
        from aipo_env.sandbox.uids import UidLeases
        leases = UidLeases({first}, {count}, Path({str(directory)!r}))
        print(*[leases.acquire() for _ in range({take})], flush=True)
        sys.stdin.read()
    """)
    assert process.stdout is not None
    return process, [int(uid) for uid in process.stdout.readline().split()]


def test_two_processes_leasing_at_once_never_share_a_uid(tmp_path):
    leases = UidLeases(70001, 64, tmp_path)
    process = _python(f"""
        from pathlib import Path
        from aipo_env.sandbox.uids import UidLeases
        leases = UidLeases(70001, 64, Path({str(tmp_path)!r}))
        print(*[leases.acquire() for _ in range(32)], flush=True)
        input()
    """)
    ours = [leases.acquire() for _ in range(32)]  # at the same time as the other process
    assert process.stdout is not None and process.stdin is not None
    theirs = [int(uid) for uid in process.stdout.readline().split()]
    process.stdin.close()
    process.wait(10)
    assert len(set(ours)) == len(set(theirs)) == 32 and not set(ours) & set(theirs)
    assert set(ours) | set(theirs) == set(range(70001, 70065))


def test_threads_never_share_a_uid_and_released_uids_come_back(tmp_path):
    leases = UidLeases(70001, 8, tmp_path)
    taken: list[int] = []

    def lease_twice() -> None:
        for _ in range(2):
            uid = leases.acquire()
            taken.append(uid)
            time.sleep(0.01)
            leases.release(uid)

    threads = [threading.Thread(target=lease_twice) for _ in range(8)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert len(taken) == 16 and leases.held() == []
    assert sorted(leases.acquire() for _ in range(8)) == list(range(70001, 70009))


def test_acquire_waits_while_another_process_holds_every_uid_and_a_dead_holder_frees_them(tmp_path):
    process, theirs = _holder(tmp_path, 70001, 4, 4)
    assert sorted(theirs) == [70001, 70002, 70003, 70004]
    leases = UidLeases(70001, 4, tmp_path)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(leases.acquire()), daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert got == []  # all four are the other process's
    process.kill()  # the kernel drops a dead process's locks: no stale lease
    process.wait(10)
    waiter.join(5)
    assert got and got[0] in theirs


def test_the_lock_directory_is_private_to_this_user(tmp_path, monkeypatch):
    directory = lock_directory((str(tmp_path / "run" / "uids"),))
    info = os.lstat(directory)
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # anyone could hold or drop its locks: the fallback is used instead
    monkeypatch.setattr(uids.tempfile, "gettempdir", lambda: str(tmp_path))
    assert lock_directory((str(shared),)) == tmp_path / f"aipo-sandbox-uids-{os.getuid()}"


@pytest.fixture
def neighbour(sandbox):
    """Another process that keeps two sandboxes busy, each at its process limit, until the test ends."""
    if not sandbox.isolation.drop_privileges:
        pytest.skip("executions share a uid only when the parent is root and hands out uids")
    program = (
        "import os, time\nfor _ in range(7):\n    if os.fork() == 0:\n        time.sleep(0.3)\n"
        "        os._exit(0)\ntime.sleep(0.3)"
    )
    process = _python(f"""
        import sys, threading
        from aipo_env.sandbox import Job, Limits, Sandbox
        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        with Sandbox(Limits(wall_seconds=5, max_processes=8), workers=2) as box:
            print(box.run_many([{program!r}] * 2)[0].status, flush=True)
            while not stop.is_set():
                box.run_many([{program!r}] * 2)
    """)
    assert process.stdout is not None and process.stdin is not None
    assert process.stdout.readline().strip() == "ok", "the neighbour's sandbox did not run"
    yield process
    process.stdin.close()
    process.wait(15)


def test_process_limits_hold_exactly_while_another_process_runs_sandboxes(sandbox, neighbour):
    counting = (
        "import os, time\nn = 0\nfor _ in range(20):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(5)\n        os._exit(0)\n"
        "    n += 1\nprint(n, flush=True)"
    )
    limits = Limits(wall_seconds=3, cpu_seconds=3, max_processes=8)
    for _ in range(3):  # the count is this execution's own: 7 children beside the program
        result = sandbox.run(counting, limits=limits)
        assert result.ok and result.stdout == "7\n", result
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    assert sandbox.run(bomb, limits=Limits(wall_seconds=1, cpu_seconds=2)).status == "timeout"
    assert neighbour.poll() is None
