"""What the rules engine emits: a :class:`Hit` is one raise or clear of one condition.

The alerts layer turns hits into events: one open event per :attr:`Hit.key`; a raise while the
event is open increments its count (and may raise its severity), a clear marks it ``cleared``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Severity = Literal["minor", "major", "critical"]
HitState = Literal["raise", "clear"]
Key = tuple[str, str, str]
"""``("device", device_id, type)``, or ``("site", site_id, type)`` for FIRE_CONFIRMED."""

SEVERITIES: tuple[Severity, ...] = ("minor", "major", "critical")

RULE_TYPES: tuple[str, ...] = (
    "FIRE_ALARM",
    "FIRE_CONFIRMED",
    "TAMPER",
    "LOW_BATTERY",
    "DEVICE_FAULT",
    "RESIDUAL_CURRENT_HIGH",
    "CABLE_OVERHEAT",
    "TEMP_RISE_FAST",
    "LOW_PRESSURE",
    "PRESSURE_LOSS",
    "HIGH_PRESSURE",
    "PATROL_HAZARD",
    "PATROL_MISSED",
    "PATROL_TOO_FAST",
    "DEVICE_OFFLINE",
)
"""Every event type of CONTRACT §7, in the contract's order."""

SERVICE_TYPES: tuple[str, ...] = ("DEVICE_FLOODING",)
"""Event types about a device's behaviour towards the service rather than its readings: CONTRACT
§10's DEVICE_FLOODING (over the per-device rate limit; fed by ingest, see
:meth:`rules.RuleEngine.limited`)."""

EVENT_TYPES: tuple[str, ...] = RULE_TYPES + SERVICE_TYPES
"""Every event type the engine can emit."""

SITE_TYPES = frozenset({"FIRE_CONFIRMED"})
"""Types deduplicated per site rather than per device."""


@dataclass(slots=True, unsafe_hash=True)
class Hit:
    """One raise or clear of a condition, with everything an event needs.

    Treat as immutable. Not ``frozen`` (like ``devices.Reading``): a frozen dataclass's
    ``__init__`` sets each of the 14 fields through ``object.__setattr__``, ~3 µs a hit against
    ~0.3 µs, and a storm of repeats builds one or two per message (issue 17). Equality and
    hashing are by value, as before."""

    type: str
    severity: Severity
    kind: str
    """The device kind (``smoke``, ``electrical``, ``water``, ``patrol``)."""
    slot: int
    """The device's registry slot (for FIRE_CONFIRMED: the detector whose alarm confirmed the fire)."""
    device_id: str
    site_id: str
    grid_id: str
    district: str
    key: Key
    state: HitState
    value: float | None
    threshold: float | None
    ts: int
    """Epoch ms: the triggering reading's ``ts``, or for timers (offline, missed) the service time
    the timer fired (the first tick at or after its due time, also when a limited tick left it
    waiting)."""
    message: str

    @property
    def is_raise(self) -> bool:
        return self.state == "raise"


def num(value: float) -> str:
    """A number for humans: ``74.5``, ``70``, ``0.05``."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def duration(seconds: float) -> str:
    """``10 s``, ``2 min``, ``26.4 h``."""
    if seconds < 120:
        return f"{num(seconds)} s"
    if seconds < 7200:
        return f"{num(seconds / 60)} min"
    return f"{num(seconds / 3600)} h"


def held_for(seconds: float) -> str:
    """`` for 10 s`` after a condition with a ``for`` duration, nothing without one."""
    return f" for {duration(seconds)}" if seconds > 0 else ""
