"""The event store: hits in, events with their lifecycle out (CONTRACT §7 dedup, §8 events).

Every public method is synchronous, thread-safe (one lock) and takes the service time
``now_ms``; none reads the wall clock. A method that changes something commits one SQLite
transaction, *then* publishes (so nothing is announced that a ``kill -9`` could forget) and
returns an :class:`Outcome` with what it published and the ``events`` line-protocol lines the
caller must write through its durable store. With a publisher, the publications of a change are
committed with it into the outbox and leave it on the broker's PUBACK (CONTRACT §13,
``alerts/_outbox.py``); every published change bumps the event's ``rev``.

Repeats are coalesced (issue 17): a plain repeat of an event (a raise of an event that is open,
acknowledged or resolved, neither cleared nor of a higher severity) is published and written at
once only when the event's last publication is at least :data:`REPEAT_WINDOW_MS` of service time
old; otherwise it only changes the event in memory (count, value, threshold, message,
``updated_at``), and one publication carrying the latest of them goes out when the window has
passed (:meth:`EventStore.process` and :meth:`EventStore.tick`, via
:meth:`EventStore.next_deadline`), with any other change of the event (at once, carrying the
up-to-date count), or at :meth:`EventStore.flush` / :meth:`EventStore.close`. A ``kill -9`` loses
at most the repeats counted since the event's last publication, never an event or a change of
state, severity or ``cleared``.
"""

from __future__ import annotations

import heapq
import logging
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
from ulid import ULID

from alerts._actions import MOVES, ActionRequest, ActionResult, check_worker, parse_action, refusal
from alerts._db import CHANGE, REPEAT, STATE, EventDb, Transition, Writer
from alerts._escalation import DEFAULT_DEADLINES_MS, Deadlines
from alerts._event import SEVERITY_RANK, STATES, Event, key_text
from alerts._outbox import Outbox
from alerts._points import PointClock, event_line
from alerts._routing import QOS, URGENT_TYPES, Publication, Publisher, StationIndex
from devices import EventStoreFullError, Registry, Topics
from rules import SEVERITIES, Hit

log = logging.getLogger(__name__)

DB_NAME: Final = "events.sqlite"
MAX_LIST: Final = 10_000
_FLOOR: Final = "point_floor_ms"
_TOPIC_UNSAFE: Final = frozenset("/+#\x00")
REPEAT_WINDOW_MS: Final = 250
"""At most one publication (and one write) of plain repeats per event per this much service time.

CONTRACT §8 wants every change published within 1 s of its message's arrival, and §13 each
published change committed with the event into the outbox: the window must stay well under a
second, including the pipeline's timer period (firegrid/_hazards.py runs :meth:`EventStore.tick`
every 500 ms when no batch comes) and the time of a batch."""
REPEAT_POINT_MS: Final = 5_000
"""At most one ``events`` point of repeats per event per this much service time (CONTRACT §6
asks a point at every *state* change; a repeat is none). A repeat whose point is skipped leaves
it owed: written with the event's next change or when this time has passed (:meth:`EventStore.tick`)."""


@dataclass(slots=True)
class Outcome:
    """What one call did."""

    lines: list[str] = field(default_factory=list)
    """``events`` points (line protocol, ms precision) for the caller's durable InfluxDB store."""
    published: list[Publication] = field(default_factory=list)
    """Every message published (in order): with a publisher, put into the outbox (and handed to
    the publisher at once unless the outbox is disconnected or behind), the action result sent."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """The event JSON of every change, in order (an event changed twice appears twice)."""
    result: ActionResult | None = None
    """For :meth:`EventStore.handle_action`: the answer sent to ``actions/{worker}/result``."""

    def extend(self, other: Outcome) -> None:
        self.lines.extend(other.lines)
        self.published.extend(other.published)
        self.events.extend(other.events)


class _Batch:
    """Changes of one call, written in one transaction and published after the commit."""

    def __init__(self) -> None:
        self.new: dict[str, Event] = {}
        self.dirty: dict[str, Event] = {}
        self.width: dict[str, int] = {}
        """How wide each dirty event's UPDATE must be (``alerts._db.REPEAT`` … ``STATE``)."""
        self.transitions: list[Transition] = []
        self.outcome = Outcome()

    def note(
        self,
        event: Event,
        now_ms: int,
        action: str,
        note: str | None,
        *,
        worker_id: str | None = None,
        before: str | None = "",
    ) -> None:
        """Record a transition of ``event`` (into its current state; from ``before``, which
        defaults to the current state too)."""
        start = event.state if before == "" else before
        self.transitions.append((event.event_id, now_ms, start, event.state, action, worker_id, note))

    def write(self, writer: Writer) -> None:
        writer.insert(self.new.values())
        by_width: list[list[Event]] = [[], [], []]
        for event_id, event in self.dirty.items():
            if event_id not in self.new:
                by_width[self.width[event_id]].append(event)
        for width, events in enumerate(by_width):
            if events:
                writer.update(events, width)
        if self.transitions:
            writer.transition(*self.transitions)


class EventStore:
    """Events in SQLite (``{data_dir}/events.sqlite``), their routing, escalation and actions.

    ``publisher`` is the MQTT client (anything with ``publish(topic, payload, qos)``); without
    one the publications are only returned in :attr:`Outcome.published` for the caller to send
    (and no outbox is kept). ``connected``: whether the publisher is connected at start; one that
    reports its connection and PUBACKs (:meth:`on_connection_change`, :meth:`on_published`)
    starts with False.
    """

    def __init__(
        self,
        path: Path,
        registry: Registry,
        publisher: Publisher | None = None,
        *,
        topic_prefix: str = "",
        deadlines_ms: Mapping[str, int] | None = None,
        durable_fsync: bool = False,
        connected: bool = True,
    ) -> None:
        deadlines = dict(DEFAULT_DEADLINES_MS if deadlines_ms is None else deadlines_ms)
        missing = [s for s in SEVERITIES if s not in deadlines or deadlines[s] <= 0]
        if missing:
            raise ValueError(f"deadlines_ms needs a positive deadline for {', '.join(missing)}")
        self.path = path
        self.topics = Topics(topic_prefix)
        self._deadline_ms = deadlines
        self._registry = registry
        self._stations = StationIndex(registry)
        self._publisher = publisher
        self._lock = threading.RLock()
        self._db = EventDb(path, durable_fsync=durable_fsync)
        self._active: dict[str, Event] = {}
        self._by_id: dict[str, Event] = {}
        self._deadlines = Deadlines()
        self._clock = PointClock()
        self._pending: dict[str, int] = {}
        """Events with repeats counted in memory only: event_id → service time of the latest."""
        self._pending_due: list[tuple[int, str]] = []
        """(when to publish, event_id), a heap; entries of events no longer pending are skipped."""
        self._point_owed: dict[str, int] = {}
        """Events whose latest repeat has no point yet: event_id → when to write it."""
        self._points_due: list[tuple[int, str]] = []
        """(when, event_id) of the owed points, a heap (stale entries skipped)."""
        self._load()
        self._outbox = None if publisher is None else Outbox(self._db, publisher, connected=connected)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        registry: Registry,
        publisher: Publisher | None = None,
        *,
        topic_prefix: str = "",
        deadlines_ms: Mapping[str, int] | None = None,
        durable_fsync: bool = False,
        connected: bool = True,
    ) -> EventStore:
        """The store of a data directory (``FIREGRID_DATA_DIR``)."""
        return cls(
            Path(data_dir) / DB_NAME,
            registry,
            publisher,
            topic_prefix=topic_prefix,
            deadlines_ms=deadlines_ms,
            durable_fsync=durable_fsync,
            connected=connected,
        )

    def _load(self) -> None:
        """(Re)build the in-memory view of the not-closed events from the database."""
        self._active.clear()
        self._by_id.clear()
        self._pending.clear()
        self._pending_due.clear()
        self._point_owed.clear()
        self._points_due.clear()
        self._deadlines = Deadlines()
        for event in self._db.active():
            self._active[event.key] = event
            self._by_id[event.event_id] = event
            if event.deadline_ms is not None:
                self._deadlines.push(event.deadline_ms, event.event_id)
        self._clock = PointClock(self._db.meta(_FLOOR))

    def close(self) -> None:
        """Flush the coalesced repeats (:meth:`flush`) and close. Their ``events`` points are
        dropped (nobody takes them any more): they are repeats, not state changes (CONTRACT §6)."""
        with self._lock:
            if self._pending:
                try:
                    self.flush(max(self._by_id[i].updated_at for i in self._pending))
                except Exception:
                    log.exception("event store: the last repeats could not be written at close")
            if self._outbox is not None:
                self._outbox.close()
            self._db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def registry(self) -> Registry:
        return self._registry

    # -- the publisher's callbacks (its network thread) --------------------------------------------

    def on_published(self, mid: int, error: str | None = None) -> None:
        """The broker's PUBACK for message ``mid`` (``error``: its failure reason, if any)."""
        if self._outbox is not None:
            self._outbox.on_published(mid, error)

    def on_connection_change(self, up: bool) -> None:
        """The publisher connected (the outbox is published again) or lost its connection."""
        if self._outbox is not None:
            self._outbox.on_connection_change(up)

    @property
    def outbox_depth(self) -> int:
        """Publications waiting in the outbox for the broker's PUBACK."""
        return 0 if self._outbox is None else self._outbox.depth

    # -- hits ------------------------------------------------------------------------------------

    def process(self, hits: Iterable[Hit], now_ms: int) -> Outcome:
        """Apply the rules engine's hits: raise, repeat (count), severity rise, clear."""
        with self._lock:
            batch = _Batch()
            if self._pending_due and self._pending_due[0][0] <= now_ms:
                self._publish_repeats(batch, now_ms)
            for hit in hits:
                key = key_text(hit.key)
                event = self._active.get(key)
                if hit.state == "raise":
                    if event is None:
                        self._raise(batch, hit, key, now_ms)
                    else:
                        self._repeat(batch, event, hit, now_ms)
                elif event is not None and not event.cleared:
                    self._clear(batch, event, hit, now_ms)
            return self._commit(batch)

    def _raise(self, batch: _Batch, hit: Hit, key: str, now_ms: int) -> None:
        registry = self._registry
        slot = registry.slot_of.get(hit.device_id)
        lat = lon = None
        if slot is not None:
            lat, lon = float(registry.lat[slot]), float(registry.lon[slot])
        event = Event(
            event_id=str(ULID.from_timestamp(now_ms)),
            key=key,
            type=hit.type,
            severity=hit.severity,
            state="open",
            cleared=False,
            escalated=False,
            district=hit.district,
            grid_id=hit.grid_id,
            site_id=hit.site_id,
            device_id=hit.device_id,
            kind=hit.kind,
            lat=lat,
            lon=lon,
            station_id=self._stations.nearest(hit.district, lat, lon) if hit.severity == "critical" else None,
            value=hit.value,
            threshold=hit.threshold,
            count=1,
            raised_at=now_ms,  # service time (CONTRACT §12): the deadline counts from here too
            updated_at=now_ms,
            message=sys.intern(hit.message),  # a mass silence's messages differ in a few ways only
            opened_ms=now_ms,
            deadline_ms=now_ms + self._deadline_ms[hit.severity],
            rev=0,  # 1 once published, below
            last_raise_ts=hit.ts,
        )
        self._active[key] = event
        self._by_id[event.event_id] = event
        assert event.deadline_ms is not None
        self._deadlines.push(event.deadline_ms, event.event_id)
        batch.new[event.event_id] = event
        batch.note(event, now_ms, "raise", hit.message, before=None)
        self._changed(batch, event, "raised", now_ms, with_state=True)

    def _repeat(self, batch: _Batch, event: Event, hit: Hit, now_ms: int) -> None:
        higher = SEVERITY_RANK[hit.severity] > SEVERITY_RANK[event.severity]
        if hit.ts == event.last_raise_ts and not higher:
            log.debug("event %s: raise at ts %d replayed (restart); not counted", event.event_id, hit.ts)
            return
        event.count += 1
        event.value = hit.value
        event.threshold = hit.threshold
        event.message = sys.intern(hit.message)
        event.last_raise_ts = max(event.last_raise_ts, hit.ts)
        event.updated_at = max(event.updated_at, now_ms)
        event_id = event.event_id
        if not (higher or event.cleared):
            last = event.published_ms
            if event_id in batch.dirty or (last is not None and now_ms - last < REPEAT_WINDOW_MS):
                # coalesced: published with the next change, or when the window has passed
                if event_id not in self._pending:
                    due = (now_ms if last is None else last) + REPEAT_WINDOW_MS
                    heapq.heappush(self._pending_due, (due, event_id))
                self._pending[event_id] = now_ms
                return
        self._pending.pop(event_id, None)  # this publication carries them
        plain = not (higher or event.cleared)
        event.cleared = False
        batch.note(event, now_ms, "repeat", hit.message)
        change = "repeat"
        if higher:
            change = "severity"
            batch.note(event, now_ms, "severity", f"{event.severity} → {hit.severity}")
            event.severity = hit.severity
            if hit.severity == "critical" and event.station_id is None:
                event.station_id = self._stations.nearest(event.district, event.lat, event.lon)
            if event.deadline_ms is not None:
                event.deadline_ms = min(event.deadline_ms, now_ms + self._deadline_ms[hit.severity])
                self._deadlines.push(event.deadline_ms, event.event_id)
        self._changed(batch, event, change, now_ms, with_state=False, plain_repeat=plain)

    def _clear(self, batch: _Batch, event: Event, hit: Hit, now_ms: int) -> None:
        self._absorb(batch, event)
        event.cleared = True
        event.updated_at = max(event.updated_at, now_ms)
        batch.note(event, now_ms, "clear", hit.message)
        self._changed(batch, event, "cleared", now_ms, with_state=False)

    # -- escalation ------------------------------------------------------------------------------

    def _current_deadline(self, event_id: str) -> int | None:
        event = self._by_id.get(event_id)
        return None if event is None else event.deadline_ms

    def next_deadline(self) -> int | None:
        """The earliest escalation deadline or publication of coalesced repeats (epoch ms), or
        None: call :meth:`tick` when it is due."""
        with self._lock:
            due = self._deadlines.next(self._current_deadline)
            pending = self._pending_due
            while pending and pending[0][1] not in self._pending:
                heapq.heappop(pending)  # no longer pending: published with another change
            if pending and (due is None or pending[0][0] < due):
                due = pending[0][0]
            points, owed = self._points_due, self._point_owed
            while points and owed.get(points[0][1]) != points[0][0]:
                heapq.heappop(points)  # written with another change
            if points and (due is None or points[0][0] < due):
                due = points[0][0]
            return due

    def tick(self, now_ms: int, limit: int | None = None) -> Outcome:
        """Publish the coalesced repeats whose window has passed; escalate every open event whose
        deadline is ``<= now_ms`` (once each), or the ``limit`` earliest of them: the rest stay
        due (:meth:`next_deadline`), so that a mass of deadlines at once (the DEVICE_OFFLINE of
        a mass silence, 8 h later) is escalated over several calls rather than in one."""
        with self._lock:
            batch = _Batch()
            if self._pending_due and self._pending_due[0][0] <= now_ms:
                self._publish_repeats(batch, now_ms)
            self._owed_points(batch, now_ms)
            for event_id in self._deadlines.due(now_ms, self._current_deadline, limit):
                event = self._by_id[event_id]
                self._absorb(batch, event)
                event.escalated = True
                event.deadline_ms = None
                event.updated_at = max(event.updated_at, now_ms)
                minutes = self._deadline_ms[event.severity] / 60_000
                note = f"not acknowledged within {minutes:g} min ({event.severity})"
                batch.note(event, now_ms, "escalate", note)
                self._changed(
                    batch,
                    event,
                    "escalated",
                    now_ms,
                    with_state=False,
                    extra=(self.topics.escalations(event.district),),
                )
            return self._commit(batch)

    # -- worker actions --------------------------------------------------------------------------

    def handle_message(self, topic: str, payload: bytes | bytearray, now_ms: int) -> Outcome | None:
        """:meth:`handle_action` for a message on ``{prefix}actions/{worker_id}``; None for other topics."""
        worker_id = self.topics.action_worker(topic)
        if worker_id is None:
            return None
        return self.handle_action(worker_id, payload, now_ms)

    def handle_action(self, worker_id: str, payload: bytes | bytearray, now_ms: int) -> Outcome:
        """Apply a worker's action; the result is published to ``actions/{worker_id}/result``."""
        with self._lock:
            batch = _Batch()
            parsed = parse_action(payload)
            if isinstance(parsed, ActionResult):
                result = parsed
            else:
                result = self._act(batch, worker_id, parsed, now_ms)
            if not result.ok:
                log.info(
                    "action refused: worker %s, %s %s: %s",
                    worker_id,
                    result.action,
                    result.event_id,
                    result.error,
                )
            try:
                outcome = self._commit(batch)
            except EventStoreFullError as exc:  # nothing changed: the worker is told why
                log.error("action refused: %s (worker %s, %s)", exc, worker_id, result.event_id)
                outcome = Outcome()
                error = "the event store has no room (disk full); try again"
                result = ActionResult(result.event_id, result.action, False, error)
            outcome.result = result
            if _TOPIC_UNSAFE.isdisjoint(worker_id) and worker_id:
                # Not through the outbox: a result is not an event change (§13) but the answer
                # to a request on a live connection. The change it reports is in the outbox
                # (on the grid topic); a worker who got no answer sends the action again and is
                # told "already acknowledged" (or acts), which loses nothing.
                answer = Publication(
                    self.topics.action_result(worker_id), orjson.dumps(result.to_dict()), QOS
                )
                outcome.published.append(answer)
                if self._publisher is not None:
                    try:
                        self._publisher.publish(answer.topic, answer.payload, answer.qos)
                    except Exception:
                        log.exception("publishing to %s failed", answer.topic)
            return outcome

    def _act(self, batch: _Batch, worker_id: str, request: ActionRequest, now_ms: int) -> ActionResult:
        def refused(error: str) -> ActionResult:
            return ActionResult(request.event_id, request.action, False, error)

        error = check_worker(self._registry, worker_id)
        if error:
            return refused(error)
        event = self._by_id.get(request.event_id) or self._db.get(request.event_id)
        if event is None:
            return refused(f"unknown event {request.event_id[:80]}")
        error = refusal(self._registry, worker_id, request, event)
        if error:
            return refused(error)
        if request.action == "comment":
            batch.note(event, now_ms, "comment", request.note, worker_id=worker_id)
            return ActionResult(event.event_id, request.action, True, at=now_ms)
        before, after = MOVES[request.action]
        if event.event_id in self._by_id:
            self._absorb(batch, event)
        event.state = after
        event.updated_at = max(event.updated_at, now_ms)
        if after != "open":
            event.deadline_ms = None
        if after == "closed":
            del self._active[event.key]
            del self._by_id[event.event_id]
        batch.note(event, now_ms, request.action, request.note, worker_id=worker_id, before=before)
        self._changed(batch, event, after, now_ms, with_state=True)
        return ActionResult(event.event_id, request.action, True, at=now_ms)

    # -- registry ----------------------------------------------------------------------------------

    def reload(self, registry: Registry, now_ms: int) -> Outcome:
        """Use a reloaded registry (SIGHUP): new workers/grids/stations apply at once; an active
        event whose device moved (grid, position) or whose nearest station changed is rerouted
        (and republished)."""
        with self._lock:
            self._registry = registry
            self._stations = StationIndex(registry)
            batch = _Batch()
            for event in list(self._by_id.values()):
                slot = registry.slot_of.get(event.device_id)
                if slot is None:
                    continue
                grid, district = registry.grid_of(slot), registry.district_of(slot)
                lat, lon = float(registry.lat[slot]), float(registry.lon[slot])
                station = event.station_id
                if event.severity == "critical":
                    station = self._stations.nearest(district, lat, lon)
                if (grid, district, lat, lon, station) == (
                    event.grid_id,
                    event.district,
                    event.lat,
                    event.lon,
                    event.station_id,
                ):
                    continue
                self._absorb(batch, event)
                note = f"grid {event.grid_id} → {grid}, station {event.station_id} → {station}"
                event.grid_id, event.district, event.lat, event.lon, event.station_id = (
                    grid,
                    district,
                    lat,
                    lon,
                    station,
                )
                event.updated_at = max(event.updated_at, now_ms)
                batch.note(event, now_ms, "reroute", note)
                self._changed(batch, event, "rerouted", now_ms, with_state=False)
            return self._commit(batch)

    # -- queries (HTTP) ------------------------------------------------------------------------------

    def list_events(
        self,
        state: str | None = None,
        district: str | None = None,
        grid: str | None = None,
        type: str | None = None,
        since_ms: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Events (newest ``raised_at`` first) matching every filter given; ``since_ms`` bounds
        ``raised_at`` from below. Raises ValueError for an unknown state or a bad limit."""
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        events = self._db.query(
            state=state,
            district=district,
            grid=grid,
            type=type,
            since_ms=since_ms,
            limit=min(limit, MAX_LIST),
        )
        pending = self._counted_in_memory()
        return [pending.get(e.event_id) or e.to_dict() for e in events]

    def _counted_in_memory(self) -> dict[str, dict[str, Any]]:
        """The event JSON of the events whose latest repeats are not written yet (coalesced):
        their count and value as they stand, ``rev`` still that of their last publication."""
        if not self._pending:
            return {}
        with self._lock:
            return {i: self._by_id[i].to_dict() for i in self._pending}

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The event JSON plus ``history``: its transitions, oldest first, each
        ``{at_ms, from_state, to_state, action, worker_id, note}``."""
        event = self._db.get(event_id)
        if event is None:
            return None
        document = self._counted_in_memory().get(event_id) or event.to_dict()
        document["history"] = self._db.history(event_id)
        return document

    def counts(self) -> dict[str, int]:
        """Active (not closed) events by state, and how many of them are escalated / cleared."""
        with self._lock:
            counter = Counter(e.state for e in self._by_id.values())
            out: dict[str, int] = {state: counter.get(state, 0) for state in STATES if state != "closed"}
            out["escalated"] = sum(e.escalated for e in self._by_id.values())
            out["cleared"] = sum(e.cleared for e in self._by_id.values())
            return out

    # -- internals ---------------------------------------------------------------------------------

    def _changed(
        self,
        batch: _Batch,
        event: Event,
        change: str,
        now_ms: int,
        *,
        with_state: bool,
        extra: tuple[str, ...] = (),
        plain_repeat: bool = False,
    ) -> None:
        event_id = event.event_id
        batch.dirty[event_id] = event
        # a repeat that un-clears (or raises the severity) writes ``cleared`` too: not the narrow width
        width = STATE if with_state else REPEAT if change == "repeat" and plain_repeat else CHANGE
        if batch.width.get(event_id, -1) < width:
            batch.width[event_id] = width
        event.rev += 1
        if event.state != "closed":
            event.published_ms = now_ms
            if plain_repeat:
                last = event.point_ms
                if last is not None and now_ms - last < REPEAT_POINT_MS:
                    if event_id not in self._point_owed:
                        self._point_owed[event_id] = last + REPEAT_POINT_MS
                        heapq.heappush(self._points_due, (last + REPEAT_POINT_MS, event_id))
                    last = None
                else:
                    last = now_ms
            else:
                last = now_ms
            if last is not None:
                event.point_ms = now_ms
                self._point_owed.pop(event_id, None)
                batch.outcome.lines.append(
                    event_line(event, change, self._clock, now_ms, with_state=with_state)
                )
        else:
            self._point_owed.pop(event_id, None)
            batch.outcome.lines.append(event_line(event, change, self._clock, now_ms, with_state=with_state))
        document = event.to_dict()
        batch.outcome.events.append(document)
        payload = orjson.dumps(document)
        topics = [self.topics.grid(event.district, event.grid_id)]
        if event.severity == "critical" and event.station_id is not None:
            topics.append(self.topics.station(event.station_id))
        topics.extend(extra)
        urgent = event.type in URGENT_TYPES
        batch.outcome.published.extend(Publication(topic, payload, QOS, urgent) for topic in topics)

    def flush(self, now_ms: int) -> Outcome:
        """Publish and write every event's coalesced repeats now (a clean stop)."""
        with self._lock:
            batch = _Batch()
            self._publish_repeats(batch, now_ms, every=True)
            return self._commit(batch)

    def _publish_repeats(self, batch: _Batch, now_ms: int, *, every: bool = False) -> None:
        """One publication per event whose coalesced repeats are due (all of them: ``every``)."""
        pending, due = self._pending, self._pending_due
        if every:
            due.clear()
            chosen = list(pending)
        else:
            chosen = []
            while due and due[0][0] <= now_ms:
                event_id = heapq.heappop(due)[1]
                if event_id in pending:
                    chosen.append(event_id)
        for event_id in chosen:
            at = pending.pop(event_id, None)
            event = self._by_id.get(event_id)
            if at is None or event is None:
                continue
            batch.note(event, at, "repeat", event.message)
            self._changed(batch, event, "repeat", max(now_ms, at), with_state=False, plain_repeat=True)

    def _owed_points(self, batch: _Batch, now_ms: int) -> None:
        """The ``events`` points of repeats skipped by :data:`REPEAT_POINT_MS`, now due."""
        points, owed = self._points_due, self._point_owed
        while points and points[0][0] <= now_ms:
            due, event_id = heapq.heappop(points)
            event = self._by_id.get(event_id)
            if owed.get(event_id) != due or event is None:
                continue
            del owed[event_id]
            event.point_ms = now_ms
            batch.outcome.lines.append(event_line(event, "repeat", self._clock, now_ms, with_state=False))

    def _absorb(self, batch: _Batch, event: Event) -> None:
        """Before another change of ``event``: its coalesced repeats go into the history (that
        change's publication carries their count)."""
        at = self._pending.pop(event.event_id, None)
        if at is not None:
            batch.note(event, at, "repeat", event.message)

    def _commit(self, batch: _Batch) -> Outcome:
        outcome = batch.outcome
        if not (batch.new or batch.dirty or batch.transitions or outcome.lines):
            return outcome
        outbox = self._outbox
        rows = []
        try:
            with self._db.transaction() as writer:
                batch.write(writer)
                if outcome.lines:
                    writer.set_meta(_FLOOR, self._clock.high_ms)
                if outbox is not None and outcome.published:
                    rows = outbox.add(writer, outcome.published)
        except sqlite3.OperationalError as exc:
            self._load()
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc):
                raise EventStoreFullError(f"no space left for the event store {self.path}: {exc}") from exc
            log.exception("event store: commit failed; reloaded the events from %s", self.path)
            raise
        except Exception:
            log.exception("event store: commit failed; reloading the events from %s", self.path)
            self._load()
            raise
        if outbox is not None:
            outbox.committed(rows)
        return outcome
