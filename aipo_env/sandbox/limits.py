"""The resource limits of one sandboxed execution.

Every limit is applied to the sandboxed process itself (``setrlimit`` inside the sandbox, soft
and hard limit equal, so the program cannot raise them again), except the wall-clock limit and
the output cap, which the parent enforces by killing the whole process group.
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
        disk_mb: what the program may write in all, in MiB, in each of its working directory
            and its private ``/tmp`` (each a tmpfs of this size in ``bwrap`` mode, and ``/tmp``
            in ``unshare`` mode as root); elsewhere only ``max_file_mb`` per file holds.

    Memory is bounded per process: all of a sandbox's processes together may hold up to
    ``max_processes * memory_mb`` (512 MiB x 8 = 4 GiB by default), since no cgroup is used.
    """

    wall_seconds: float = 10.0
    cpu_seconds: float = 10.0
    memory_mb: int = 512
    max_processes: int = 8
    max_output_bytes: int = 256 * 1024
    max_file_mb: int = 16
    max_open_files: int = 64
    disk_mb: int = 64

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
        if self.max_open_files < 16:
            raise ValueError(f"Limits.max_open_files={self.max_open_files} is too small; use >= 16")

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
