"""The connection alerts and action results leave on (issue 17): the alarm lane's while it is up,
the readings connection while only that one is.

On the readings connection an alert's PUBACK comes back behind up to a Receive Maximum of readings
in flight, so in a backlog the outbox's window filled and alerts waited seconds (measured,
bench/bench_backlog_alarms.py); the alarm lane's socket carries 2 % of the traffic, so alerts
prefer it. But an alert must not wait for the alarm lane's reconnect (1-10 s) while the readings
connection is up: the link then publishes there. Each switch is, to the outbox, a reconnect: it
publishes everything unacknowledged again on the new connection (duplicates, which a subscriber
drops by (event_id, rev), bounded by the outbox's window; never a loss).

paho numbers each client's messages 1..65535 on its own, so the second connection's message ids
are offset by :data:`MID_SPAN` before the outbox sees them: a PUBACK on one connection never
acknowledges a row sent on the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

MID_SPAN = 1 << 16
"""Above every MQTT message id (16 bits)."""


class _Published(Protocol):
    @property
    def mid(self) -> int: ...

    @property
    def rc(self) -> int: ...


class _Client(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int) -> _Published: ...


class LinkConsumer(Protocol):
    """What the link needs of an ``ingest.MqttConsumer``."""

    @property
    def client(self) -> _Client: ...

    @property
    def connected(self) -> bool: ...

    publish_window: int
    on_published: Callable[[int, str | None], None]


@dataclass(frozen=True, slots=True)
class Sent:
    """What :meth:`AlertLink.publish` reports, as paho's ``MQTTMessageInfo`` does."""

    mid: int
    rc: int


class AlertLink:
    """Publishes on the first of ``consumers`` that is connected (the first when none is), and
    tells the sink bound with :meth:`bind` when that changes: up (a connection to publish on) or
    down."""

    def __init__(self, consumers: Sequence[LinkConsumer], *, window: int) -> None:
        self._consumers = tuple(consumers)
        self._window = window
        self._on_link_change: Callable[[bool], None] = lambda up: None
        self._lock = threading.Lock()
        self._active: int | None = None

    def bind(
        self, on_link_change: Callable[[bool], None], on_published: Callable[[int, str | None], None]
    ) -> None:
        """The sink of the publications (the alert outbox): told of the link's changes and of each
        PUBACK (its message id as :meth:`publish` reported it). Before the consumers start."""
        self._on_link_change = on_link_change
        for index, consumer in enumerate(self._consumers):
            consumer.publish_window = self._window  # the outbox's whole window on the wire
            consumer.on_published = _offset(on_published, index * MID_SPAN)

    def publish(self, topic: str, payload: bytes, qos: int) -> Sent:
        index = self._active or 0
        info = self._consumers[index].client.publish(topic, payload, qos)
        return Sent(info.mid + index * MID_SPAN, info.rc)

    def connection_changed(self) -> None:
        """One of the consumers connected or lost its connection (its network thread). The
        notifications go out under the lock, so two threads cannot deliver them out of order."""
        with self._lock:
            active = next((i for i, c in enumerate(self._consumers) if c.connected), None)
            if active == self._active:
                return
            was, self._active = self._active, active
            if was is not None:
                self._on_link_change(False)
            if active is not None:
                self._on_link_change(True)


def _offset(on_published: Callable[[int, str | None], None], base: int) -> Callable[[int, str | None], None]:
    if not base:
        return on_published
    return lambda mid, error: on_published(mid + base, error)
