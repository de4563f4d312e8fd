"""The system-call filter of a bubblewrap sandbox: a classic BPF program for ``bwrap --seccomp FD``.

It refuses what lets a program keep state past its execution or pin memory outside its limits,
and allows everything else (an allowlist would break ordinary programs for little gain here):

=========================================  ======================================================
system calls                               result, and why
=========================================  ======================================================
``add_key``, ``request_key``, ``keyctl``   ``EPERM``: the user keyring belongs to the uid, not to
                                           the execution, and outlives it (the kernel keeps it in
                                           the user namespace's register), so a key written by
                                           one execution could be read by a later one.
``unshare``, ``clone`` with                ``EPERM``: a user namespace would give the program
``CLONE_NEWUSER``                          ``CAP_SYS_ADMIN`` over new mounts (a tmpfs of any
                                           size) and namespaces.
``clone3``                                 ``ENOSYS``: its flags sit in memory a filter cannot
                                           read; glibc then falls back to ``clone`` (as under
                                           Docker's default profile), which is checked above.
``shmget``, ``semget``, ``msgget``,        ``EPERM``: SysV shared memory, semaphore arrays and
``memfd_create``, ``memfd_secret``         message queues, and anonymous shared memory, which no
                                           file-size or address-space limit counts (32,000
                                           semaphore arrays of 32,000 are allowed per namespace:
                                           gigabytes of kernel memory). The memory cgroup counts
                                           them where there is one; this holds without it.
                                           (``multiprocessing`` uses POSIX semaphores in
                                           ``/dev/shm``, which stay allowed.)
``io_uring_setup/enter/register``          ``EPERM``: it runs operations without system calls the
                                           filter could see.
any call of the x32 ABI (number with bit   the process is killed (``SIGSYS``): the same calls
``0x40000000``) or of another architecture  under other numbers (``int 0x80`` on x86_64, 32-bit
(``AUDIT_ARCH`` not the native one)        ARM on aarch64) would walk around the checks above.
=========================================  ======================================================

Filters exist for x86_64 and little-endian aarch64 (:data:`ARCHES`); elsewhere
:func:`filter_program` returns ``None`` and sandboxes run without one (``isolation.py`` says so).

Why not bubblewrap's ``--disable-userns``: it needs ``--unshare-user``, and as root the sandbox
runs without a user namespace on purpose (so that the program's uid is a real unprivileged one and
``RLIMIT_NPROC`` counts its processes); the filter blocks nested user namespaces in both ways of
running bubblewrap.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

# classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JUMP_ANY_BIT = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_KILL_PROCESS = 0x80000000
# offsets in struct seccomp_data: nr (u32), arch (u32), instruction pointer (u64), args (6 x u64)
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
_X32_BIT = 0x40000000
CLONE_NEWUSER = 0x10000000


@dataclass(frozen=True)
class Arch:
    """The system-call numbers of one architecture.

    Attributes:
        audit: its ``AUDIT_ARCH_*`` value (what the kernel puts in ``seccomp_data.arch``).
        refused: ``{number: errno}`` of the calls that always fail.
        no_new_user: the calls whose first argument's ``CLONE_NEWUSER`` bit makes them fail.
        x32: whether numbers with bit ``0x40000000`` (the x32 ABI) exist and are refused.
    """

    audit: int
    refused: dict[int, int]
    no_new_user: tuple[int, ...]
    x32: bool = False


def _arch(audit: int, numbers: dict[str, int], *, x32: bool = False) -> Arch:
    refused = {numbers[name]: errno.EPERM for name in _REFUSED}
    refused[numbers["clone3"]] = errno.ENOSYS
    return Arch(audit, refused, (numbers["clone"], numbers["unshare"]), x32)


_REFUSED = (
    "add_key", "request_key", "keyctl", "shmget", "semget", "msgget", "memfd_create", "memfd_secret",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip
#: the supported machines (``platform.machine()``), from asm/unistd_64.h and asm-generic/unistd.h
ARCHES: dict[str, Arch] = {
    "x86_64": _arch(
        0xC000003E,  # EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
        {
            "add_key": 248,
            "request_key": 249,
            "keyctl": 250,
            "shmget": 29,
            "semget": 64,
            "msgget": 68,
            "memfd_create": 319,
            "memfd_secret": 447,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "clone3": 435,
            "clone": 56,
            "unshare": 272,
        },
        x32=True,
    ),
    "aarch64": _arch(
        0xC00000B7,  # EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
        {
            "add_key": 217,
            "request_key": 218,
            "keyctl": 219,
            "shmget": 194,
            "semget": 190,
            "msgget": 186,
            "memfd_create": 279,
            "memfd_secret": 447,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "clone3": 435,
            "clone": 220,
            "unshare": 97,
        },
    ),
}


def _insn(code: int, k: int, jump_true: int = 0, jump_false: int = 0) -> bytes:
    """One ``struct sock_filter`` (u16 code, u8 jt, u8 jf, u32 k) in native byte order."""
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


def assemble(arch: Arch) -> bytes:
    """The filter for ``arch`` as the bytes of a ``sock_filter`` array.

    In order: a foreign architecture is killed; the number is loaded; an x32 number is killed;
    each refused number returns its errno; ``clone``/``unshare`` load their flags and return
    ``EPERM`` when ``CLONE_NEWUSER`` is set; everything else is allowed. Each test jumps at most
    a few instructions forward, so no offset nears the 255 a ``jt``/``jf`` can hold.
    """
    program = [
        _insn(_LOAD_WORD, _ARCH),
        _insn(_JUMP_EQUAL, arch.audit, 1, 0),
        _insn(_RETURN, _KILL_PROCESS),
        _insn(_LOAD_WORD, _NR),
    ]
    if arch.x32:
        program += [_insn(_JUMP_ANY_BIT, _X32_BIT, 0, 1), _insn(_RETURN, _KILL_PROCESS)]
    for number, error in sorted(arch.refused.items()):
        program += [_insn(_JUMP_EQUAL, number, 0, 1), _insn(_RETURN, _ERRNO | error)]
    for number in arch.no_new_user:
        program += [
            _insn(_JUMP_EQUAL, number, 0, 4),
            _insn(_LOAD_WORD, _ARG0_LOW),  # the flags are an int; the kernel reads their low 32 bits
            _insn(_JUMP_ANY_BIT, CLONE_NEWUSER, 0, 1),
            _insn(_RETURN, _ERRNO | errno.EPERM),
            _insn(_RETURN, _ALLOW),
        ]
    program.append(_insn(_RETURN, _ALLOW))
    return b"".join(program)


def filter_program(machine: str | None = None) -> bytes | None:
    """The filter for this machine (or ``machine``), or ``None`` where none is defined."""
    arch = ARCHES.get(machine or platform.machine())
    if arch is None or sys.byteorder != "little":
        return None
    return assemble(arch)


@contextlib.contextmanager
def filter_fd() -> Iterator[int | None]:
    """A readable descriptor holding this machine's filter, for ``bwrap --seccomp FD``.

    It is the read end of a pipe whose write end is already closed (bubblewrap reads to the
    end), inheritable by a child started with ``pass_fds``; ``None`` where there is no filter.
    """
    program = filter_program()
    if program is None:
        yield None
        return
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, program)  # a few hundred bytes: far below a pipe's capacity
        os.close(write_end)
        write_end = -1
        yield read_end
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
