"""Handling figures (CONTRACT §12): a pure function of the events' histories, evaluated at ``at``.

Each event comes in as a :class:`Handling`: its ``raised_at``, its severity as it stood at ``at``
and the times of its first ``ack``, ``resolve`` and ``close`` *at or before* ``at`` (None when
there was none by then); :func:`figures` turns a list of them into the §12 figures. Reading the
histories (SQLite) is :mod:`safety._history`'s job; nothing here does I/O or reads a clock.

Choices where §12 leaves room (docs/INDEX.md):

* acknowledged on time: the first ack is *before* ``raised_at`` + the deadline of the event's
  severity (an ack exactly at the deadline is late: the store escalates at ``now >= deadline``);
* handled within 8 h: the first resolve is at most 8 h after ``raised_at`` (inclusive);
* durations are in seconds with millisecond precision; percentages round half up to 0.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from alerts import DEFAULT_DEADLINES_MS

HOUR_MS: Final = 3_600_000
HANDLED_WITHIN_MS: Final = 8 * HOUR_MS
"""§12 ``handled_8h``: resolved within 8 h of ``raised_at``, over events raised ≥ 8 h before ``at``."""

FIGURES: Final[tuple[str, ...]] = (
    "raised",
    "acked_on_time",
    "handled_8h",
    "closed",
    "ack_p50_s",
    "ack_p90_s",
    "resolve_p50_s",
    "resolve_p90_s",
    "handled_8h_pct",
    "closure_pct",
)
"""The figures of §12, in the contract's order (the keys of :meth:`Figures.to_dict`)."""


@dataclass(frozen=True, slots=True)
class Handling:
    """One event as its history stood at ``at``."""

    raised_at: int
    severity: str
    """The severity at ``at`` (a later rise is not seen)."""
    acked_at: int | None = None
    resolved_at: int | None = None
    closed_at: int | None = None

    def deadline_ms(self, deadlines: Mapping[str, int] = DEFAULT_DEADLINES_MS) -> int:
        """The escalation deadline of §12: ``raised_at`` + the severity's time."""
        return self.raised_at + deadlines[self.severity]

    def acked_on_time(self, deadlines: Mapping[str, int] = DEFAULT_DEADLINES_MS) -> bool:
        return self.acked_at is not None and self.acked_at < self.deadline_ms(deadlines)

    def handled_within_8h(self) -> bool:
        return self.resolved_at is not None and self.resolved_at - self.raised_at <= HANDLED_WITHIN_MS


@dataclass(frozen=True, slots=True)
class Figures:
    raised: int
    acked_on_time: int
    handled_8h: int
    closed: int
    ack_p50_s: float | None
    ack_p90_s: float | None
    resolve_p50_s: float | None
    resolve_p90_s: float | None
    handled_8h_pct: float | None
    closure_pct: float | None

    def to_dict(self) -> dict[str, int | float | None]:
        return {name: getattr(self, name) for name in FIGURES}


def nearest_rank(sorted_values: Sequence[int], percent: int) -> int | None:
    """The nearest-rank percentile: the value at rank ⌈percent/100 × n⌉ (1-based); None if empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, -(-percent * n // 100))  # ceil without floats
    return sorted_values[rank - 1]


def percent(part: int, whole: int) -> float | None:
    """100 × part / whole rounded half up to 0.1 (exact integer arithmetic); None when whole is 0."""
    if whole == 0:
        return None
    tenths = (2000 * part + whole) // (2 * whole)
    return tenths / 10


def seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def figures(events: Iterable[Handling], at_ms: int) -> Figures:
    """The §12 figures of ``events`` (each already cut at ``at_ms``), evaluated at ``at_ms``."""
    raised = acked_on_time = handled = old_enough = closed = 0
    acks: list[int] = []
    resolves: list[int] = []
    for event in events:
        raised += 1
        if event.acked_at is not None:
            acks.append(event.acked_at - event.raised_at)
            acked_on_time += event.acked_on_time()
        if event.resolved_at is not None:
            resolves.append(event.resolved_at - event.raised_at)
        if event.raised_at <= at_ms - HANDLED_WITHIN_MS:
            old_enough += 1
            handled += event.handled_within_8h()
        closed += event.closed_at is not None
    acks.sort()
    resolves.sort()
    return Figures(
        raised=raised,
        acked_on_time=acked_on_time,
        handled_8h=handled,
        closed=closed,
        ack_p50_s=seconds(nearest_rank(acks, 50)),
        ack_p90_s=seconds(nearest_rank(acks, 90)),
        resolve_p50_s=seconds(nearest_rank(resolves, 50)),
        resolve_p90_s=seconds(nearest_rank(resolves, 90)),
        handled_8h_pct=percent(handled, old_enough),
        closure_pct=percent(closed, raised),
    )
