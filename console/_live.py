"""The open events as the console knows them, and the live feed to the browsers.

:class:`EventCache` holds every event not closed: filled from ingest's ``/events`` (a *sync*, at
start and after each reconnect to the broker) and kept current by the alerts of ``alerts/#``. So
the inbox and the map never query ingest; only an event's page does (for its history). An alert
replaces the cached copy only when it is newer (``rev``, then ``updated_at``, then the lifecycle
order), so repeats (one change reaches a grid, a station and the escalations topic) and replays
after a reconnect change nothing, and a closed event stays gone.

:class:`Hub` hands each change to the live connections (Server-Sent Events) whose user may see
it; a connection that falls behind is told to reload instead of piling up.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from access import Visibility

SEVERITY_RANK: Final[dict[str, int]] = {"critical": 2, "major": 1, "minor": 0}
STATE_RANK: Final[dict[str, int]] = {"open": 0, "acknowledged": 1, "resolved": 2, "closed": 3}
MAX_CLOSED: Final = 100_000
"""Closed event ids remembered, so that a late copy (a sync, a replay) does not bring one back."""
QUEUE_SIZE: Final = 256


def _order(event: Mapping[str, Any]) -> tuple[int, int, int, int]:
    rev = event.get("rev")
    updated = event.get("updated_at")
    count = event.get("count")
    return (
        rev if isinstance(rev, int) else 0,
        updated if isinstance(updated, int) else 0,
        STATE_RANK.get(str(event.get("state")), 0),
        count if isinstance(count, int) else 0,
    )


def inbox_order(event: Mapping[str, Any]) -> tuple[int, int, str]:
    """Sort key: critical first, then newest (CONTRACT §11); event_id breaks ties."""
    raised = event.get("raised_at")
    return (
        -SEVERITY_RANK.get(str(event.get("severity")), -1),
        -(raised if isinstance(raised, int) else 0),
        str(event.get("event_id")),
    )


def is_event(value: object) -> bool:
    """An event JSON object as far as the console relies on it."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("event_id"), str)
        and isinstance(value.get("state"), str)
        and isinstance(value.get("severity"), str)
    )


class EventCache:
    """Every event not closed, by id; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, dict[str, Any]] = {}
        self._applied_at: dict[str, int] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._seq = itertools.count(1)
        self._last = 0
        self.synced = False
        """Whether a sync has succeeded since the last (re)connect."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def mark(self) -> int:
        """A point in the sequence of changes: a sync started now keeps what arrives later."""
        with self._lock:
            return self._last

    def apply(self, event: dict[str, Any]) -> bool:
        """Take one event (an alert or a synced copy); True when the cache changed."""
        event_id: str = event["event_id"]
        with self._lock:
            if event_id in self._closed:
                return False
            current = self._events.get(event_id)
            if current is not None and _order(event) <= _order(current):
                return False
            self._last = next(self._seq)
            if event.get("state") == "closed":
                self._events.pop(event_id, None)
                self._applied_at.pop(event_id, None)
                self._closed[event_id] = None
                while len(self._closed) > MAX_CLOSED:
                    self._closed.popitem(last=False)
                return True
            self._events[event_id] = event
            self._applied_at[event_id] = self._last
            return True

    def sync(self, events: Iterable[dict[str, Any]], mark: int) -> None:
        """Replace what the cache holds by ``events`` (all events not closed, fetched after
        ``mark``): keep what arrived live since ``mark``, drop the rest that is not listed (it
        was closed while the console was not listening)."""
        listed: set[str] = set()
        for event in events:
            listed.add(event["event_id"])
            self.apply(event)
        with self._lock:
            for event_id in [e for e, at in self._applied_at.items() if at <= mark and e not in listed]:
                self._events.pop(event_id, None)
                self._applied_at.pop(event_id, None)
                self._last = next(self._seq)  # a change too: what was rendered before is stale
            self.synced = True

    def get(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._events.get(event_id)

    def visible(self, seen: Visibility) -> list[dict[str, Any]]:
        """The events ``seen`` allows, critical first, then newest."""
        with self._lock:
            events = [e for e in self._events.values() if seen.allows(e)]
        events.sort(key=inbox_order)
        return events


def summary(event: Mapping[str, Any]) -> dict[str, Any]:
    """What a live message tells the browser about a change (the page fetches the rest)."""
    return {
        key: event.get(key)
        for key in ("event_id", "type", "severity", "state", "escalated", "grid_id", "site_id", "message")
    }


@dataclass(eq=False)
class Listener:
    """One live connection: the user's rights and a bounded queue of messages for it."""

    seen: Visibility
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )


class Hub:
    """Live connections of this console; used on the event loop only (:meth:`post` from others)."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __len__(self) -> int:
        return len(self._listeners)

    def join(self, seen: Visibility) -> Listener:
        listener = Listener(seen)
        self._listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def change(self, event: Mapping[str, Any]) -> None:
        """Tell every listener that may see ``event`` (on the loop)."""
        message = summary(event)
        for listener in list(self._listeners):
            if listener.seen.allows(event):
                self._put(listener, "change", message)

    def close(self) -> None:
        """Shutting down: every live stream ends (its browser reconnects to whoever serves next)."""
        for listener in list(self._listeners):
            while not listener.queue.empty():
                listener.queue.get_nowait()
            listener.queue.put_nowait(("bye", {}))

    def resync(self) -> None:
        """Tell everyone to reload what they show (after a sync)."""
        for listener in list(self._listeners):
            self._put(listener, "resync", {})

    def _put(self, listener: Listener, kind: str, message: dict[str, Any]) -> None:
        try:
            listener.queue.put_nowait((kind, message))
        except asyncio.QueueFull:  # fallen behind: one reload replaces everything queued
            while not listener.queue.empty():
                listener.queue.get_nowait()
            listener.queue.put_nowait(("resync", {}))

    def post(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the loop (from another thread: the MQTT client's)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(call)
