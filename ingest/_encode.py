"""Readings and rejects → line protocol (CONTRACT §6)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from devices import Reading, Registry, encode_line, escape_key, series_key
from ingest._decode import Reject

TAGS_MAX = 1 << 14
"""Distinct extra tag sets whose text :class:`PointEncoder` keeps (emptied when full)."""


class PointEncoder:
    """Caches each device's series key (measurement + its four tags), built on first use."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._series: list[str | None] = [None] * registry.slots
        self._last_reject_ms: dict[str, int] = {}
        self._tags: dict[tuple[tuple[str, str], ...], str] = {}
        """A payload's extra tags (``influx_tags`` items) → their ``,key=value`` text."""

    def _reject_time(self, reason: str, received_ms: int) -> int:
        """Rejects of one reason share a series: give each its own millisecond, or they overwrite."""
        ts = max(received_ms, self._last_reject_ms.get(reason, 0) + 1)
        self._last_reject_ms[reason] = ts
        return ts

    def _series_of(self, slot: int) -> str:
        series = self._series[slot]
        if series is None:
            r = self.registry
            series = series_key(
                r.kind_of(slot),
                (
                    ("district", r.district_of(slot)),
                    ("grid", r.grid_of(slot)),
                    ("site", r.site_of(slot)),
                    ("device", r.device_ids[slot]),
                ),
            )
            self._series[slot] = series
        return series

    def _tags_text(self, extra: Mapping[str, str]) -> str:
        """Extra tags after the series key's (their keys sort after "site"), escaped once per
        distinct set (a patrol scan's worker: issue 17), at most TAGS_MAX sets kept."""
        text = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(extra.items()) if v)
        if len(self._tags) >= TAGS_MAX:
            self._tags.clear()
        self._tags[tuple(extra.items())] = text
        return text

    def readings(self, readings: Iterable[Reading], out: list[str]) -> None:
        series_cache = self._series
        append = out.append
        for reading in readings:
            series = series_cache[reading.slot] or self._series_of(reading.slot)
            payload = reading.payload
            if payload.has_influx_tags:  # only patrol's "worker" today
                extra = payload.influx_tags()
                series += self._tags.get(tuple(extra.items())) or self._tags_text(extra)
            append(f"{series} {payload.influx_fields_text()} {reading.ts}")

    def rejects(self, rejects: Iterable[Reject], out: list[str]) -> None:
        for reject in rejects:
            fields: dict[str, float | bool | str] = {
                "topic": reject.topic,
                "error": reject.error,
                "payload": reject.payload.decode("utf-8", errors="backslashreplace"),
            }
            if reject.count is not None:
                fields["count"] = float(reject.count)
            reason = reject.reason.value
            ts = self._reject_time(reason, reject.received_ms)
            out.append(encode_line(series_key("rejects", (("reason", reason),)), fields, ts))

    def refused_by_influx(self, line: str, error: str, now_ms: int) -> str:
        """A point of ``rejects`` for a line InfluxDB itself refused (reason ``influx_rejected``)."""
        fields = {"topic": "", "error": error, "payload": line[:1024]}
        ts = self._reject_time("influx_rejected", now_ms)
        return encode_line(series_key("rejects", (("reason", "influx_rejected"),)), fields, ts)
