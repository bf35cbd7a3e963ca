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
from devices import FLOAT_TEXT, quote_string, series_key

MEASUREMENT = "events"
_MAX_FIXED = 100_000
_MAX_QUOTED = 4_096


class PointClock:
    """Strictly increasing point times per series (and the series keys, cached)."""

    def __init__(self, floor_ms: int = 0) -> None:
        self.floor_ms = floor_ms
        """Every point is later than this (the last point time before a restart)."""
        self.high_ms = floor_ms
        """The latest point time handed out (persisted as the next floor)."""
        self._last: dict[str, int] = {}
        self._series: dict[tuple[str, str, str, str, str], str] = {}
        self._fixed: dict[str, tuple[float | None, float | None, str]] = {}
        """event_id → (lat, lon, the fields that never change but with a reroute), formatted."""
        self._quoted: dict[str, str] = {}
        """message → its quoted text (repeats of an event mostly say the same thing)."""

    def quoted(self, message: str) -> str:
        text = self._quoted.get(message)
        if text is None:
            if len(self._quoted) >= _MAX_QUOTED:
                self._quoted.clear()
            text = self._quoted[message] = quote_string(message)
        return text

    def fixed(self, event: Event) -> str:
        """``event_id=…,device=…,site=…[,lat=…,lon=…]`` of ``event`` (cached: issue 17).

        Not for the point of its raise (``rev`` 1): most events never change (a mass silence
        raises ~200,000 DEVICE_OFFLINE at once), and a cached text costs ~300 bytes an event."""
        cached = self._fixed.get(event.event_id)
        if cached is not None and cached[0] == event.lat and cached[1] == event.lon:
            return cached[2]
        text = (
            f"event_id={quote_string(event.event_id)},device={quote_string(event.device_id)},"
            f"site={quote_string(event.site_id)}"
        )
        if event.lat is not None and event.lon is not None:
            text += f",lat={float(event.lat)!r},lon={float(event.lon)!r}"
        if event.rev <= 1:
            return text
        if len(self._fixed) >= _MAX_FIXED:
            self._fixed.clear()
        self._fixed[event.event_id] = (event.lat, event.lon, text)
        return text

    def series(self, event: Event) -> str:
        tags = (event.district, event.grid_id, event.type, event.severity, event.kind)
        series = self._series.get(tags)
        if series is None:
            names = ("district", "grid", "type", "severity", "kind")
            series = self._series[tags] = series_key(MEASUREMENT, zip(names, tags, strict=True))
        return series

    def stamp(self, series: str, now_ms: int) -> int:
        last = self._last.get(series, self.floor_ms)
        ts = now_ms if now_ms > last else last + 1
        self._last[series] = ts
        self.high_ms = max(self.high_ms, ts)
        return ts


def event_line(event: Event, change: str, clock: PointClock, now_ms: int, *, with_state: bool) -> str:
    """One line. The field keys are ours (no escaping needed); strings are quoted and escaped."""
    parts = [clock.fixed(event)]
    if with_state:
        parts.append(f'state="{event.state}"')
    if event.value is not None:
        parts.append("value=" + FLOAT_TEXT[event.value])
    if event.threshold is not None:
        parts.append("threshold=" + FLOAT_TEXT[event.threshold])
    parts.append("count=" + FLOAT_TEXT[event.count])
    parts.append("message=" + clock.quoted(event.message))
    parts.append(f'change="{change}"')
    parts.append("cleared=true" if event.cleared else "cleared=false")
    parts.append("escalated=true" if event.escalated else "escalated=false")
    series = clock.series(event)
    return f"{series} {','.join(parts)} {clock.stamp(series, now_ms)}"
