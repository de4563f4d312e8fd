"""The resource limits of one sandboxed execution.

Every limit is applied to the sandboxed process itself (``setrlimit`` inside the sandbox, soft
and hard limit equal, so the program cannot raise them again), except three: the wall-clock
limit and the output cap, which the parent enforces by killing the whole process group, and the
total memory, which a memory cgroup enforces (see :mod:`aipo_env.sandbox.cgroup`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one execution may use.

    Attributes:
        wall_seconds: wall-clock time until the parent kills the execution (``timeout``).
        cpu_seconds: CPU time of each process (``RLIMIT_CPU``); a process past it gets
            ``SIGXCPU``, one second later ``SIGKILL``.
        memory_mb: address space of each process (``RLIMIT_AS``), in MiB; Python raises
            ``MemoryError`` past it.
        max_processes: processes and threads the sandbox user may own (``RLIMIT_NPROC``); this
            is what stops a fork bomb. It counts the program itself.
        max_output_bytes: bytes kept from each of stdout and stderr; more output kills the
            execution (``output_limit``).
        max_file_mb: size of any file the program writes (``RLIMIT_FSIZE``), in MiB.
        max_open_files: file descriptors per process (``RLIMIT_NOFILE``).
        disk_mb: what the program may write in all, in MiB, in each of its working directory,
            its private ``/tmp`` and ``/dev/shm`` (each a tmpfs of this size in ``bwrap`` mode;
            ``/tmp`` in ``unshare`` mode as root); elsewhere only ``max_file_mb`` per file holds.
        total_memory_mb: memory of the whole execution, in MiB: every process's memory plus
            what they pin outside any process (tmpfs files, shared memory, pipe buffers and other
            kernel memory), as a memory cgroup counts it; past it the kernel's OOM killer stops
            the execution (status ``memory_limit``). ``None`` (the default) means
            ``2 * memory_mb`` (1 GiB by default), room for one process at its full
            ``memory_mb`` plus its files and the interpreters of a few helpers.

    Memory is bounded twice. Each process's address space is at most ``memory_mb``, so Python
    raises ``MemoryError`` first in the common case. Where the machine has a usable memory
    cgroup (see :mod:`aipo_env.sandbox.cgroup`), the execution as a whole is at most
    ``total_memory_mb``, whatever it is spent on. Where it has none (a ``SandboxWarning`` says
    so), only the per-process bound holds: ``max_processes * memory_mb`` (4 GiB by default) of
    process memory, plus tmpfs files up to ``disk_mb`` each, plus whatever the mode leaves open
    (see the table in :mod:`aipo_env.sandbox.isolation`).
    """

    wall_seconds: float = 10.0
    cpu_seconds: float = 10.0
    memory_mb: int = 512
    max_processes: int = 8
    max_output_bytes: int = 256 * 1024
    max_file_mb: int = 16
    max_open_files: int = 64
    disk_mb: int = 64
    total_memory_mb: int | None = None

    def __post_init__(self) -> None:
        positive = {
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
            "memory_mb": self.memory_mb,
            "max_processes": self.max_processes,
            "max_output_bytes": self.max_output_bytes,
            "max_file_mb": self.max_file_mb,
            "max_open_files": self.max_open_files,
            "disk_mb": self.disk_mb,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")
        if self.memory_mb < 64:
            raise ValueError(f"Limits.memory_mb={self.memory_mb} is too small to start Python; use >= 64")
        if self.total_memory_mb is not None and not (
            isinstance(self.total_memory_mb, int) and self.total_memory_mb >= 64
        ):
            raise ValueError(
                f"Limits.total_memory_mb must be None or an integer >= 64, got {self.total_memory_mb!r}"
            )
        if self.max_open_files < 16:
            raise ValueError(f"Limits.max_open_files={self.max_open_files} is too small; use >= 16")

    def total_memory_bytes(self) -> int:
        """The memory cgroup's limit: ``total_memory_mb`` (else ``2 * memory_mb``) MiB in bytes."""
        return (self.total_memory_mb or 2 * self.memory_mb) * 1024 * 1024

    def rlimits(self, extra_processes: int = 0) -> dict[str, int]:
        """The ``resource.RLIMIT_*`` names and values set inside the sandbox.

        Args:
            extra_processes: processes the sandbox user already owns outside the sandbox (the
                unisolated mode shares the count with them), added to ``max_processes``.
        """
        return {
            "RLIMIT_AS": self.memory_mb * 1024 * 1024,
            "RLIMIT_CPU": math.ceil(self.cpu_seconds),
            "RLIMIT_NPROC": self.max_processes + extra_processes,
            "RLIMIT_FSIZE": self.max_file_mb * 1024 * 1024,
            "RLIMIT_NOFILE": self.max_open_files,
            "RLIMIT_CORE": 0,
        }
