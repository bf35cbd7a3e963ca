"""The local spool: batches of line protocol committed to SQLite (WAL) while InfluxDB is away.

A batch in the spool is durable (it survives ``kill -9`` of firegrid: WAL with synchronous=NORMAL
loses nothing on a process crash, only on a power cut with ``durable_fsync`` off). Rows drain in
insertion order, so readings of one device reach InfluxDB in order.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from pathlib import Path


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
        row = connection.execute("SELECT COUNT(*), COALESCE(SUM(lines), 0) FROM batches").fetchone()
        self._lock = threading.Lock()
        self._batches, self._lines = int(row[0]), int(row[1])

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
    def empty(self) -> bool:
        return self._batches == 0

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        body = zlib.compress("\n".join(lines).encode(), 1)
        connection = self._connection()
        with connection:
            connection.execute(
                "INSERT INTO batches (lines, created_ms, body) VALUES (?, ?, ?)",
                (len(lines), int(time.time() * 1000), body),
            )
        with self._lock:
            self._batches += 1
            self._lines += len(lines)

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
        """Delete every batch up to and including ``last_id`` (they are in InfluxDB now)."""
        connection = self._connection()
        with connection:
            row = connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(lines), 0) FROM batches WHERE id <= ?", (last_id,)
            ).fetchone()
            connection.execute("DELETE FROM batches WHERE id <= ?", (last_id,))
        with self._lock:
            self._batches -= int(row[0])
            self._lines -= int(row[1])

    def close(self) -> None:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
