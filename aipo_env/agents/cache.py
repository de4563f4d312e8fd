"""An on-disk cache of model replies, so that repeated experiments do not pay twice.

Entries live in one SQLite file, keyed by a SHA-256 of the backend kind, the model, the chat
messages and the sampling settings (:func:`cache_key`); nothing else goes into the key, and no
API key is ever part of it. Every write is one SQLite transaction in WAL mode, so a process
killed mid-write leaves the file as it was before that write: complete entries or none. Many
processes (the workers of an ``AsyncVectorEnv``) may share one file.

A cache that cannot be opened or read (a corrupt file, a read-only disk) never stops an
episode: it logs one warning and from then on behaves as empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def cache_key(backend: str, model: str, messages: Any, sampling: Mapping[str, Any]) -> str:
    """The hex SHA-256 of the canonical JSON of ``(backend, model, messages, sampling)``."""
    payload = json.dumps(
        {"backend": backend, "model": model, "messages": messages, "sampling": dict(sampling)},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ReplyCache:
    """A key -> JSON value store in one SQLite file, safe across threads and processes.

    Args:
        path: the SQLite file; its directory is created on first use.
        timeout_s: how long a write waits for another process holding the lock.
    """

    def __init__(self, path: str | Path, timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._broken = False

    def get(self, key: str) -> dict[str, Any] | None:
        """The value stored under ``key``, or ``None`` (also when the cache is unusable)."""
        with self._lock:
            connection = self._connect()
            if connection is None:
                return None
            try:
                row = connection.execute("SELECT value FROM replies WHERE key = ?", (key,)).fetchone()
                return json.loads(row[0]) if row else None
            except (sqlite3.Error, ValueError) as error:
                self._give_up(error)
                return None

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` (JSON-ready) under ``key``, atomically; failures are only logged."""
        text = json.dumps(dict(value), ensure_ascii=False)
        with self._lock:
            connection = self._connect()
            if connection is None:
                return
            try:
                with connection:  # one transaction: committed whole, or rolled back
                    connection.execute("INSERT OR REPLACE INTO replies VALUES (?, ?)", (key, text))
            except sqlite3.OperationalError as error:
                if "locked" not in str(error):
                    self._give_up(error)
                # another process held the lock past the timeout: skip this entry, keep the cache
            except sqlite3.Error as error:
                self._give_up(error)

    def count(self) -> int:
        """The number of stored entries (0 when the cache is unusable)."""
        with self._lock:
            connection = self._connect()
            if connection is None:
                return 0
            try:
                return int(connection.execute("SELECT COUNT(*) FROM replies").fetchone()[0])
            except sqlite3.Error as error:
                self._give_up(error)
                return 0

    def close(self) -> None:
        """Close the file; the next use opens it again. Safe to call twice."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __getstate__(self) -> dict[str, Any]:
        # Connections and locks do not cross process boundaries; a copy reopens the file.
        return {"path": self.path, "timeout_s": self.timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["timeout_s"])  # type: ignore[misc]

    def _connect(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._connection is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(self.path, timeout=self.timeout_s, check_same_thread=False)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute(_SCHEMA)
                connection.commit()
                self._connection = connection
            except (OSError, sqlite3.Error) as error:
                self._give_up(error)
                return None
        return self._connection

    def _give_up(self, error: Exception) -> None:
        logger.warning("reply cache %s is unusable (%s); going on without it", self.path, error)
        self._broken = True
        if self._connection is not None:
            self._connection.close()
            self._connection = None
