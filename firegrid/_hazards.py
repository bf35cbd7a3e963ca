"""The hazard side of the service: rules engine → event store → alerts, as one reading sink.

Everything here runs on the pipeline thread (readings, timers, snapshots), except worker actions,
connection changes and PUBACKs of alerts, which arrive on the MQTT network thread; the event store
serialises the first, its outbox takes the others without a lock (CONTRACT §13). Lines for InfluxDB
(`events` points) are queued and written by the pipeline with the next batch, through the same
durable path as readings.

A full disk under the event store (:class:`EventStoreFullError`) holds the pipeline: the batch's
hits are committed again each second until there is room, so nothing of it is acknowledged
meanwhile and the broker keeps the backlog; one line in the log says so, one when it resumes.

Mass silence (issue 17): one tick of the offline timer may raise ~200,000 DEVICE_OFFLINE (every
electrical monitor of a province instance silent at once), ~10 µs each in the rules engine and
~100 µs in the event store: seconds during which no batch is taken, the smoke alarms behind it
included. So each :meth:`Hazards.on_idle` ticks the engine with a limit of :data:`TIMER_BUDGET`
timers (the earliest due; the rest stay due in the rule state) and hands the event store those
hits and escalations due up to the same budget; the pipeline takes a batch between two calls.
Each event is raised at the service time its timer fired (the hit's ``ts``). A batch from a
device whose raise still waits has the raise applied first (``RuleEngine.overdue``), then its
own hits (the clear), so each event sees its changes in order.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import operator
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from access import Visibility
from alerts import EventStore, Outcome, Publisher
from devices import EventStoreFullError, Reading, Registry, RulesError, encode_line, series_key
from firegrid._clock import WALL_CLOCK, Clock
from firegrid._http import MAX_LIMIT, EventQuery
from rules import Hit, RuleEngine, RulesConfig, SnapshotWriter, load_snapshot

log = logging.getLogger(__name__)

_TS = operator.attrgetter("ts")

SNAPSHOT_INTERVAL_MS = 5_000
FLEET_INTERVAL_MS = 60_000
TIMER_INTERVAL_MS = 500
HOLD_RETRY_S = 1.0
"""How often a change the full event store refused is tried again."""
TIMER_BUDGET = 1_000
"""Timers fired by the rules engine, and their hits and escalations handed to the event store, per
:meth:`Hazards.on_idle` call: 45–350 ms of work on the shared 2-core machine
(bench/bench_mass_offline.py; more grids and a busier machine cost more), the longest the pipeline
then waits before its next batch (a smoke alarm's, say)."""


class Hazards:
    def __init__(
        self,
        registry: Registry,
        config: RulesConfig,
        data_dir: Path,
        publisher: Publisher,
        *,
        topic_prefix: str = "",
        durable_fsync: bool = False,
        rate_limit_per_s: float | None = None,
        stopping: threading.Event | None = None,
        clock: Clock = WALL_CLOCK,
        timer_budget: int = TIMER_BUDGET,
    ) -> None:
        """``rate_limit_per_s``: ingest's per-device limit, the threshold of DEVICE_FLOODING;
        ``stopping``: set when the service stops (a held change then gives up); ``clock``: the
        service clock (the time of actions, connection changes, reloads and snapshots);
        ``timer_budget``: see :data:`TIMER_BUDGET`.

        The timers (offline, missed patrols, escalation) and the ``fleet`` points run on the
        service clock; snapshots are taken every 5 s of *wall* time whatever its scale (they
        are about what a crash may lose), and ``fleet`` points at most once a wall second."""
        self.now_ms = clock.reader()
        self._snapshot_every_ms = round(SNAPSHOT_INTERVAL_MS * clock.scale)
        self._fleet_every_ms = max(FLEET_INTERVAL_MS, round(1000 * clock.scale))
        self._rate_limit_per_s = rate_limit_per_s
        self._stopping = stopping or threading.Event()
        self._snapshot_path = data_dir / "rules.snapshot"
        self._snapshots = SnapshotWriter(self._snapshot_path)
        now = self.now_ms()
        data = load_snapshot(self._snapshot_path)
        engine: RuleEngine | None = None
        if data is not None:
            try:
                engine = RuleEngine.restore(registry, config, data, now, source=str(self._snapshot_path))
                log.info("rule state restored from %s", self._snapshot_path)
            except RulesError as exc:
                log.error("%s; starting with fresh rule state", exc)
        self.engine = engine or RuleEngine(registry, config, now)
        self.events = EventStore.open(
            data_dir,
            registry,
            publisher,
            topic_prefix=topic_prefix,
            durable_fsync=durable_fsync,
            connected=False,  # the outbox publishes once told of the connection
        )
        self._lines: deque[str] = deque()
        self._connection_changes: deque[tuple[bool, int]] = deque()
        self._next_snapshot = now + self._snapshot_every_ms
        self._next_timers = now
        self._next_fleet = now  # a first count right away, then every minute
        self._stations_of: tuple[Registry, dict[str, str]] | None = None
        self._budget = timer_budget
        self._escalating = False
        """The event store's last tick left escalations due (over the budget)."""

    # -- pipeline thread -----------------------------------------------------------------------

    def on_readings(self, readings: Sequence[Reading], now_ms: int, limited: Mapping[int, int]) -> list[str]:
        self._apply_connection_changes()
        if self.engine.behind:
            self._apply(self.engine.overdue(readings))
        hits = self.engine.process(readings, now_ms)
        if limited:
            hits += self.engine.limited(limited, now_ms, self._rate_limit_per_s)
        if hits:
            self._take(self._held(lambda: self.events.process(hits, now_ms)))
        return self.drain_lines()

    def on_idle(self, now: int) -> list[str]:
        """Timers (offline, missed patrols, flooding's clear, escalation) and periodic snapshots;
        call often, and at once again while :attr:`behind`."""
        self._apply_connection_changes()
        timers = now >= self._next_timers
        room = self._budget
        if timers or self.engine.behind:
            if timers:
                self._next_timers = now + TIMER_INTERVAL_MS
            hits = self.engine.tick(now, room)
            self._apply(hits)
            room -= len(hits)
        if timers or self._escalating:
            self._store_tick(now, max(room, 0))
        if now >= self._next_snapshot:
            self.save(now)
        if now >= self._next_fleet:
            self._next_fleet = now + self._fleet_every_ms
            self._lines.extend(self.fleet_lines(now))
        return self.drain_lines()

    @property
    def behind(self) -> bool:
        """Timers or escalations wait for the next :meth:`on_idle` (over the budget)."""
        return self.engine.behind or self._escalating

    def _apply(self, hits: Sequence[Hit]) -> None:
        """Timer hits into the event store at the times their timers fired (one commit a time)."""
        timed = sorted(hits, key=_TS)  # stable: a key's hits keep their order
        for at, group in itertools.groupby(timed, key=_TS):
            self._take(self._held(functools.partial(self.events.process, list(group), at)))

    def _store_tick(self, now: int, limit: int) -> None:
        """The event store's timers: repeats and points due, at most ``limit`` escalations."""
        due = self.events.next_deadline()
        if due is not None and due <= now:
            self._take(self._held(lambda: self.events.tick(now, limit)))
            due = self.events.next_deadline()  # only escalations can be left due
        self._escalating = due is not None and due <= now

    def _held(self, change: Callable[[], Outcome]) -> Outcome:
        """``change()``, tried again while the event store's disk is full (see the module doc);
        raises EventStoreFullError when the service stops meanwhile."""
        held: EventStoreFullError | None = None
        while True:
            try:
                outcome = change()
            except EventStoreFullError as exc:
                if held is None:
                    log.error(
                        "holding the pipeline: %s; readings wait unacknowledged (the broker keeps "
                        "them) until there is room",
                        exc,
                    )
                held = exc
                if self._stopping.wait(HOLD_RETRY_S):
                    raise
                continue
            if held is not None:
                log.warning("the event store has room again; the pipeline goes on")
            return outcome

    def fleet_lines(self, now: int) -> list[str]:
        """`fleet` points (extension of §6): devices registered and online per district and kind."""
        return [
            encode_line(
                series_key("fleet", (("district", district), ("kind", kind))),
                {"registered": float(registered), "online": float(registered - offline)},
                now,
            )
            for (district, kind), (registered, offline) in sorted(self.engine.fleet().items())
        ]

    def save(self, now: int) -> None:
        """Snapshot the rule state; written in the background (skipped while one is writing)."""
        self._next_snapshot = now + self._snapshot_every_ms
        self._snapshots.save(self.engine.snapshot_arrays(now))

    def reload(self, registry: Registry) -> None:
        now = self.now_ms()
        self.engine.reload(registry, now)
        self._take(self.events.reload(registry, now))

    def drain_lines(self) -> list[str]:
        lines = []
        while self._lines:
            lines.append(self._lines.popleft())
        return lines

    def flush(self) -> None:
        """Fire the timers still waiting, publish and write the event store's coalesced repeats
        now (a clean stop, before its last lines are drained)."""
        self._apply(self.engine.catch_up())
        self._take(self._held(lambda: self.events.flush(self.now_ms())))

    def close(self) -> None:
        """Save the rule state and close the event store (:meth:`flush` first, for the lines)."""
        try:
            self._apply(self.engine.catch_up())
            self._snapshots.save_now(self.engine.snapshot_arrays(self.now_ms()))
        except EventStoreFullError as exc:  # the previous snapshot's timers fire again at the restart
            log.error("rule state not saved: timer hits could not be stored (%s)", exc)
        finally:
            self.events.close()

    def _take(self, outcome: Outcome) -> None:
        self._lines.extend(outcome.lines)

    def _apply_connection_changes(self) -> None:
        while self._connection_changes:
            up, at = self._connection_changes.popleft()
            if up and self.engine.suspended:
                self.engine.resume(at)
            elif not up and not self.engine.suspended:
                self.engine.suspend(at)

    # -- other threads -------------------------------------------------------------------------

    def on_connection_change(self, up: bool) -> None:
        """The one connection that both hears the devices and publishes alerts (network thread)."""
        self.on_readings_connection(up)
        self.on_alert_link(up)

    def on_readings_connection(self, up: bool) -> None:
        """While firegrid cannot hear devices, their offline timers stand still (network thread)."""
        self._connection_changes.append((up, self.now_ms()))

    def on_alert_link(self, up: bool) -> None:
        """Alerts wait in the outbox while no connection can publish them, then all of it is
        published again (network thread)."""
        self.events.on_connection_change(up)

    def on_published(self, mid: int, error: str | None) -> None:
        """The broker's PUBACK of message ``mid``: an alert leaves the outbox (network thread)."""
        self.events.on_published(mid, error)

    def on_action(self, message: mqtt.MQTTMessage) -> None:
        """A worker's action on ``actions/{worker_id}`` (network thread)."""
        outcome = self.events.handle_message(message.topic, message.payload, self.now_ms())
        if outcome is not None:
            self._take(outcome)

    # -- HTTP threads (CONTRACT §10: who sees which event) --------------------------------------

    def visible_events(self, seen: Visibility, query: EventQuery) -> list[dict[str, Any]]:
        """``GET /events``: the events of ``query`` that ``seen`` may see, newest first.

        The store filters one grid at a time and knows neither severity nor station: a worker's
        grids are queried one by one and merged; a station's district is scanned (its newest
        ``MAX_LIMIT`` events) for the critical events routed to it."""
        if seen.forbidden:
            return []

        def query_store(district: str | None, grid: str | None, limit: int) -> list[dict[str, Any]]:
            return self.events.list_events(
                state=query.state,
                district=district,
                grid=grid,
                type=query.type,
                since_ms=query.since_ms,
                limit=limit,
            )

        if seen.station is not None:
            district = self._station_district(seen.station)
            if district is None or query.district not in (None, district):
                return []
            scanned = query_store(district, query.grid, MAX_LIMIT)
            return [event for event in scanned if seen.allows(event)][: query.limit]
        if seen.grids is None:
            return query_store(query.district, query.grid, query.limit)
        grids = sorted(seen.grids if query.grid is None else seen.grids & {query.grid})
        lists = [query_store(query.district, grid, query.limit) for grid in grids]
        if len(lists) <= 1:
            return lists[0] if lists else []
        merged = heapq.merge(*lists, key=_newest_first, reverse=True)  # the store's own order
        return list(itertools.islice(merged, query.limit))

    def visible_event(self, seen: Visibility, event_id: str) -> dict[str, Any] | None:
        """``GET /events/{event_id}`` with its history; None when missing or not for ``seen``."""
        event = self.events.get_event(event_id)
        return event if event is not None and seen.allows(event) else None

    def _station_district(self, station_id: str) -> str | None:
        registry = self.events.registry
        if self._stations_of is None or self._stations_of[0] is not registry:
            self._stations_of = (registry, {s.station_id: s.district for s in registry.stations})
        return self._stations_of[1].get(station_id)


def _newest_first(event: dict[str, Any]) -> tuple[int, str]:
    return event["raised_at"], event["event_id"]
