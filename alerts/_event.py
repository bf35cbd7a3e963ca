"""The event record (CONTRACT §8) and the constants of its lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from rules import Key, Severity

State = Literal["open", "acknowledged", "resolved", "closed"]
STATES: Final[tuple[State, ...]] = ("open", "acknowledged", "resolved", "closed")
SEVERITY_RANK: Final[dict[str, int]] = {"minor": 0, "major": 1, "critical": 2}

EVENT_FIELDS: Final[tuple[str, ...]] = (
    "event_id",
    "type",
    "severity",
    "state",
    "cleared",
    "escalated",
    "district",
    "grid_id",
    "site_id",
    "device_id",
    "kind",
    "lat",
    "lon",
    "station_id",
    "value",
    "threshold",
    "count",
    "raised_at",
    "updated_at",
    "message",
    "rev",
)
"""The exact field set of the event JSON, in the contract's order (§8; ``rev`` from §13)."""


def key_text(key: Key) -> str:
    """``device|E00017|CABLE_OVERHEAT`` (identifiers never contain ``|``)."""
    return "|".join(key)


@dataclass(slots=True)
class Event:
    """One event. Mutable, owned by the store (only ever changed under its lock)."""

    event_id: str
    key: str
    type: str
    severity: Severity
    state: State
    cleared: bool
    escalated: bool
    district: str
    grid_id: str
    site_id: str
    device_id: str
    kind: str
    lat: float | None
    lon: float | None
    station_id: str | None
    value: float | None
    threshold: float | None
    count: int
    raised_at: int
    updated_at: int
    message: str
    rev: int
    """1 when raised, +1 at every published change (CONTRACT §13): subscribers drop a repeat
    by (event_id, rev). A comment is not a change."""
    opened_ms: int
    """Service time at which firegrid raised the event (the escalation deadline counts from it)."""
    deadline_ms: int | None
    """When an unacknowledged event escalates; None once acknowledged, escalated or closed."""
    last_raise_ts: int
    """``ts`` of the latest raise hit: a replay of the same hit (after a restart) is not a repeat."""
    published_ms: int | None = None
    """Service time of the latest publication (this run; the repeat window counts from it)."""
    point_ms: int | None = None
    """Service time of the latest ``events`` point (this run; repeats' points count from it).

    These two are fields rather than dicts of the store: an open event costs two slots instead of
    two dict entries (issue 17: a mass silence keeps ~200,000 events open)."""

    def to_dict(self) -> dict[str, Any]:
        """The §8 event JSON object (exactly :data:`EVENT_FIELDS`)."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "severity": self.severity,
            "state": self.state,
            "cleared": self.cleared,
            "escalated": self.escalated,
            "district": self.district,
            "grid_id": self.grid_id,
            "site_id": self.site_id,
            "device_id": self.device_id,
            "kind": self.kind,
            "lat": self.lat,
            "lon": self.lon,
            "station_id": self.station_id,
            "value": self.value,
            "threshold": self.threshold,
            "count": self.count,
            "raised_at": self.raised_at,
            "updated_at": self.updated_at,
            "message": self.message,
            "rev": self.rev,
        }
