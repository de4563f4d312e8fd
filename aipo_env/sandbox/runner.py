"""One sandboxed execution: a fresh working directory, the program, its limits, and clean-up.

:func:`execute` writes ``main.py`` (and any extra files) into a new temporary directory, starts
the interpreter under the chosen :class:`~aipo_env.sandbox.isolation.Isolation` in a new
session with a scrubbed environment (in its own memory cgroup where there is one, see
:mod:`~aipo_env.sandbox.cgroup`; with the system-call filter in ``bwrap`` mode, see
:mod:`~aipo_env.sandbox.seccomp`), feeds it ``stdin``, collects at most
``limits.max_output_bytes`` of each output stream, kills the whole process group (and the rest
of its cgroup) when the program ends, runs out of wall time or writes too much, and removes the
directory and the cgroup.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aipo_env.sandbox.cgroup import ExecutionCgroup, memory_cgroups
from aipo_env.sandbox.isolation import Isolation
from aipo_env.sandbox.limits import Limits
from aipo_env.sandbox.seccomp import filter_fd

Status = Literal["ok", "exit", "signal", "timeout", "output_limit", "memory_limit"]
_POLL_SECONDS = 0.05
_CHUNK = 65536


@dataclass(frozen=True)
class ExecutionResult:
    """What one execution did.

    Attributes:
        status: ``ok`` (exit status 0), ``exit`` (another exit status), ``signal`` (killed by a
            signal it caused: ``SIGXCPU`` for the CPU limit, ``SIGKILL``, ``SIGSEGV``, ...),
            ``timeout`` (wall-clock limit), ``output_limit`` (too much output) or
            ``memory_limit`` (the kernel's OOM killer stopped it at ``total_memory_mb``).
        returncode: the exit status as the sandbox reported it (``None`` if it was killed by
            the parent before it exited).
        stdout: the first ``max_output_bytes`` of standard output, decoded as UTF-8.
        stderr: the same for standard error.
        seconds: wall-clock time from start to clean-up.
        signal: the name of the signal of a ``signal`` status.
        isolation: the isolation mode it ran under.
        limits: the limits it ran under.
    """

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    signal: str | None = None
    isolation: str = "none"
    limits: Limits = Limits()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        """One line for people: what happened, with the limit that was hit."""
        limits = self.limits
        if self.status == "ok":
            return "exited normally"
        if self.status == "exit":
            return f"exited with status {self.returncode}"
        if self.status == "timeout":
            return f"exceeded the wall-clock limit of {limits.wall_seconds:g} s and was killed"
        if self.status == "output_limit":
            return f"wrote more than {limits.max_output_bytes} bytes of output and was killed"
        if self.status == "memory_limit":
            mib = limits.total_memory_bytes() // (1024 * 1024)
            return f"exceeded the total memory limit of {mib} MiB and was killed"
        if self.signal == "SIGXCPU":
            return f"exceeded the CPU-time limit of {limits.cpu_seconds:g} s"
        return f"was killed by {self.signal}"


def execute(
    source: str,
    *,
    isolation: Isolation,
    limits: Limits,
    stdin: str | bytes = b"",
    files: Mapping[str, str | bytes] | None = None,
    uid: int | None = None,
) -> ExecutionResult:
    """Run the Python program ``source`` in a fresh sandbox and wait for it.

    Args:
        source: the program, run as ``main.py`` and ``__main__`` in its working directory.
        isolation: how it is isolated (see :func:`~aipo_env.sandbox.isolation.detect_isolation`).
        limits: its resource limits.
        stdin: the bytes (or UTF-8 text) on its standard input.
        files: more files for the working directory, by relative name.
        uid: the unprivileged uid it runs as when ``isolation.drop_privileges``.
    """
    with prepared(source, isolation, limits, files, uid) as launch:
        with tempfile.TemporaryFile() as stdin_file:
            # a file, not a pipe: nothing can block on a program that never reads its input
            stdin_file.write(stdin.encode() if isinstance(stdin, str) else stdin)
            stdin_file.seek(0)
            process = launch.start(stdin_file)
            status, stdout, stderr = _watch(process, limits)
        return finish(process, status, stdout, stderr, launch)


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one prepared execution.

    Attributes:
        workdir: its fresh working directory on the host.
        command: the argv (joining ``cgroup`` first when there is one).
        environment: the scrubbed environment.
        started: when the preparation began (``time.monotonic()``).
        isolation: the isolation it runs under.
        limits: its limits.
        pass_fds: descriptors the command inherits (the system-call filter's).
        cgroup: its memory cgroup, or ``None`` where the machine has no usable one.
    """

    workdir: Path
    command: list[str]
    environment: dict[str, str]
    started: float
    isolation: Isolation
    limits: Limits
    pass_fds: tuple[int, ...] = ()
    cgroup: ExecutionCgroup | None = None

    def start(self, stdin: object) -> subprocess.Popen:
        """Start the command in a new session with pipes for stdout and stderr."""
        return subprocess.Popen(
            self.command,
            stdin=stdin,  # type: ignore[arg-type]
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            env=self.environment,
            start_new_session=True,
            pass_fds=self.pass_fds,
        )


@contextlib.contextmanager
def prepared(
    source: str,
    isolation: Isolation,
    limits: Limits,
    files: Mapping[str, str | bytes] | None,
    uid: int | None,
) -> Iterator[Launch]:
    """A fresh working directory with ``main.py`` and ``files``, a memory cgroup where the machine
    has one, and the filter's descriptor in ``bwrap`` mode; all removed afterwards (the cgroup's
    processes killed first)."""
    workdir = Path(tempfile.mkdtemp(prefix="aipo-sandbox-"))
    started = time.monotonic()
    cgroup: ExecutionCgroup | None = None
    try:
        _populate(workdir, {**(files or {}), "main.py": source}, uid if isolation.drop_privileges else None)
        inside = isolation.workdir_inside(workdir)
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": inside,
            "TMPDIR": inside,
        }
        cgroups = memory_cgroups()
        cgroup = cgroups.create(limits.total_memory_bytes()) if cgroups is not None else None
        with filter_fd() if isolation.mode == "bwrap" else contextlib.nullcontext() as seccomp:
            command = isolation.command(workdir, limits, uid, seccomp_fd=seccomp)
            yield Launch(
                workdir=workdir,
                command=cgroup.wrap(command) if cgroup is not None else command,
                environment=environment,
                started=started,
                isolation=isolation,
                limits=limits,
                pass_fds=() if seccomp is None else (seccomp,),
                cgroup=cgroup,
            )
    finally:
        if cgroup is not None:
            cgroup.remove()
        remove_tree(workdir)


def finish(
    process: subprocess.Popen, status: Status, stdout: bytes, stderr: bytes, launch: Launch
) -> ExecutionResult:
    """Kill what is left of the program's process group and describe how it ended.

    An execution whose cgroup saw an OOM kill and that then exited badly or by a signal ended at
    the total memory limit (``memory_limit``); the parent's own verdicts (``timeout``,
    ``output_limit``) and a clean exit stand.
    """
    isolation, limits = launch.isolation, launch.limits
    kill_group(process)
    process.wait()
    returncode = process.returncode if status not in ("timeout", "output_limit") else None
    number = isolation.signal_number(returncode) if returncode is not None else None
    if status == "ok" and returncode != 0:
        status = "signal" if number is not None else "exit"
        if launch.cgroup is not None and launch.cgroup.oom_kills() > 0:
            status = "memory_limit"
    return ExecutionResult(
        status=status,
        returncode=returncode,
        stdout=stdout.decode(errors="replace"),
        stderr=stderr.decode(errors="replace"),
        seconds=time.monotonic() - launch.started,
        signal=signal.Signals(number).name if number in signal.valid_signals() else None,
        isolation=isolation.mode,
        limits=limits,
    )


def _watch(process: subprocess.Popen, limits: Limits) -> tuple[Status, bytes, bytes]:
    """Collect output until the program exits (``ok``; refined by the caller) or a limit is hit."""
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + limits.wall_seconds
    buffers = {process.stdout: bytearray(), process.stderr: bytearray()}
    status: Status = "ok"
    with selectors.DefaultSelector() as selector:
        for stream in buffers:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status = "timeout"
                break
            for key, _ in selector.select(min(remaining, _POLL_SECONDS)):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffers[key.fileobj] += chunk  # type: ignore[index]
                if len(buffers[key.fileobj]) > limits.max_output_bytes:  # type: ignore[index]
                    status = "output_limit"
            if status == "output_limit" or _exited(process.pid):
                # a child that kept the pipes open must not keep us waiting: the group dies next
                break
    kill_group(process)
    process.wait()
    cap = limits.max_output_bytes
    for stream, buffer in buffers.items():
        _drain(stream.fileno(), buffer, cap + 1)
        stream.close()
    return status, bytes(buffers[process.stdout][:cap]), bytes(buffers[process.stderr][:cap])


def _drain(fd: int, buffer: bytearray, cap: int) -> None:
    """Read what is left in a pipe without waiting for writers that may still hold it open."""
    os.set_blocking(fd, False)
    while len(buffer) < cap:
        try:
            chunk = os.read(fd, _CHUNK)
        except (BlockingIOError, OSError):
            return
        if not chunk:
            return
        buffer += chunk


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (so its process group id stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the program's whole process group (gone already is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _populate(workdir: Path, files: Mapping[str, str | bytes], uid: int | None) -> None:
    for name, content in files.items():
        path = (workdir / name).resolve()
        if workdir.resolve() not in path.parents:
            raise ValueError(
                f"sandbox file name {name!r} must be a relative path inside the working directory"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    if uid is not None:
        for directory, _, names in os.walk(workdir):
            os.chown(directory, uid, uid)
            for name in names:
                os.chown(os.path.join(directory, name), uid, uid)


def remove_tree(workdir: Path) -> None:
    """Remove ``workdir``, first giving back the permissions its program took away.

    Never follows a symbolic link: a program that leaves a link to a host directory inside a
    directory it made unreadable must not get the host directory's permissions changed.
    """
    shutil.rmtree(workdir, ignore_errors=True)
    if not os.path.lexists(workdir):
        return
    pending = [str(workdir)]
    while pending:  # a loop, not recursion: a program may nest directories very deeply
        directory = pending.pop()
        with contextlib.suppress(OSError):
            if not stat.S_ISDIR(os.lstat(directory).st_mode):
                continue  # a link (or a file) in place of a directory: leave its target alone
            os.chmod(directory, 0o700)
            with os.scandir(directory) as entries:
                pending += [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    shutil.rmtree(workdir, ignore_errors=True)
