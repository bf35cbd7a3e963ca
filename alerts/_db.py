"""SQLite persistence of events and their transitions (WAL; one commit per store call).

A ``kill -9`` loses nothing committed: WAL with ``synchronous=NORMAL`` survives a process crash
(only a power cut may lose the last commits, unless ``durable_fsync``). The partial unique index
on ``dedup_key`` enforces one not-closed event per key in the database itself.

WAL checkpoints (copying the log into the database file, with an fsync) run on a thread of their
own rather than inside whichever commit crosses SQLite's threshold: commits are on the alert path
(an event is committed before it is published), and a checkpoint in one took 3–22 ms now and then
(bench/bench_alert_latency.py, traced). A passive checkpoint never blocks the writer.

The ``outbox`` table holds the publications of event changes until the broker acknowledges them
(CONTRACT §13, ``alerts/_outbox.py``); they are inserted in the transaction of the change.

Schema 2 added ``events.rev`` and ``outbox``: an event store of schema 1 gets both at open, each
event's ``rev`` counted from its transitions (one per published change: every transition but
comments and the ``severity`` note that accompanies a repeat). Schema 3 added ``outbox.urgent``
(publications of fire alarms, handed over first; ``alerts._routing.URGENT_TYPES``): the rows of
an outbox of schema 2 get it at open from their payload's ``type``.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alerts._event import EVENT_FIELDS, Event, State
from alerts._routing import URGENT_TYPES
from rules import Severity

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
CHECKPOINT_INTERVAL_S = 1.0

# the event JSON's fields (in order), plus what only the store needs
_COLUMNS = (
    EVENT_FIELDS[0],
    "dedup_key",
    *EVENT_FIELDS[1:],
    "opened_ms",
    "deadline_ms",
    "last_raise_ts",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM events"
_INSERT = f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
# Narrow UPDATEs (issue 17): only the columns a change can touch, and none of an index's columns
# (dedup_key, state, raised_at) unless the state changed, so SQLite leaves the indexes alone.
REPEAT_COLUMNS = ("count", "value", "threshold", "message", "updated_at", "rev", "last_raise_ts")
"""What a plain repeat changes (the coalesced repeats of alerts/_store.py)."""
CHANGE_COLUMNS = (
    *REPEAT_COLUMNS,
    "severity",
    "cleared",
    "escalated",
    "district",
    "grid_id",
    "lat",
    "lon",
    "station_id",
    "deadline_ms",
)
"""What any change but a move of the lifecycle changes (clear, severity, escalation, reroute)."""
STATE_COLUMNS = (*CHANGE_COLUMNS, "state")
"""What an action changes (the state: two indexes are updated)."""
_UPDATES = tuple(
    f"UPDATE events SET {', '.join(f'{c} = ?' for c in columns)} WHERE event_id = ?"
    for columns in (REPEAT_COLUMNS, CHANGE_COLUMNS, STATE_COLUMNS)
)
_GETTERS = tuple(
    operator.attrgetter(*columns, "event_id") for columns in (REPEAT_COLUMNS, CHANGE_COLUMNS, STATE_COLUMNS)
)
REPEAT, CHANGE, STATE = 0, 1, 2
"""How wide an event's UPDATE is (:meth:`Writer.update`)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    dedup_key TEXT NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    cleared INTEGER NOT NULL,
    escalated INTEGER NOT NULL,
    district TEXT NOT NULL,
    grid_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    lat REAL,
    lon REAL,
    station_id TEXT,
    value REAL,
    threshold REAL,
    count INTEGER NOT NULL,
    raised_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    message TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 1,
    opened_ms INTEGER NOT NULL,
    deadline_ms INTEGER,
    last_raise_ts INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_one_active_per_key ON events (dedup_key) WHERE state != 'closed';
CREATE INDEX IF NOT EXISTS events_by_raised ON events (raised_at);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, raised_at);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    action TEXT NOT NULL,
    worker_id TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS transitions_by_event ON transitions (event_id, id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    urgent INTEGER NOT NULL DEFAULT 0
);
"""
_OUTBOX_INDEX = "CREATE INDEX IF NOT EXISTS outbox_urgent ON outbox (id) WHERE urgent = 1"
"""The few urgent rows, found without scanning a mass silence's (after :meth:`EventDb._migrate`)."""

_MIGRATE_REV = """
ALTER TABLE events ADD COLUMN rev INTEGER NOT NULL DEFAULT 1;
UPDATE events SET rev = max(1, (
    SELECT count(*) FROM transitions t
    WHERE t.event_id = events.event_id AND t.action NOT IN ('comment', 'severity')
));
"""

_MIGRATE_URGENT = f"""
ALTER TABLE outbox ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET urgent = 1 WHERE CASE WHEN json_valid(CAST(payload AS TEXT))
    THEN json_extract(CAST(payload AS TEXT), '$.type') END
    IN ({", ".join(f"'{t}'" for t in sorted(URGENT_TYPES))});
"""

OutboxRow = tuple[int, str, bytes, bool]
"""(id, topic, payload, urgent) of one publication waiting for its PUBACK"""

Transition = tuple[str, int, str | None, str, str, str | None, str | None]
"""(event_id, at_ms, from_state, to_state, action, worker_id, note)"""


def _row(event: Event) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.key,
        event.type,
        event.severity,
        event.state,
        int(event.cleared),
        int(event.escalated),
        event.district,
        event.grid_id,
        event.site_id,
        event.device_id,
        event.kind,
        event.lat,
        event.lon,
        event.station_id,
        event.value,
        event.threshold,
        event.count,
        event.raised_at,
        event.updated_at,
        event.message,
        event.rev,
        event.opened_ms,
        event.deadline_ms,
        event.last_raise_ts,
    )


def _event(row: Sequence[Any]) -> Event:
    return Event(
        event_id=row[0],
        key=row[1],
        type=row[2],
        severity=cast(Severity, row[3]),
        state=cast(State, row[4]),
        cleared=bool(row[5]),
        escalated=bool(row[6]),
        district=row[7],
        grid_id=row[8],
        site_id=row[9],
        device_id=row[10],
        kind=row[11],
        lat=row[12],
        lon=row[13],
        station_id=row[14],
        value=row[15],
        threshold=row[16],
        count=int(row[17]),
        raised_at=int(row[18]),
        updated_at=int(row[19]),
        message=row[20],
        rev=int(row[21]),
        opened_ms=int(row[22]),
        deadline_ms=None if row[23] is None else int(row[23]),
        last_raise_ts=int(row[24]),
    )


_SHARED = tuple(
    _COLUMNS.index(c)
    for c in ("type", "severity", "state", "district", "grid_id", "kind", "station_id", "message")
)
"""Columns whose values repeat across events: one string each in memory rather than one per row."""


def _interned(row: Sequence[Any]) -> list[Any]:
    """``row`` with the values of :data:`_SHARED` interned (issue 17: after a restart with
    ~200,000 open DEVICE_OFFLINE, each would hold its own copy of the same few strings)."""
    out = list(row)
    for i in _SHARED:
        if out[i] is not None:
            out[i] = sys.intern(out[i])
    return out


def _checkpoints(connection: sqlite3.Connection, closing: threading.Event, db: weakref.ref[EventDb]) -> None:
    """Passive WAL checkpoints every second until the database is closed (or forgotten)."""
    while not closing.wait(CHECKPOINT_INTERVAL_S) and db() is not None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # e.g. closed or busy: the next round catches up
            log.debug("event store checkpoint skipped: %s", exc)


class EventDb:
    """Writes go through one connection (the caller serialises them); reads use one per thread."""

    def __init__(self, path: Path, *, durable_fsync: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sync = "FULL" if durable_fsync else "NORMAL"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._writing = threading.Lock()
        self._write = self._connect()
        with self._write:
            self._write.executescript(_SCHEMA)
            self._migrate()
            self._write.execute(_OUTBOX_INDEX)
            self._write.execute(
                "INSERT INTO meta (name, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (SCHEMA_VERSION,),
            )
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=_checkpoints,
            args=(self._connect(), self._closing, weakref.ref(self)),
            name="events-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()

    def _migrate(self) -> None:
        """Bring an event store of an earlier version up to this schema (see the module docstring)."""
        columns = {row[1] for row in self._write.execute("PRAGMA table_info(events)")}
        if "rev" not in columns:
            log.info("event store %s: adding events.rev (schema %d)", self.path, SCHEMA_VERSION)
            self._run(_MIGRATE_REV)
        if "urgent" not in {row[1] for row in self._write.execute("PRAGMA table_info(outbox)")}:
            log.info("event store %s: adding outbox.urgent (schema %d)", self.path, SCHEMA_VERSION)
            self._run(_MIGRATE_URGENT)

    def _run(self, script: str) -> None:
        """The statements of ``script`` in the open transaction (``executescript`` would commit)."""
        for statement in filter(str.strip, script.split(";")):
            self._write.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=30, check_same_thread=False, isolation_level="DEFERRED"
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self._sync}")
        connection.execute("PRAGMA wal_autocheckpoint=0")  # see the module docstring
        with self._guard:
            self._connections.append(connection)
        return connection

    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer.is_alive() and self._checkpointer is not threading.current_thread():
            self._checkpointer.join(10)
        with self._guard:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    # -- writes (one transaction per store call) ---------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Writer]:
        """Commit everything done through the writer at the end, or nothing on an exception.

        Transactions are serialised here (the store's calls and the outbox's deletions)."""
        with self._writing, self._write:
            yield Writer(self._write)

    def delete_outbox(self, ids: Sequence[int]) -> int:
        """Delete outbox rows (acknowledged by the broker); returns how many were there."""
        with self.transaction() as writer:
            return writer.unqueue(ids)

    # -- reads ----------------------------------------------------------------------------------

    def active(self) -> list[Event]:
        """Every event not closed (loaded at start-up, and kept in memory by the store)."""
        rows = self._write.execute(f"{_SELECT} WHERE state != 'closed' ORDER BY opened_ms, event_id")
        return [_event(_interned(r)) for r in rows]

    def meta(self, name: str, default: int = 0) -> int:
        row = self._write.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else int(row[0])

    def outbox_extent(self) -> tuple[int, dict[bool, int]]:
        """(rows in the outbox, the highest row id of each class, urgent or not: 0 without rows)."""
        count, urgent, other = self._write.execute(
            "SELECT count(*), max(CASE WHEN urgent THEN id END), max(CASE WHEN urgent THEN NULL ELSE id END)"
            " FROM outbox"
        ).fetchone()
        return int(count), {True: int(urgent or 0), False: int(other or 0)}

    def outbox_rows(self, urgent: bool, first_id: int, last_id: int, limit: int) -> list[OutboxRow]:
        """Outbox rows of one class with ``first_id <= id <= last_id``, oldest first, at most ``limit``."""
        # the class as a literal, not a parameter: only then can SQLite use the partial index
        rows = self._reader().execute(
            f"SELECT id, topic, payload FROM outbox WHERE urgent = {int(urgent)} AND id >= ? AND id <= ?"
            " ORDER BY id LIMIT ?",
            (first_id, last_id, limit),
        )
        return [(int(i), str(t), bytes(p), urgent) for i, t, p in rows]

    def get(self, event_id: str) -> Event | None:
        row = self._reader().execute(f"{_SELECT} WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else _event(row)

    def history(self, event_id: str) -> list[dict[str, Any]]:
        rows = self._reader().execute(
            "SELECT at_ms, from_state, to_state, action, worker_id, note FROM transitions"
            " WHERE event_id = ? ORDER BY id",
            (event_id,),
        )
        names = ("at_ms", "from_state", "to_state", "action", "worker_id", "note")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def query(
        self,
        *,
        state: str | None,
        district: str | None,
        grid: str | None,
        type: str | None,
        since_ms: int | None,
        limit: int,
    ) -> list[Event]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("state", state), ("district", district), ("grid_id", grid), ("type", type)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since_ms is not None:
            where.append("raised_at >= ?")
            args.append(since_ms)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        args.append(limit)
        rows = self._reader().execute(
            f"{_SELECT}{clause} ORDER BY raised_at DESC, event_id DESC LIMIT ?", args
        )
        return [_event(r) for r in rows]


class Writer:
    """The write operations of one transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._c = connection

    def insert(self, events: Iterable[Event]) -> None:
        self._c.executemany(_INSERT, (_row(e) for e in events))

    def update(self, events: Iterable[Event], width: int = STATE) -> None:
        """Write the columns of ``width`` (:data:`REPEAT`, :data:`CHANGE` or :data:`STATE`)."""
        # (cleared and escalated: sqlite3 stores a bool as the integer 0 or 1, like _row)
        self._c.executemany(_UPDATES[width], map(_GETTERS[width], events))

    def transition(self, *items: Transition) -> None:
        self._c.executemany(
            "INSERT INTO transitions (event_id, at_ms, from_state, to_state, action, worker_id, note)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            items,
        )

    def queue(self, rows: Sequence[OutboxRow]) -> None:
        """Put publications into the outbox (ids given by the caller, increasing)."""
        self._c.executemany("INSERT INTO outbox (id, topic, payload, urgent) VALUES (?, ?, ?, ?)", rows)

    def unqueue(self, ids: Sequence[int]) -> int:
        """Delete outbox rows; one statement per run of consecutive ids (mostly one in all)."""
        runs: list[tuple[int, int]] = []
        for i in sorted(ids):
            if runs and runs[-1][1] + 1 >= i:
                runs[-1] = (runs[-1][0], max(runs[-1][1], i))
            else:
                runs.append((i, i))
        deleted = 0
        for first, last in runs:
            deleted += self._c.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (first, last)).rowcount
        return deleted

    def set_meta(self, name: str, value: int) -> None:
        self._c.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
