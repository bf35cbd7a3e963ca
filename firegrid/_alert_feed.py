"""The demo's live feed: every message on ``alerts/#``, the grid alerts kept, the rest counted.

An event is published to its grid's topic at every change, critical ones also to a station's
topic, escalations also to ``alerts/{district}/escalations`` (devices/_topics.py): only the grid
topic counts as an alert, so each change of an event is counted once; the others are counted on
their own. Latency is the arrival here minus the event's ``updated_at`` (or ``raised_at``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices import Topics

RECENT = 200
"""Alerts kept for the live screen."""
SEVERITIES = ("critical", "major", "minor")
"""Most severe first: the order of ``FeedStats.by_severity``."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One change of an event, as the grid topic carried it (CONTRACT §8)."""

    arrival_ms: int
    event_id: str
    type: str
    severity: str
    state: str
    cleared: bool
    escalated: bool
    district: str
    grid_id: str
    where: str
    """The device_id, or the site_id of a patrol event."""
    latency_ms: int | None
    count: int = 1

    @property
    def state_text(self) -> str:
        text = self.state + (f" ×{self.count}" if self.count > 1 else "")
        return text + (" cleared" if self.cleared else "") + (" escalated" if self.escalated else "")

    @classmethod
    def parse(cls, body: Mapping[str, Any], arrival_ms: int) -> Alert:
        """The fields shown, from an event's JSON; missing ones become "" or "?"."""

        def text(name: str) -> str:
            value = body.get(name)
            return "" if value is None else str(value)

        changed = body.get("updated_at", body.get("raised_at"))
        latency = (
            arrival_ms - int(changed)
            if isinstance(changed, int | float) and not isinstance(changed, bool)
            else None
        )
        return cls(
            arrival_ms=arrival_ms,
            event_id=text("event_id"),
            type=text("type") or "?",
            severity=text("severity") or "?",
            state=text("state") or "?",
            cleared=body.get("cleared") is True,
            escalated=body.get("escalated") is True,
            district=text("district"),
            grid_id=text("grid_id"),
            where=text("device_id") or text("site_id"),
            latency_ms=latency,
            count=count if isinstance(count := body.get("count"), int) and not isinstance(count, bool) else 1,
        )


@dataclass(frozen=True, slots=True)
class FeedStats:
    messages: int
    """Alerts: messages on grid topics."""
    events: int
    """Distinct events among them."""
    by_type: Mapping[str, int]
    """Events per type, most first."""
    by_severity: Mapping[str, int]
    """Events per latest severity, most severe first."""
    latency_ms_p50: int | None
    latency_ms_p99: int | None
    latency_ms_max: int | None
    station_messages: int
    escalation_messages: int
    malformed: int
    """Messages on alerts/# that are neither: not JSON objects, other topics, a grid_id unlike the topic's."""

    def to_json(self) -> dict[str, Any]:
        return {
            field.name: dict(value) if isinstance(value := getattr(self, field.name), Mapping) else value
            for field in dataclasses.fields(self)
        }


@dataclass(frozen=True, slots=True)
class FeedView:
    """What the live screen shows."""

    recent: list[Alert]
    """Newest first, at most ``RECENT``."""
    messages: int
    events: int


def percentile(ordered: Sequence[int], q: float) -> int | None:
    """Nearest-rank percentile (``q`` in 0..1) of sorted values; None for none."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


class AlertFeed:
    """Subscribes to the alerts of a broker on 127.0.0.1 (paho's network thread calls ``add``)."""

    def __init__(
        self, port: int, topics: Topics | None = None, *, user: str | None = None, password: str | None = None
    ) -> None:
        self.port = port
        self.topics = topics or Topics()
        self._lock = threading.Lock()
        self._alerts: list[Alert] = []
        self._recent: collections.deque[Alert] = collections.deque(maxlen=RECENT)
        self._unseen: collections.deque[Alert] = collections.deque()
        self._events: dict[str, tuple[str, str]] = {}
        """event_id → (type, latest severity)."""
        self._station_messages = 0
        self._escalation_messages = 0
        self._malformed = 0
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"firegrid-demo-feed-{os.getpid()}", protocol=mqtt.MQTTv311
        )
        if user is not None:
            self._client.username_pw_set(user, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self, timeout: float = 10.0) -> None:
        """Connect and wait for the subscription; ``ConnectionError`` when that fails."""
        try:
            self._client.connect("127.0.0.1", self.port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(f"cannot subscribe to the alerts on 127.0.0.1:{self.port}: {exc}") from exc
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            raise ConnectionError(
                f"no answer to the alerts subscription from 127.0.0.1:{self.port} in {timeout:g} s"
            )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._client.disconnect()
        with contextlib.suppress(Exception):
            self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if not getattr(reason, "is_failure", False):
            client.subscribe(self.topics.alerts_subscription, qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: Any, reasons: Any, properties: Any
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrival_ms = int(time.time() * 1000)
        try:
            self.add(message.topic, bytes(message.payload), arrival_ms)
        except Exception:  # nothing on the alerts topics may stop the feed
            with self._lock:
                self._malformed += 1

    def add(self, topic: str, payload: bytes, arrival_ms: int) -> None:
        where = self.topics.parse_alert(topic)
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        with self._lock:
            if where is None or not isinstance(body, dict):
                self._malformed += 1
            elif where.scope == "station":
                self._station_messages += 1
            elif where.scope == "escalations":
                self._escalation_messages += 1
            elif where.name != body.get("grid_id"):
                self._malformed += 1
            else:
                alert = Alert.parse(body, arrival_ms)
                self._alerts.append(alert)
                self._recent.append(alert)
                self._unseen.append(alert)
                first = self._events.get(alert.event_id)
                self._events[alert.event_id] = (first[0] if first else alert.type, alert.severity)

    def take_unseen(self) -> list[Alert]:
        """The alerts that arrived since the last call, oldest first."""
        with self._lock:
            out = list(self._unseen)
            self._unseen.clear()
            return out

    def view(self) -> FeedView:
        with self._lock:
            return FeedView(list(reversed(self._recent)), len(self._alerts), len(self._events))

    def stats(self) -> FeedStats:
        with self._lock:
            latencies = sorted(a.latency_ms for a in self._alerts if a.latency_ms is not None)
            by_type = collections.Counter(t for t, _ in self._events.values())
            severities = collections.Counter(s for _, s in self._events.values())
            order = {name: i for i, name in enumerate(SEVERITIES)}
            return FeedStats(
                messages=len(self._alerts),
                events=len(self._events),
                by_type=dict(by_type.most_common()),
                by_severity=dict(sorted(severities.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))),
                latency_ms_p50=percentile(latencies, 0.50),
                latency_ms_p99=percentile(latencies, 0.99),
                latency_ms_max=latencies[-1] if latencies else None,
                station_messages=self._station_messages,
                escalation_messages=self._escalation_messages,
                malformed=self._malformed,
            )
