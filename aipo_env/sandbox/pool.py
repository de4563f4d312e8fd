"""The sandbox users call: runs Python programs in isolated processes, several at a time.

>>> with Sandbox(Limits(wall_seconds=5), workers=2) as sandbox:
...     result = sandbox.run("print(sum(range(10)))")
>>> result.status, result.stdout
('ok', '45\\n')

Each execution is a separate process (see :mod:`aipo_env.sandbox.runner`); threads only wait
on them, so ``workers`` executions really run in parallel. The isolation mode is detected on
first use (see :mod:`aipo_env.sandbox.isolation`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from tqdm.auto import tqdm

from aipo_env.sandbox.dialogue import Channel, converse
from aipo_env.sandbox.isolation import Isolation, Mode, detect_isolation
from aipo_env.sandbox.limits import Limits
from aipo_env.sandbox.runner import ExecutionResult, execute
from aipo_env.sandbox.uids import UidLeases

T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """One program for :meth:`Sandbox.run_many`.

    Attributes:
        source: the Python program.
        stdin: its standard input.
        files: extra files for its working directory, by relative name.
        limits: limits for this job instead of the sandbox's.
        dialogue: talk to the running program instead of feeding it ``stdin`` (see
            :func:`~aipo_env.sandbox.dialogue.converse`); its return value is the result's
            ``answer``.
    """

    source: str
    stdin: str | bytes = b""
    files: Mapping[str, str | bytes] | None = None
    limits: Limits | None = None
    dialogue: Callable[[Channel], Any] | None = None


class Sandbox:
    """Runs untrusted Python programs under limits, isolated from the host.

    Args:
        limits: the default limits of each execution.
        workers: how many executions may run at the same time (at least 1).
        isolation: ``"auto"`` (the strongest mode that works here; a :class:`SandboxWarning`
            says so once when that is weaker than bubblewrap), ``"bwrap"``, ``"unshare"``,
            ``"none"``, or an :class:`Isolation`.

        unsafe_run_as_root: when the parent is root and no mode can switch the program to an
            unprivileged uid, run it as root anyway (unsafe: it can then read and write
            whatever root can that its mode leaves visible). Off by default: such a sandbox
            refuses to run anything.

    Raises:
        SandboxUnavailable: on first use, when no mode (or not the requested one) works here.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        workers: int = 2,
        isolation: Mode | Literal["auto"] | Isolation = "auto",
        unsafe_run_as_root: bool = False,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if not isinstance(isolation, Isolation) and isolation not in ("auto", "bwrap", "unshare", "none"):
            raise ValueError(f"isolation must be 'auto', 'bwrap', 'unshare' or 'none', got {isolation!r}")
        self.limits = limits or Limits()
        self.workers = workers
        self._requested = isolation
        self._unsafe_root = unsafe_run_as_root
        self._isolation: Isolation | None = isolation if isinstance(isolation, Isolation) else None
        self._running = threading.BoundedSemaphore(workers)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def isolation(self) -> Isolation:
        """The isolation in use (detected on first access)."""
        if self._isolation is None:
            assert not isinstance(self._requested, Isolation)
            self._isolation = detect_isolation(self._requested, unsafe_run_as_root=self._unsafe_root)
        return self._isolation

    def run(
        self,
        source: str,
        *,
        stdin: str | bytes = b"",
        files: Mapping[str, str | bytes] | None = None,
        limits: Limits | None = None,
    ) -> ExecutionResult:
        """Run one program and wait for it; blocks while ``workers`` executions are running."""
        isolation = self.isolation
        with self._running:
            uid = _UIDS.acquire() if isolation.drop_privileges else None
            try:
                return execute(
                    source,
                    isolation=isolation,
                    limits=limits or self.limits,
                    stdin=stdin,
                    files=files,
                    uid=uid,
                )
            finally:
                if uid is not None:
                    _UIDS.release(uid)

    def converse(
        self,
        source: str,
        dialogue: Callable[[Channel], T],
        *,
        files: Mapping[str, str | bytes] | None = None,
        limits: Limits | None = None,
    ) -> tuple[ExecutionResult, T]:
        """Run one program while ``dialogue`` talks to it (see :func:`~aipo_env.sandbox.dialogue.converse`)."""
        isolation = self.isolation
        with self._running:
            uid = _UIDS.acquire() if isolation.drop_privileges else None
            try:
                return converse(
                    source, dialogue, isolation=isolation, limits=limits or self.limits, files=files, uid=uid
                )
            finally:
                if uid is not None:
                    _UIDS.release(uid)

    def run_many(self, jobs: Iterable[Job | str], *, progress: bool = False) -> list[Any]:
        """Run many programs, ``workers`` at a time; results come back in the order of ``jobs``.

        A job with a ``dialogue`` gives ``(result, answer)`` in its place.
        """
        listed = [job if isinstance(job, Job) else Job(job) for job in jobs]
        self.isolation  # noqa: B018 - detect once, before the threads start
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="aipo-sandbox")
            executor = self._executor
        futures = [
            executor.submit(self.converse, job.source, job.dialogue, files=job.files, limits=job.limits)
            if job.dialogue is not None
            else executor.submit(self.run, job.source, stdin=job.stdin, files=job.files, limits=job.limits)
            for job in listed
        ]
        return [future.result() for future in tqdm(futures, desc="sandbox", disable=not progress)]

    def close(self) -> None:
        """Stop the worker threads (running executions finish first). Safe to call twice."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: the machine-wide uid leases of this process's sandboxes (see :mod:`aipo_env.sandbox.uids`)
_UIDS = UidLeases()
