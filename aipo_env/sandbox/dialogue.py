"""A sandboxed execution that the parent talks to while it runs: requests in, reply lines out.

:func:`converse` starts the program like :func:`~aipo_env.sandbox.runner.execute` (same
isolation, limits, working directory, scrubbed environment, group kill and clean-up) but keeps
its standard input and output open as a :class:`Channel`, and hands the channel to a
``dialogue`` function that runs in the parent. The code tasks use it so that the judge of a
test stays outside the sandbox and only sends calls in.

The wall-clock limit covers the whole dialogue: a receive that would wait past it raises
:class:`ChannelClosed`, and the execution ends as ``timeout``. Standard error is collected on a
thread, up to ``max_output_bytes`` (more kills the execution, as ``output_limit``); standard
output is the reply stream, and its total is bounded the same way.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from aipo_env.sandbox.isolation import Isolation
from aipo_env.sandbox.limits import Limits
from aipo_env.sandbox.runner import ExecutionResult, Status, finish, kill_group, prepared

T = TypeVar("T")
_CHUNK = 65536
_EXIT_GRACE_SECONDS = 1.0


class ChannelClosed(Exception):
    """The program ended, stopped answering in time, or broke the output bounds."""


class NoAnswer(ChannelClosed):
    """The program did not reply within the time a receive allowed (its limit is not yet hit)."""


class Channel:
    """The parent's end of a running program: framed requests out, reply lines in."""

    def __init__(self, process: subprocess.Popen, limits: Limits, deadline: float) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._stdin = process.stdin.fileno()
        self._stdout = process.stdout.fileno()
        self._deadline = deadline
        self._budget = limits.max_output_bytes * 4 + 1024 * 1024  # replies are data, not prints
        self._pending = bytearray()
        self.status: Status = "ok"
        os.set_blocking(self._stdin, False)
        os.set_blocking(self._stdout, False)

    def send(self, payload: bytes) -> None:
        """Write one frame (4-byte big-endian length, then ``payload``) to the program's stdin."""
        data = memoryview(struct.pack(">I", len(payload)) + payload)
        with selectors.DefaultSelector() as selector:
            selector.register(self._stdin, selectors.EVENT_WRITE)
            while data:
                if not selector.select(self.remaining(None)):
                    self._expire(None)
                try:
                    written = os.write(self._stdin, data)
                except BlockingIOError:
                    continue
                except OSError as exc:  # the program closed its end: it exited
                    raise ChannelClosed("the program stopped reading its requests") from exc
                data = data[written:]

    def receive(self, seconds: float | None = None) -> bytes:
        """The next reply line (without its newline), waiting at most ``seconds``.

        Raises:
            NoAnswer: no reply within ``seconds`` (``status`` stays ``ok``: the caller decides).
            ChannelClosed: the program exited, or ran into the wall-clock limit (``timeout``)
                or the output bound (``output_limit``).
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self._stdout, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                if not selector.select(self.remaining(seconds)):
                    self._expire(seconds)
                try:
                    chunk = os.read(self._stdout, _CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise ChannelClosed("the program exited")
                self._pending += chunk
                self._budget -= len(chunk)
                if self._budget < 0:
                    self.status = "output_limit"
                    raise ChannelClosed("the program sent too much")
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending = bytearray(rest)
        return line

    def remaining(self, seconds: float | None = None) -> float:
        """Seconds until the wall-clock limit, or until ``seconds`` from now if that is sooner."""
        left = self._deadline - time.monotonic()
        if seconds is not None:
            left = min(left, seconds)
        return max(left, 0.0)

    def _expire(self, seconds: float | None) -> None:
        if seconds is None or self._deadline - time.monotonic() <= 0:
            self.status = "timeout"
            raise ChannelClosed("the program ran past the wall-clock limit")
        raise NoAnswer(f"the program did not answer within {seconds:g} s")


def converse(
    source: str,
    dialogue: Callable[[Channel], T],
    *,
    isolation: Isolation,
    limits: Limits,
    files: Mapping[str, str | bytes] | None = None,
    uid: int | None = None,
) -> tuple[ExecutionResult, T]:
    """Run ``source`` in a fresh sandbox while ``dialogue(channel)`` talks to it.

    When ``dialogue`` returns, the program's standard input is closed, it gets a moment to exit
    by itself, and then its whole process group is killed.

    Returns:
        The execution's result and what ``dialogue`` returned.
    """
    with prepared(source, isolation, limits, files, uid) as launch:
        process = launch.start(subprocess.PIPE)
        stderr = _Collector(process, limits.max_output_bytes)
        channel = Channel(process, limits, launch.started + limits.wall_seconds)
        try:
            answer = dialogue(channel)
        finally:
            assert process.stdin is not None
            with contextlib.suppress(OSError):  # the program closed its end first
                process.stdin.close()
            if channel.status == "ok":
                try:
                    process.wait(min(_EXIT_GRACE_SECONDS, channel.remaining()))
                except subprocess.TimeoutExpired:
                    channel.status = "timeout" if channel.remaining() <= 0 else "ok"
            status: Status = "output_limit" if stderr.overflowed else channel.status
            result = finish(process, status, b"", stderr.close(), launch)
    return result, answer


class _Collector:
    """Reads a program's standard error on a thread, keeping the first ``cap`` bytes."""

    def __init__(self, process: subprocess.Popen, cap: int) -> None:
        assert process.stderr is not None
        self._stream, self._cap, self._process = process.stderr, cap, process
        self.buffer = bytearray()
        self.overflowed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := self._stream.read1(_CHUNK):
            if len(self.buffer) <= self._cap:
                self.buffer += chunk
            if len(self.buffer) > self._cap and not self.overflowed:
                self.overflowed = True
                kill_group(self._process)

    def close(self) -> bytes:
        self._thread.join(timeout=2.0)
        if not self._thread.is_alive():
            self._stream.close()
        return bytes(self.buffer[: self._cap])
