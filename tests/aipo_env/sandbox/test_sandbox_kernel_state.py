"""Under bubblewrap, nothing per-uid or pinned outside the limits is reachable, and honest programs
that fork, spawn and thread still work (the system-call filter of ``aipo_env.sandbox.seccomp``)."""

from __future__ import annotations

import errno
import struct

import pytest

from aipo_env.sandbox import seccomp

# a program's way of calling a raw system call: number and arguments, errno back
_SYSCALL = """
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
NR = {numbers}[platform.machine()]
def call(name, *args):
    ctypes.set_errno(0)
    result = libc.syscall(NR[name], *args)
    return result, ctypes.get_errno()
"""


# the numbers the tests call by name, per architecture (kept apart from the module's own tables)
_NUMBERS = {
    "x86_64": {
        "add_key": 248,
        "request_key": 249,
        "keyctl": 250,
        "shmget": 29,
        "semget": 64,
        "msgget": 68,
        "unshare": 272,
        "clone": 56,
    },
    "aarch64": {
        "add_key": 217,
        "request_key": 218,
        "keyctl": 219,
        "shmget": 194,
        "semget": 190,
        "msgget": 186,
        "unshare": 97,
        "clone": 220,
    },
}


def _program(body: str) -> str:
    return _SYSCALL.format(numbers=_NUMBERS) + body


@pytest.fixture
def filtered(sandbox):
    if sandbox.isolation.mode != "bwrap":
        pytest.skip(f"the system-call filter exists in bwrap mode only, not {sandbox.isolation.mode!r}")
    if seccomp.filter_program() is None:
        pytest.skip("no system-call filter for this architecture (x86_64 and aarch64 only)")
    return sandbox


def test_keyring_calls_fail_and_no_key_reaches_the_next_execution(filtered):
    leave = _program(
        "KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -4, -5\n"
        "for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):\n"
        "    print(call('add_key', b'user', b'hidden', b'input-42', 8, ctypes.c_int(ring)))\n"
    )
    first = filtered.run(leave)
    assert first.ok and first.stdout.split("\n")[:2] == [f"(-1, {errno.EPERM})"] * 2, first
    look = _program(
        "print(call('request_key', b'user', b'hidden', None, 0))\n"
        "print(call('keyctl', 0, ctypes.c_int(-4), 0))  # KEYCTL_GET_KEYRING_ID of @u\n"
        "print(open('/proc/keys').read().count('hidden'))\n"
    )
    second = filtered.run(look)
    assert second.ok and second.stdout.split("\n")[:3] == [f"(-1, {errno.EPERM})"] * 2 + ["0"], second


def test_user_namespaces_cannot_be_made(filtered):
    program = _program(
        "import os, subprocess\n"
        "CLONE_NEWUSER, SIGCHLD = 0x10000000, 17\n"
        "print(call('unshare', CLONE_NEWUSER))\n"
        "result = call('clone', CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)\n"
        "if result[0] == 0:\n    os._exit(0)  # a child in a new user namespace: the filter failed\n"
        "print(result)\n"
        "done = subprocess.run(['unshare', '--user', '--map-root-user', 'true'], capture_output=True)\n"
        "print('command', done.returncode != 0)\n"
    )
    result = filtered.run(program)
    refused = f"(-1, {errno.EPERM})"
    assert result.ok and result.stdout == f"{refused}\n{refused}\ncommand True\n", result


def test_sysv_ipc_and_memfds_are_refused(filtered):
    program = _program(
        "import os\n"
        "print(call('shmget', 0, 1 << 20, 0o1600))  # IPC_PRIVATE | IPC_CREAT | 0600\n"
        "print(call('semget', 0, 32000, 0o1600))  # 32,000 semaphores of kernel memory\n"
        "print(call('msgget', 0, 0o1600))\n"
        "try:\n    os.memfd_create('pinned')\nexcept OSError as exc:\n    print('memfd', exc.errno)\n"
    )
    result = filtered.run(program)
    refused = f"(-1, {errno.EPERM})"
    assert result.ok and result.stdout == f"{refused}\n{refused}\n{refused}\nmemfd {errno.EPERM}\n", result


def test_honest_programs_still_fork_spawn_and_thread(filtered):
    program = (
        "import multiprocessing, os, subprocess, threading\n"
        "if __name__ == '__main__':\n"
        "    seen = []\n"
        "    workers = [threading.Thread(target=seen.append, args=(n,)) for n in range(3)]\n"
        "    [w.start() for w in workers]; [w.join() for w in workers]\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n        os._exit(7)\n"
        "    print(sorted(seen), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
        "    print(subprocess.run(['echo', 'spawned'], capture_output=True, text=True).stdout.strip())\n"
        "    with multiprocessing.get_context('fork').Pool(2) as pool:\n"
        "        print(pool.map(abs, [-1, -2, -3]))\n"
        "    queue = multiprocessing.get_context('fork').Queue()\n"
        "    child = multiprocessing.get_context('fork').Process(target=queue.put, args=('queued',))\n"
        "    child.start(); print(queue.get(timeout=5)); child.join()\n"
    )
    result = filtered.run(program)
    assert result.ok, result
    assert result.stdout == "[0, 1, 2] 7\nspawned\n[1, 2, 3]\nqueued\n"


def test_the_filter_refuses_foreign_abis_and_checks_clone_flags():
    for machine, arch in seccomp.ARCHES.items():
        program = seccomp.filter_program(machine)
        assert program is not None and len(program) % 8 == 0 and len(program) // 8 < 256
        words = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
        assert words[1][3] == arch.audit and words[2] == (0x06, 0, 0, 0x80000000)  # foreign arch: kill
        assert (0x45, 0, 1, 0x40000000) in words if arch.x32 else True  # x32 numbers: kill
        assert sum(word == (0x45, 0, 1, seccomp.CLONE_NEWUSER) for word in words) == 2  # clone, unshare
        assert words[-1] == (0x06, 0, 0, 0x7FFF0000)  # everything else is allowed
    assert seccomp.filter_program("riscv64") is None
