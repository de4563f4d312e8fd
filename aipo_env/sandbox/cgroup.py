"""A memory cgroup per execution: one bound on everything its processes can pin.

``RLIMIT_AS`` bounds each process's address space, but not what outlives a mapping or belongs to
no process: files in a tmpfs (the sandbox's own ``/tmp``, or one mounted in a nested namespace),
SysV shared memory, memfds, pipe buffers and other kernel memory. The memory controller charges
all of those to the cgroup of the process that allocated them, so each execution runs in a child
cgroup of this process's own, created before the program starts and limited to
``Limits.total_memory_bytes()``:

* cgroup v1 (a ``memory`` hierarchy, as on this project's CI): ``memory.limit_in_bytes`` and, where
  swap accounting exists, ``memory.memsw.limit_in_bytes`` to the same value (no escape into swap);
* cgroup v2: ``memory.max``, ``memory.swap.max = 0``, and ``memory.oom.group = 1`` (an OOM kill
  takes the whole execution).

Past the limit the kernel first reclaims, then its OOM killer kills a process of the execution
(the execution's status is then ``memory_limit``); a write into a full tmpfs may instead fail
with ``ENOMEM``/``ENOSPC`` in the program. The command joins the cgroup itself, before ``exec``
(``/bin/sh -c 'echo 0 > tasks && exec "$@"'``), so nothing of the program runs outside it.
Afterwards whatever is left in it is killed and the empty cgroup removed.

Why ``echo 0 > tasks`` on v1: it moves the calling thread only, which the kernel does without its
global threadgroup lock; moving a whole process (``cgroup.procs``) takes that lock for writing,
which waits for an RCU grace period (5-15 ms measured here) while every ``fork`` on the machine
waits too. The shell is single-threaded, so moving its thread moves the process. cgroup v2 has
no such file for ordinary cgroups and pays that price (``cgroup.procs``).

A cgroup is "usable" when this process can create a child of its own cgroup and set its limit
(as root on most machines; with a delegated cgroup v2 subtree otherwise). Where none is,
executions still run, bounded per process only, and a :class:`SandboxWarning` says so once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aipo_env.sandbox.isolation import SandboxWarning

_PREFIX = "aipo-"
_COUNTER = itertools.count()
_EMPTY_SECONDS = 5.0
#: the shell step that joins a cgroup, and the file it writes to, per cgroup version
_JOIN = {
    1: ('echo 0 > "$0" || exit 125; exec "$@"', "tasks"),
    2: ('echo $$ > "$0" || exit 125; exec "$@"', "cgroup.procs"),
}


@dataclass(frozen=True)
class MemoryCgroups:
    """Where this process creates its executions' cgroups.

    Attributes:
        parent: this process's own cgroup directory in the memory hierarchy.
        version: 1 (the v1 ``memory`` controller) or 2 (the unified hierarchy).
    """

    parent: Path
    version: int

    def create(self, limit_bytes: int) -> ExecutionCgroup:
        """A new empty child cgroup limited to ``limit_bytes``."""
        path = self.parent / f"{_PREFIX}{os.getpid()}-{next(_COUNTER)}"
        path.mkdir(mode=0o755)
        try:
            if self.version == 1:
                _write(path / "memory.limit_in_bytes", limit_bytes)
                if (path / "memory.memsw.limit_in_bytes").exists():  # only when swap is accounted
                    _write(path / "memory.memsw.limit_in_bytes", limit_bytes)
                elif (path / "memory.swappiness").exists():  # else nothing may go to swap past the limit
                    _write(path / "memory.swappiness", 0)
            else:
                _write(path / "memory.max", limit_bytes)
                for name, value in (("memory.swap.max", 0), ("memory.oom.group", 1)):
                    if (path / name).exists():
                        _write(path / name, value)
        except OSError:
            path.rmdir()
            raise
        return ExecutionCgroup(path, self.version)


@dataclass(frozen=True)
class ExecutionCgroup:
    """One execution's cgroup.

    Attributes:
        path: its directory.
        version: 1 or 2, as :class:`MemoryCgroups`.
    """

    path: Path
    version: int

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` preceded by the shell step that moves it into this cgroup before it starts."""
        script, joined = _JOIN[self.version]
        return ["/bin/sh", "-c", script, str(self.path / joined), *command]

    def oom_kills(self) -> int:
        """How many processes the OOM killer killed in this cgroup for hitting its limit."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError):
            found = re.search(r"^oom_kill (\d+)$", (self.path / name).read_text(), re.MULTILINE)
            return int(found.group(1)) if found else 0
        return 0

    def remove(self) -> None:
        """Kill every process left in the cgroup, then remove it (gone already is fine)."""
        deadline = time.monotonic() + _EMPTY_SECONDS
        while (pids := self._pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)
        while True:  # the last exits may still be under way: rmdir says EBUSY until they end
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= deadline:
                    return  # left for _remove_stale of a later process; its limit still holds
                time.sleep(0.001)

    def _pids(self) -> list[int]:
        try:
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []


def _write(path: Path, value: int) -> None:
    path.write_text(f"{value}\n")


def memory_cgroups() -> MemoryCgroups | None:
    """This process's usable memory cgroup, or ``None`` (with one :class:`SandboxWarning`)."""
    found = _detect()
    if isinstance(found, str):
        with _WARNED_LOCK:
            if not _WARNED:
                _WARNED.append(found)
                warnings.warn(
                    f"Sandbox: no usable memory cgroup ({found}): an execution's memory is bounded per "
                    "process only (address space x process count), not what it pins in tmpfs files, "
                    "shared memory or the kernel. Run as root on a machine with the cgroup v1 memory "
                    "controller or a delegated cgroup v2 subtree for the total bound.",
                    SandboxWarning,
                    stacklevel=5,
                )
        return None
    return found


_WARNED: list[str] = []
_WARNED_LOCK = threading.Lock()


@cache
def _detect() -> MemoryCgroups | str:
    """The usable cgroup, or why there is none."""
    try:
        found = _own_memory_cgroup()
        if isinstance(found, str):
            return found
        cgroups = found
        if cgroups.version == 2:
            problem = _enable_memory_for_children(cgroups.parent)
            if problem:
                return problem
        _remove_stale(cgroups.parent)
        cgroups.create(64 * 1024 * 1024).remove()  # can we make, limit and remove a child?
        return cgroups
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def _own_memory_cgroup(proc_cgroup: str | None = None, mountinfo: str | None = None) -> MemoryCgroups | str:
    """This process's cgroup in the v1 ``memory`` hierarchy, else in the v2 one.

    Args:
        proc_cgroup: the text of ``/proc/self/cgroup`` (read when ``None``).
        mountinfo: the text of ``/proc/self/mountinfo`` (read when ``None``).
    """
    proc_cgroup = Path("/proc/self/cgroup").read_text() if proc_cgroup is None else proc_cgroup
    mountinfo = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
    own: dict[int, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            own[1] = path
        elif controllers == "":
            own[2] = path
    for version in (1, 2):
        if version not in own:
            continue
        mount = _mount_of(version, mountinfo)
        if mount is None:
            continue
        point, root = mount
        relative = os.path.relpath(own[version], root) if own[version] != root else "."
        if relative.startswith(".."):
            continue  # our cgroup is outside what is mounted
        parent = Path(point, relative).resolve()
        if version == 2 and "memory" not in (parent / "cgroup.controllers").read_text().split():
            return "the cgroup v2 hierarchy has no memory controller here"
        return MemoryCgroups(parent, version)
    return "no cgroup memory controller is mounted"


def _mount_of(version: int, mountinfo: str) -> tuple[str, str] | None:
    """``(mount point, root inside the hierarchy)`` of the v1 memory or the v2 hierarchy."""
    for line in mountinfo.splitlines():
        fields = line.split()
        separator = fields.index("-")
        kind, options = fields[separator + 1], fields[separator + 3].split(",")
        if (version == 1 and kind == "cgroup" and "memory" in options) or (
            version == 2 and kind == "cgroup2"
        ):
            return fields[4].replace("\\040", " "), fields[3]
    return None


def _enable_memory_for_children(parent: Path) -> str | None:
    """Turn the memory controller on for ``parent``'s children (v2), or say why it cannot be."""
    control = parent / "cgroup.subtree_control"
    if "memory" in control.read_text().split():
        return None
    try:
        control.write_text("+memory\n")
    except OSError as exc:  # EBUSY: our cgroup holds processes (v2's no-internal-process rule)
        return f"cannot enable the memory controller below {parent}: {exc.strerror}"
    return None


def _remove_stale(parent: Path) -> None:
    """Remove empty execution cgroups that processes which have died left behind."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            owner = re.fullmatch(rf"{_PREFIX}(\d+)-\d+", entry.name)
            if owner and not _alive(int(owner.group(1))):
                with contextlib.suppress(OSError):
                    entry.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
