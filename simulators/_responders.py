"""Simulated grid workers: they read the alerts of their grids and act on them over MQTT.

Every worker of the registry signs in as itself (its password from ``secrets.csv``), subscribes
to ``alerts/{district}/{grid_id}`` of the grids that list it and to its
``actions/{worker_id}/result``, and publishes its actions on ``actions/{worker_id}`` (CONTRACT §8,
§10): the broker's ACL applies as to a real worker's app. All connections share one selector
(``DeviceConnections``) driven by one thread of their own, which also runs the schedule.

An event is decided on the first alert that shows it ``open`` (``Handlers.decide``): left alone
(one ``EventLeftAlone`` record), or acknowledged ``ack_s`` after that first alert arrived, resolved
``resolve_s`` after the acknowledgement's result, closed by a supervisor ``close_s`` after the
resolution's result. Delays are scenario seconds: at time scale X they last 1/X as many wall
seconds. The acknowledgement counts from the alert's arrival, which is when ingest raised the
event (within milliseconds) and started its escalation deadline; the event's ``raised_at`` is the
data time of the reading that raised it, in the past at a time scale above 1. A refused action
(``ok`` false) ends the event's chain. Every action taken becomes a ``WorkerAction`` record once
its result arrives (or when the workers stop without one).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from devices import Registry, Topics
from simulators._connections import CONNECT_RATE, DeviceConnections
from simulators._per_device import CredentialsError, named
from simulators._respond_plan import Handlers, Handling, LeftAlone, event_key
from simulators._respond_policy import RespondPolicy
from simulators._truth import EventLeftAlone, ResponseRecord, WorkerAction

log = logging.getLogger(__name__)

QUIET_S = 2.0
"""After the traffic, the workers are settled once no new event has shown up for this long
(ingest publishes an alert within 1 s of the reading that raised it) and nothing is scheduled."""
NOTES = {"ack": "on my way", "resolve": "checked on site and made safe", "close": "verified"}


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class _Event:
    event_id: str
    grid_id: str
    type: str
    severity: str
    raised_at: int
    seen_at: int
    """Wall clock (ms epoch) when its first alert arrived."""


@dataclass(order=True, slots=True)
class _Job:
    due_ms: int
    order: int
    worker_id: str = field(compare=False)
    action: str = field(compare=False)
    event: _Event = field(compare=False)
    handling: Handling = field(compare=False)


@dataclass(frozen=True, slots=True)
class RespondSummary:
    workers: int
    connected: int
    """Workers signed in when the responders started."""
    actions: int
    """Actions published."""
    ok: int
    refused: int
    """Actions answered ``ok: false``."""
    unanswered: int
    """Actions without a result (not sent, or no answer before the workers stopped)."""
    left_alone: int
    """Events decided not to act on."""
    failures: dict[str, str] = field(default_factory=dict)
    """Worker → why it could not sign in or act."""


class Responders:
    """The registry's workers acting on their alerts; :meth:`start`, then :meth:`stop`.

    ``sink`` gets every ground-truth record as it is made (on the responders' thread); all are
    also kept in :attr:`records`. ``time_scale`` divides every delay of ``policy``.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        host: str,
        port: int,
        passwords: Mapping[str, str],
        policy: RespondPolicy,
        prefix: str = "",
        time_scale: float = 1.0,
        sink: Callable[[ResponseRecord], None] | None = None,
        client_prefix: str = "",
        connect_rate: float = CONNECT_RATE,
        connect_timeout: float = 10.0,
        humans: frozenset[str] = frozenset(),
    ) -> None:
        if not time_scale > 0:
            raise ValueError(f"time scale must be positive, not {time_scale}")
        names = sorted(w for w in registry.workers if w not in humans)
        missing = [name for name in names if name not in passwords]
        if missing:
            raise CredentialsError(f"no password for {len(missing):,} worker(s): {named(missing)}")
        self.topics = Topics(prefix)
        self.handlers = Handlers(registry, policy, humans)
        self.policy = policy
        self.ms_per_s = 1000.0 / time_scale
        """Wall milliseconds per scenario second."""
        self.sink = sink
        self.names = names
        self._index = {name: i for i, name in enumerate(names)}
        grids_of: dict[str, list[str]] = {name: [] for name in names}
        for grid in registry.grids.values():
            for worker in grid.workers:
                if worker in grids_of:
                    grids_of[worker].append(self.topics.grid(grid.district, grid.grid_id))
        self.connections = DeviceConnections(
            host,
            port,
            [(name, passwords[name]) for name in names],
            qos=1,
            client_prefix=client_prefix,
            connect_rate=connect_rate,
            connect_timeout=connect_timeout,
            subscriptions=[[self.topics.action_result(name), *grids_of[name]] for name in names],
            on_message=self._on_message,
        )
        self.records: list[ResponseRecord] = []
        self._lock = threading.Lock()
        self._jobs: list[_Job] = []
        self._order = itertools.count()
        self._pending: dict[tuple[str, str, str], tuple[_Job, int]] = {}
        """(worker, event_id, action) → the job and when it was sent, until its result."""
        self._seen: set[str] = set()
        self._last_new = time.monotonic()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._connected = 0

    # -- life cycle --------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Sign every worker in and subscribe; returns once they listen. Raises ``ConnectionError``
        when the broker cannot be reached or refused every worker."""
        self._thread = threading.Thread(target=self._main, name="responders", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ConnectionError(f"the simulated workers did not sign in within {timeout:g} s")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def settled(self, quiet: float = QUIET_S) -> bool:
        """Nothing scheduled, no result awaited, and no new event for ``quiet`` seconds."""
        with self._lock:
            busy = bool(self._jobs or self._pending)
        return not busy and time.monotonic() - self._last_new >= quiet

    def wait_settled(
        self, timeout: float, quiet: float = QUIET_S, stop: Callable[[], bool] | None = None
    ) -> bool:
        """Wait up to ``timeout`` seconds for :meth:`settled` (or ``stop()``), and at least ``quiet``
        seconds: an alert of the traffic's last readings may still be on its way."""
        started = time.monotonic()
        deadline = started + timeout
        while not (self.settled(quiet) and time.monotonic() - started >= quiet):
            if time.monotonic() >= deadline or (stop is not None and stop()) or not self.running:
                return False
            self._stopping.wait(0.05)
        return True

    def scheduled(self) -> list[tuple[int, str, str, str]]:
        """The actions waiting for their time: (due wall ms, worker, action, event_id), soonest first."""
        with self._lock:
            jobs = sorted(self._jobs)
        return [(job.due_ms, job.worker_id, job.action, job.event.event_id) for job in jobs]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> RespondSummary:
        """Stop acting (scheduled actions not yet due are dropped) and sign out."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        return self.summary()

    def summary(self) -> RespondSummary:
        with self._lock:
            actions = [r for r in self.records if isinstance(r, WorkerAction)]
        connections = self.connections
        return RespondSummary(
            workers=len(self.names),
            connected=self._connected,
            actions=len(actions),
            ok=sum(1 for a in actions if a.ok),
            refused=sum(1 for a in actions if a.ok is False),
            unanswered=sum(1 for a in actions if a.ok is None),
            left_alone=len(self.records) - len(actions),
            failures=dict(sorted({**connections.lost, **connections.failures}.items())),
        )

    # -- the thread --------------------------------------------------------------------------------

    def _main(self) -> None:
        connections = self.connections
        try:
            try:
                connections.open(stop=self._stopping.is_set)
                waiting = connections.wait_subscribed(connections.connect_timeout, stop=self._stopping.is_set)
                if waiting:
                    log.warning("no SUBACK for %d worker(s): %s", len(waiting), named(waiting))
            except BaseException as exc:
                self._error = exc
                return
            finally:
                self._connected = connections.connected
                self._ready.set()
            while not self._stopping.is_set():
                now = wall_ms()
                self._run_due(now)
                with self._lock:
                    wait = (self._jobs[0].due_ms - now) / 1000 if self._jobs else 0.05
                connections.service(min(0.05, max(0.0, wait)))
            connections.drain(2.0)
            self._unanswered()
        except Exception:  # a bug here must not pass silently: the run reports it
            log.exception("the simulated workers stopped")
            raise
        finally:
            connections.close()

    def _emit(self, record: ResponseRecord) -> None:
        with self._lock:
            self.records.append(record)
        if self.sink is not None:
            self.sink(record)

    def _schedule(self, due_ms: int, worker_id: str, action: str, event: _Event, handling: Handling) -> None:
        with self._lock:
            heapq.heappush(self._jobs, _Job(due_ms, next(self._order), worker_id, action, event, handling))

    def _run_due(self, now: int) -> None:
        while True:
            with self._lock:
                if not self._jobs or self._jobs[0].due_ms > now:
                    return
                job = heapq.heappop(self._jobs)
            self._send(job)

    def _send(self, job: _Job) -> None:
        worker, event = job.worker_id, job.event
        payload = orjson.dumps({"event_id": event.event_id, "action": job.action, "note": NOTES[job.action]})
        sent_at = wall_ms()
        if self.connections.publish(self._index[worker], self.topics.actions(worker), payload, "action"):
            with self._lock:
                self._pending[(worker, event.event_id, job.action)] = (job, sent_at)
            return
        why = self.connections.failures.get(worker) or self.connections.lost.get(worker) or "not connected"
        self._emit(self._action(job, sent_at, False, f"not sent: {why}", None))

    def _action(
        self,
        job: _Job,
        sent_at: int,
        ok: bool | None,
        error: str | None,
        at: int | None,
        took_effect_at: int | None = None,
    ) -> WorkerAction:
        event = job.event
        return WorkerAction(
            worker_id=job.worker_id,
            event_id=event.event_id,
            grid_id=event.grid_id,
            type=event.type,
            severity=event.severity,
            raised_at=event.raised_at,
            seen_at=event.seen_at,
            action=job.action,
            sent_at=sent_at,
            ok=ok,
            error=error,
            result_at=at,
            took_effect_at=took_effect_at,
        )

    def _unanswered(self) -> None:
        with self._lock:
            pending = sorted(self._pending.values(), key=lambda item: item[1])
            self._pending.clear()
        for job, sent_at in pending:
            self._emit(
                self._action(job, sent_at, None, "no result before the simulated workers stopped", None)
            )

    # -- what arrives ------------------------------------------------------------------------------

    def _on_message(self, index: int, topic: str, payload: bytes) -> None:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(document, dict):
            return
        worker = self.topics.result_worker(topic)
        if worker is not None:
            self._on_result(worker, document)
        else:
            self._on_alert(document)

    def _on_alert(self, alert: dict[str, Any]) -> None:
        event_id = alert.get("event_id")
        if not isinstance(event_id, str) or event_id in self._seen:
            return
        self._seen.add(event_id)
        if alert.get("state") != "open":
            return  # first seen later in its life (raised before the workers listened): not ours
        self._last_new = time.monotonic()
        raised_at = alert.get("raised_at")
        seen_at = wall_ms()
        event = _Event(
            event_id,
            str(alert.get("grid_id")),
            str(alert.get("type")),
            str(alert.get("severity")),
            raised_at if isinstance(raised_at, int) else seen_at,
            seen_at,
        )
        decision = self.handlers.decide(event_key(alert))
        if isinstance(decision, LeftAlone):
            self._emit(
                EventLeftAlone(
                    event.event_id,
                    event.grid_id,
                    event.type,
                    event.severity,
                    event.raised_at,
                    decision.reason,
                    decision.worker_id,
                    seen_at,
                )
            )
            return
        due = seen_at + round(decision.ack_s * self.ms_per_s)
        self._schedule(due, decision.worker_id, "ack", event, decision)

    def _on_result(self, worker: str, result: dict[str, Any]) -> None:
        key = (worker, str(result.get("event_id")), str(result.get("action")))
        with self._lock:
            item = self._pending.pop(key, None)
        if item is None:
            return  # another client acting as this worker (the console), or a repeat
        job, sent_at = item
        now = wall_ms()
        ok = result.get("ok") is True
        error = result.get("error")
        took = result.get("at")
        took_effect_at = took if ok and isinstance(took, int) and not isinstance(took, bool) else None
        message = error if isinstance(error, str) else None
        self._emit(self._action(job, sent_at, ok, message, now, took_effect_at))
        if not ok:
            return
        handling = job.handling
        if job.action == "ack":
            self._schedule(
                now + round(handling.resolve_s * self.ms_per_s), job.worker_id, "resolve", job.event, handling
            )
        elif job.action == "resolve" and handling.closer is not None:
            self._schedule(
                now + round(handling.close_s * self.ms_per_s), handling.closer, "close", job.event, handling
            )
