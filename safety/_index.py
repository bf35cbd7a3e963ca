"""The grid fire-safety index (CONTRACT §12): a tree of groups → indicators, each 0–100.

A pure function of what the event store knew at ``at`` (:class:`safety._history.EventAt`: the
events not closed by then, and those raised in the 30 days before) and the registry's devices
(:class:`safety._fleet.GridFleet`). docs/INDEX.md explains every indicator to supervisors.

An indicator without a basis (a grid with no patrol checkpoints, no events in 30 days) is
``None``: it is left out and the other weights of its group count in its place; likewise a group
whose indicators are all ``None``. Scores round half up to 0.1 only when shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from safety._figures import HANDLED_WITHIN_MS
from safety._fleet import BATTERY_KINDS, FAULT_KINDS, GridFleet
from safety._history import EventAt
from safety._weights import Weights

DAY_MS: Final = 86_400_000
HANDLING_WINDOW_MS: Final = 30 * DAY_MS
"""Handling and the patrol's 30-day indicators look at the events raised in the 30 days before ``at``."""

HALF_PER_100_DEVICES: Final[Mapping[str, float]] = {"critical": 1.0, "major": 3.0, "minor": 10.0}
"""Unresolved hazards of a severity per 100 devices of the grid at which its indicator is 50."""

OFFLINE: Final = "DEVICE_OFFLINE"
FAULT: Final = "DEVICE_FAULT"
LOW_BATTERY: Final = "LOW_BATTERY"
MISSED: Final = "PATROL_MISSED"
TOO_FAST: Final = "PATROL_TOO_FAST"
NOT_HAZARDS: Final = frozenset({OFFLINE, FAULT, LOW_BATTERY, MISSED, TOO_FAST, "DEVICE_FLOODING"})
"""Types that are no hazard of the grid: the devices' health and the patrol (their own groups),
and DEVICE_FLOODING (a device's traffic towards the service, not a fire risk). Every other type,
new ones included, is a hazard."""


def is_hazard(event_type: str) -> bool:
    return event_type not in NOT_HAZARDS


def tenth(value: float | None) -> float | None:
    """Rounded half up to 0.1."""
    return None if value is None else math.floor(value * 10 + 0.5) / 10


def share(good: int, whole: int) -> float | None:
    """100 × good / whole, None when whole is 0 (good is clamped to [0, whole])."""
    return None if whole <= 0 else 100.0 * min(max(good, 0), whole) / whole


def weighted_mean(items: Iterable[tuple[float, float | None]]) -> float | None:
    """Σ weight × score / Σ weight over the items with a score; None when no weight remains."""
    total = weight_sum = 0.0
    for weight, score in items:
        if score is not None and weight > 0:
            total += weight * score
            weight_sum += weight
    return total / weight_sum if weight_sum > 0 else None


@dataclass(frozen=True, slots=True)
class Indicator:
    name: str
    weight: float
    score: float | None
    basis: Mapping[str, int | float | None]
    """The counts the score comes from (shown to supervisors)."""

    def to_dict(self) -> dict[str, object]:
        return {"score": tenth(self.score), "weight": self.weight, "basis": dict(self.basis)}


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    weight: float
    indicators: tuple[Indicator, ...]
    score: float | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "score", weighted_mean((i.weight, i.score) for i in self.indicators))

    def to_dict(self) -> dict[str, object]:
        return {
            "score": tenth(self.score),
            "weight": self.weight,
            "indicators": {i.name: i.to_dict() for i in self.indicators},
        }


@dataclass(frozen=True, slots=True)
class GridIndex:
    grid_id: str
    district: str
    groups: tuple[Group, ...]
    index: float | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", weighted_mean((g.weight, g.score) for g in self.groups))

    def to_dict(self) -> dict[str, object]:
        return {
            "district": self.district,
            "index": tenth(self.index),
            "groups": {g.name: g.to_dict() for g in self.groups},
        }

    def fields(self) -> dict[str, float]:
        """The ``grid_index`` point's fields: ``index``, each group and each ``group_indicator``
        (those without a score are not written)."""
        values: dict[str, float | None] = {"index": tenth(self.index)}
        for group in self.groups:
            values[group.name] = tenth(group.score)
            for indicator in group.indicators:
                values[f"{group.name}_{indicator.name}"] = tenth(indicator.score)
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class GridEvents:
    """What one grid's index is computed from (see the module docstring)."""

    not_closed: Sequence[EventAt] = ()
    """Events that existed at ``at`` and were not closed by then."""
    recent: Sequence[EventAt] = ()
    """Events raised in the :data:`HANDLING_WINDOW_MS` before ``at`` (existing at ``at``)."""


# -- the groups -----------------------------------------------------------------------------------

Builder = Callable[[GridFleet, GridEvents, int, Mapping[str, float]], tuple[Indicator, ...]]


def _hazards(
    fleet: GridFleet, events: GridEvents, at_ms: int, w: Mapping[str, float]
) -> tuple[Indicator, ...]:
    devices = max(fleet.devices, 1)
    out = []
    for severity in ("critical", "major", "minor"):
        unresolved = sum(
            1 for e in events.not_closed if e.unresolved and e.severity == severity and is_hazard(e.type)
        )
        half = HALF_PER_100_DEVICES[severity]
        score = 100.0 * half / (half + 100.0 * unresolved / devices)
        out.append(
            Indicator(severity, w[severity], score, {"unresolved": unresolved, "devices": fleet.devices})
        )
    return tuple(out)


def _handling(
    fleet: GridFleet, events: GridEvents, at_ms: int, w: Mapping[str, float]
) -> tuple[Indicator, ...]:
    handlings = [e.handling for e in events.recent]
    due = [h for h in handlings if h.acked_at is not None or h.deadline_ms() <= at_ms]
    on_time = sum(h.acked_on_time() for h in due)
    old = [h for h in handlings if h.raised_at <= at_ms - HANDLED_WITHIN_MS]
    closed = sum(h.closed_at is not None for h in old)
    handled = sum(h.handled_within_8h() for h in old)
    return (
        Indicator(
            "acked_on_time",
            w["acked_on_time"],
            share(on_time, len(due)),
            {"acked_on_time": on_time, "due": len(due)},
        ),
        Indicator(
            "handled_8h",
            w["handled_8h"],
            share(handled, len(old)),
            {"handled_8h": handled, "raised_8h_before": len(old)},
        ),
        Indicator(
            "closure", w["closure"], share(closed, len(old)), {"closed": closed, "raised_8h_before": len(old)}
        ),
    )


def _active_devices(events: Iterable[EventAt], event_type: str) -> set[str]:
    return {e.device_id for e in events if e.type == event_type and e.condition_active}


def _patrol(
    fleet: GridFleet, events: GridEvents, at_ms: int, w: Mapping[str, float]
) -> tuple[Indicator, ...]:
    checkpoints = fleet.checkpoints
    missed_now = _active_devices(events.not_closed, MISSED)
    missed_30d = missed_now | {e.device_id for e in events.recent if e.type == MISSED}
    too_fast = {e.device_id for e in events.recent if e.type == TOO_FAST}
    return (
        Indicator(
            "on_schedule",
            w["on_schedule"],
            share(checkpoints - len(missed_now), checkpoints),
            {"overdue": len(missed_now), "checkpoints": checkpoints},
        ),
        Indicator(
            "on_schedule_30d",
            w["on_schedule_30d"],
            share(checkpoints - len(missed_30d), checkpoints),
            {"overdue_in_30d": len(missed_30d), "checkpoints": checkpoints},
        ),
        Indicator(
            "genuine_30d",
            w["genuine_30d"],
            share(checkpoints - len(too_fast), checkpoints),
            {"too_fast_in_30d": len(too_fast), "checkpoints": checkpoints},
        ),
    )


def _devices(
    fleet: GridFleet, events: GridEvents, at_ms: int, w: Mapping[str, float]
) -> tuple[Indicator, ...]:
    offline = _active_devices(events.not_closed, OFFLINE)
    offline_kinds = {e.device_id: e.kind for e in events.not_closed if e.device_id in offline}
    faulty = _active_devices(events.not_closed, FAULT) - offline
    low = _active_devices(events.not_closed, LOW_BATTERY) - offline
    online = fleet.monitored - len(offline)
    # an offline device reports neither faults nor batteries: those shares are over the others
    reporting_fault = fleet.with_fault - sum(1 for k in offline_kinds.values() if k in FAULT_KINDS)
    reporting_battery = fleet.with_battery - sum(1 for k in offline_kinds.values() if k in BATTERY_KINDS)
    return (
        Indicator(
            "online",
            w["online"],
            share(online, fleet.monitored),
            {"offline": len(offline), "monitored": fleet.monitored},
        ),
        Indicator(
            "fault_free",
            w["fault_free"],
            share(reporting_fault - len(faulty), reporting_fault),
            {"faulty": len(faulty), "reporting": max(reporting_fault, 0)},
        ),
        Indicator(
            "battery_ok",
            w["battery_ok"],
            share(reporting_battery - len(low), reporting_battery),
            {"low_battery": len(low), "reporting": max(reporting_battery, 0)},
        ),
    )


GROUPS: Final[Mapping[str, Builder]] = {
    "hazards": _hazards,
    "handling": _handling,
    "patrol": _patrol,
    "devices": _devices,
}
"""The groups of the tree, in the order shown."""


def grid_index(
    grid_id: str, district: str, fleet: GridFleet, events: GridEvents, at_ms: int, weights: Weights
) -> GridIndex:
    groups = tuple(
        Group(name, weights.groups[name], build(fleet, events, at_ms, weights.indicators[name]))
        for name, build in GROUPS.items()
    )
    return GridIndex(grid_id, district, groups)
