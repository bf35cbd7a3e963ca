"""The local spool: batches of line protocol committed to SQLite (WAL) while InfluxDB is away.

A batch in the spool is durable (it survives ``kill -9`` of firegrid: WAL with synchronous=NORMAL
loses nothing on a process crash, only on a power cut with ``durable_fsync`` off). Rows drain in
insertion order, so readings of one device reach InfluxDB in order.

A full filesystem is :class:`SpoolFullError` (for an append, and for the delete after a drain,
which needs WAL pages too), never a crash: the store holds the batch unacknowledged and tries
again. The spool's size is the sum of its compressed batches (``size_bytes``), what the store
bounds with ``FIREGRID_SPOOL_MAX_MB``; the file itself is larger by SQLite's pages and WAL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from devices import SpoolFullError

T = TypeVar("T")


def _unless_full(path: Path, work: Callable[[], T]) -> T:
    """``work()``, with SQLite's "database or disk is full" as :class:`SpoolFullError`."""
    try:
        return work()
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc):
            raise SpoolFullError(f"no space left for the spool {path}: {exc}") from exc
        raise


class Spool:
    """Append from one thread, drain from another; each thread uses its own connection."""

    def __init__(self, path: Path, *, durable_fsync: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sync = "FULL" if durable_fsync else "NORMAL"
        self._local = threading.local()
        connection = self._connection()
        connection.execute(
            "CREATE TABLE IF NOT EXISTS batches ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, lines INTEGER NOT NULL,"
            " created_ms INTEGER NOT NULL, body BLOB NOT NULL)"
        )
        connection.commit()
        row = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(lines), 0), COALESCE(SUM(LENGTH(body)), 0) FROM batches"
        ).fetchone()
        self._lock = threading.Lock()
        self._batches, self._lines, self._bytes = int(row[0]), int(row[1]), int(row[2])

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self._sync}")
            self._local.connection = connection
        return connection

    @property
    def depth(self) -> int:
        """Lines waiting in the spool."""
        return self._lines

    @property
    def size_bytes(self) -> int:
        """Compressed bytes waiting in the spool."""
        return self._bytes

    @property
    def empty(self) -> bool:
        return self._batches == 0

    @staticmethod
    def pack(lines: list[str]) -> bytes:
        """A batch as the spool stores it (its length is what the batch adds to ``size_bytes``)."""
        return zlib.compress("\n".join(lines).encode(), 1)

    def append(self, lines: list[str], body: bytes | None = None) -> None:
        """Commit a batch (``body``: its :meth:`pack`, when the caller has it already). Raises
        :class:`SpoolFullError` when the filesystem is full (nothing is committed then)."""
        if not lines:
            return
        packed = self.pack(lines) if body is None else body
        connection = self._connection()

        def insert() -> None:
            with connection:
                connection.execute(
                    "INSERT INTO batches (lines, created_ms, body) VALUES (?, ?, ?)",
                    (len(lines), int(time.time() * 1000), packed),
                )

        _unless_full(self.path, insert)
        with self._lock:
            self._batches += 1
            self._lines += len(lines)
            self._bytes += len(packed)

    def peek(self, max_lines: int) -> tuple[int, list[str]]:
        """The oldest batches, up to ``max_lines`` lines (at least one batch): (last id, lines)."""
        connection = self._connection()
        last_id, lines = 0, list[str]()
        for row_id, count, body in connection.execute(
            "SELECT id, lines, body FROM batches ORDER BY id LIMIT 64"
        ):
            if lines and len(lines) + count > max_lines:
                break
            lines.extend(zlib.decompress(body).decode().split("\n"))
            last_id = row_id
        return last_id, lines

    def remove_through(self, last_id: int) -> None:
        """Delete every batch up to and including ``last_id`` (they are in InfluxDB now). Raises
        :class:`SpoolFullError` when even the delete finds no room (then nothing is deleted, and
        those batches are written again later: the same points, so no harm)."""
        connection = self._connection()

        def delete() -> tuple[int, int, int]:
            with connection:
                row = connection.execute(
                    "SELECT COUNT(*), COALESCE(SUM(lines), 0), COALESCE(SUM(LENGTH(body)), 0)"
                    " FROM batches WHERE id <= ?",
                    (last_id,),
                ).fetchone()
                connection.execute("DELETE FROM batches WHERE id <= ?", (last_id,))
            return int(row[0]), int(row[1]), int(row[2])

        batches, lines, size = _unless_full(self.path, delete)
        with self._lock:
            self._batches -= batches
            self._lines -= lines
            self._bytes -= size

    def close(self) -> None:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
