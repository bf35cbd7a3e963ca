"""Events as they stood at a time ``at``, read from the event store's SQLite file (read-only).

The event store (``alerts``) writes ``events`` and ``transitions``; this module only reads them,
through connections of its own opened read-only (WAL: readers never block the store's writer nor
wait for it), one per thread, like the store's own readers. One query per question: the events of
a selection with, aggregated from their transitions at or before ``at`` in the same query, the
first ``ack``, ``resolve`` and ``close`` and whether the condition was cleared; and the severity
then (the note of a ``severity`` transition after ``at`` names the severity before it:
``major → critical``; such rises are rare, their notes are read in a second query).

Nothing after ``at`` is seen: an event exists at ``at`` when its ``raise`` transition (the
service time it was opened) is at or before ``at``; later transitions are ignored.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from rules import SEVERITIES
from safety._figures import Handling

_SEVERITY_ARROW: Final = " → "

_QUERY: Final = """
WITH e AS MATERIALIZED (
  SELECT event_id, district, grid_id, type, severity, device_id, raised_at, kind FROM events e WHERE {where}
)
SELECT e.event_id, e.district, e.grid_id, e.type, e.severity, e.device_id, e.raised_at, e.kind,
       MIN(CASE WHEN t.at_ms <= :at AND t.action = 'ack' THEN t.at_ms END),
       MIN(CASE WHEN t.at_ms <= :at AND t.action = 'resolve' THEN t.at_ms END),
       MIN(CASE WHEN t.at_ms <= :at AND t.action = 'close' THEN t.at_ms END),
       COALESCE(MAX(CASE WHEN t.at_ms <= :at AND t.action = 'clear' THEN t.id END), 0)
         > COALESCE(MAX(CASE WHEN t.at_ms <= :at AND t.action IN ('raise', 'repeat') THEN t.id END), 0),
       MIN(CASE WHEN t.at_ms > :at AND t.action = 'severity' THEN t.id END)
FROM e JOIN transitions t ON t.event_id = e.event_id
GROUP BY e.event_id
HAVING MIN(CASE WHEN t.action = 'raise' THEN t.at_ms END) <= :at
"""
"""The selected events (materialised first, so that SQLite finds them by its index on
``raised_at`` or ``state`` rather than scanning every event in ``event_id`` order for the
grouping), each with its transitions aggregated as they stood at ``:at``; the id of the first
severity rise after ``:at`` (rare) is looked up afterwards for the severity before it."""
_NOTES: Final = "SELECT id, note FROM transitions WHERE id IN (SELECT value FROM json_each(:ids))"


@dataclass(frozen=True, slots=True)
class EventAt:
    """One event as it stood at ``at``."""

    event_id: str
    district: str
    grid_id: str
    type: str
    severity: str
    device_id: str
    kind: str
    raised_at: int
    acked_at: int | None
    resolved_at: int | None
    closed_at: int | None
    cleared: bool
    """The condition had cleared (its last raise or repeat was followed by a clear)."""

    @property
    def handling(self) -> Handling:
        return Handling(self.raised_at, self.severity, self.acked_at, self.resolved_at, self.closed_at)

    @property
    def unresolved(self) -> bool:
        """Not yet resolved (nor closed) by a worker: a hazard still waiting for its fix."""
        return self.resolved_at is None and self.closed_at is None

    @property
    def condition_active(self) -> bool:
        """The condition held (not cleared) and the event was not closed."""
        return not self.cleared and self.closed_at is None


@dataclass(frozen=True, slots=True)
class Selection:
    """Which events: every filter given must match (None: any)."""

    district: str | None = None
    grids: frozenset[str] | None = None
    """Only these grids (None: every grid)."""
    type: str | None = None
    station: str | None = None
    """Only the critical events routed to this station (a station's view, CONTRACT §10)."""

    def where(self, args: dict[str, Any]) -> list[str]:
        clauses: list[str] = []
        if self.district is not None:
            clauses.append("e.district = :district")
            args["district"] = self.district
        if self.grids is not None:
            clauses.append("e.grid_id IN (SELECT value FROM json_each(:grids))")
            args["grids"] = orjson.dumps(sorted(self.grids)).decode()
        if self.type is not None:
            clauses.append("e.type = :type")
            args["type"] = self.type
        if self.station is not None:
            clauses.append("e.severity = 'critical' AND e.station_id = :station")
            args["station"] = self.station
        return clauses


def _severity_before(current: str, rise_note: str | None) -> str:
    """The severity before a rise noted ``major → critical``; ``current`` if there was none."""
    if rise_note is None:
        return current
    before = rise_note.split(_SEVERITY_ARROW, 1)[0]
    return before if before in SEVERITIES else current


def _event(row: tuple[Any, ...], notes: dict[int, str]) -> EventAt:
    return EventAt(
        event_id=row[0],
        district=row[1],
        grid_id=row[2],
        type=row[3],
        severity=_severity_before(row[4], None if row[12] is None else notes.get(row[12])),
        device_id=row[5],
        raised_at=int(row[6]),
        kind=row[7],
        acked_at=row[8],
        resolved_at=row[9],
        closed_at=row[10],
        cleared=bool(row[11]),
    )


class History:
    """Read-only queries on the event store's file ``path`` (thread-safe: a connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._uri = f"{path.resolve().as_uri()}?mode=ro"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._uri, uri=True, check_same_thread=False, timeout=30)
            self._local.connection = connection
            with self._guard:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._guard:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _query(self, clauses: Iterable[str], args: dict[str, Any]) -> list[EventAt]:
        connection = self._connection()
        rows = connection.execute(_QUERY.format(where=" AND ".join(clauses)), args).fetchall()
        rises = [row[12] for row in rows if row[12] is not None]
        notes: dict[int, str] = {}
        if rises:
            notes = dict(connection.execute(_NOTES, {"ids": orjson.dumps(rises).decode()}).fetchall())
        return [_event(row, notes) for row in rows]

    def raised_between(
        self, selection: Selection, since_ms: int, until_ms: int | None, at_ms: int
    ) -> list[EventAt]:
        """The events with ``since_ms <= raised_at < until_ms`` (no upper bound: None) that
        existed at ``at_ms``, as they stood then."""
        args: dict[str, Any] = {"at": at_ms, "since": since_ms}
        clauses = ["e.raised_at >= :since"]
        if until_ms is not None:
            clauses.append("e.raised_at < :until")
            args["until"] = until_ms
        return self._query([*clauses, *selection.where(args)], args)

    def not_closed(self, selection: Selection, at_ms: int, *, now_ms: int) -> list[EventAt]:
        """Every event that existed at ``at_ms`` and was not closed by then, whenever raised.

        Candidates are the events not closed now (the store's state index) and, for an ``at``
        in the past, the closed ones changed after ``at`` (a scan of the closed events: the
        store has no index on the time of closing); each is then cut at ``at``."""
        branches = ["e.state IN ('open', 'acknowledged', 'resolved')"]
        if at_ms < now_ms:
            branches.append("e.state = 'closed' AND e.updated_at > :at")
        events: list[EventAt] = []
        for branch in branches:
            args: dict[str, Any] = {"at": at_ms}
            events += self._query([branch, *selection.where(args)], args)
        return [event for event in events if event.closed_at is None]
