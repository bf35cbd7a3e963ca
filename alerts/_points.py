"""The ``events`` measurement (CONTRACT §6): one point per change of an event.

Tags: district, grid, type, severity, kind. Fields: event_id, device, site (strings), state
(string, *only on points where the state changes*: ``open`` is written exactly once per event,
so ``count(distinct(event_id)) WHERE state = 'open'`` counts raised events and the latest
non-null ``state`` of an event is its current state), value, threshold (floats, when present),
count (float), and the extensions lat, lon (floats), message and change (strings), cleared and
escalated (booleans). ``change`` says what happened: raised, repeat, cleared, severity,
escalated, acknowledged, resolved, closed, rerouted.

Points of one series at one millisecond would overwrite each other, so each series' point time
is strictly increasing (bumped by 1 ms when needed); after a restart every point lies after the
last one written before it (the floor is kept in the store).
"""

from __future__ import annotations

from alerts._event import Event
from devices import FieldValue
from ingest import encode_line, series_key

MEASUREMENT = "events"


class PointClock:
    """Strictly increasing point times per series."""

    def __init__(self, floor_ms: int = 0) -> None:
        self.floor_ms = floor_ms
        """Every point is later than this (the last point time before a restart)."""
        self.high_ms = floor_ms
        """The latest point time handed out (persisted as the next floor)."""
        self._last: dict[str, int] = {}

    def stamp(self, series: str, now_ms: int) -> int:
        last = self._last.get(series, self.floor_ms)
        ts = now_ms if now_ms > last else last + 1
        self._last[series] = ts
        self.high_ms = max(self.high_ms, ts)
        return ts


def event_series(event: Event) -> str:
    tags = (
        ("district", event.district),
        ("grid", event.grid_id),
        ("type", event.type),
        ("severity", event.severity),
        ("kind", event.kind),
    )
    return series_key(MEASUREMENT, tags)


def event_line(event: Event, change: str, clock: PointClock, now_ms: int, *, with_state: bool) -> str:
    fields: dict[str, FieldValue] = {
        "event_id": event.event_id,
        "device": event.device_id,
        "site": event.site_id,
    }
    if with_state:
        fields["state"] = event.state
    if event.value is not None:
        fields["value"] = float(event.value)
    if event.threshold is not None:
        fields["threshold"] = float(event.threshold)
    fields["count"] = float(event.count)
    if event.lat is not None and event.lon is not None:
        fields["lat"] = float(event.lat)
        fields["lon"] = float(event.lon)
    fields["message"] = event.message
    fields["change"] = change
    fields["cleared"] = event.cleared
    fields["escalated"] = event.escalated
    series = event_series(event)
    return encode_line(series, fields, clock.stamp(series, now_ms))
