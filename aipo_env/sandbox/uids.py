"""Unprivileged uids for sandboxed programs, leased so that no two live executions on the machine
share one, whatever process started them.

The uid is what the kernel counts ``RLIMIT_NPROC`` by, and what it keeps per-user state under
(keyrings, inotify and pipe-buffer quotas, ...): two executions with one uid would share a process
limit, and one could see what the other left behind.

A lease is an exclusive ``flock`` on the file ``<directory>/<uid>``. The directory is root's, mode
0700 (:func:`lock_directory`), so a sandboxed program can neither open nor hold those locks. The
kernel drops a lock when its holder dies, so a crashed process leaves no stale lease. Each process
starts its search at a pid-derived offset into the range, which keeps most acquisitions to one try
when several processes lease at once; when every uid is taken, :meth:`UidLeases.acquire` waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import threading
from pathlib import Path

#: the uids leased by default: 1024 of them, below 65534 (``nobody``) and 65535 (``(uid_t)-1`` in 16 bits)
FIRST_UID, UID_COUNT = 64001, 1024
#: where the lock files live: the first of these that is (or can be made) root's own 0700 directory
LOCK_DIRECTORIES = ("/run/aipo-sandbox/uids", "/var/lib/aipo-sandbox/uids")
_RETRY_SECONDS = 0.05


class UidLeases:
    """Leases uids in ``[first, first + count)`` with one exclusive lock file per uid.

    Thread-safe: the uids this process holds are kept in a set, so its threads never try each
    other's locks.

    Args:
        first: the lowest uid.
        count: how many uids.
        directory: the lock directory; ``None`` picks one with :func:`lock_directory` on first use.
    """

    def __init__(self, first: int = FIRST_UID, count: int = UID_COUNT, directory: Path | None = None) -> None:
        if count < 1 or first < 1:
            raise ValueError(f"the uid range must be positive, got first={first}, count={count}")
        self.first, self.count = first, count
        self._directory = directory
        self._held: dict[int, int] = {}  # uid -> file descriptor holding its lock
        self._changed = threading.Condition()
        self._start = os.getpid() * 7919 % count  # a prime stride spreads neighbouring pids

    @property
    def directory(self) -> Path:
        """The lock directory (chosen, and created, on first use)."""
        if self._directory is None:
            self._directory = lock_directory()
        return self._directory

    def acquire(self) -> int:
        """A uid that no other live lease on the machine holds; waits while all are taken."""
        directory = self.directory
        with self._changed:
            while True:
                for step in range(self.count):
                    uid = self.first + (self._start + step) % self.count
                    if uid not in self._held and (fd := _try_lock(directory / str(uid))) is not None:
                        self._held[uid] = fd
                        self._start = (self._start + step + 1) % self.count
                        return uid
                # every uid is leased (here or elsewhere): wait for ours, poll for the others'
                self._changed.wait(_RETRY_SECONDS)

    def release(self, uid: int) -> None:
        """Give ``uid`` back (its processes must be gone)."""
        with self._changed:
            fd = self._held.pop(uid)
            # unlock first: a process forked from this one may share the descriptor and keep it open
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._changed.notify()

    def held(self) -> list[int]:
        """The uids this process leases now."""
        with self._changed:
            return sorted(self._held)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock_directory(candidates: tuple[str, ...] = LOCK_DIRECTORIES) -> Path:
    """The first of ``candidates`` that is, or can be made, this user's own directory of mode 0700.

    Only the directory itself is checked (its parents keep the default mode). When none works (no writable ``/run`` or ``/var/lib``),
    a directory under the system's temporary directory named for this user is used, after the
    same ownership check (``mkdir`` of a name someone else created first fails that check).

    Raises:
        RuntimeError: not even the fallback is a safe directory.
    """
    fallback = os.path.join(tempfile.gettempdir(), f"aipo-sandbox-uids-{os.getuid()}")
    for candidate in (*candidates, fallback):
        with contextlib.suppress(OSError):
            os.makedirs(candidate, mode=0o700, exist_ok=True)
            if _private(candidate):
                return Path(candidate)
    raise RuntimeError(
        f"no private lock directory for sandbox uids: {fallback} is not this user's 0700 directory"
    )


def _private(path: str) -> bool:
    """Whether ``path`` is a real directory, this user's, that nobody else may enter or change."""
    info = os.lstat(path)
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0
