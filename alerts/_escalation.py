"""Escalation deadlines: an event not acknowledged in time is escalated, once.

The deadline counts on the service clock from the moment firegrid raised the event, its
``raised_at`` (service time, CONTRACT §12; for a late gateway upload of old readings that is the
upload, so the workers get their full time to acknowledge). When an open event's severity rises (a
CABLE_OVERHEAT turning critical), its deadline becomes the earlier of the old one and *now* +
the new severity's time. An event escalates when ``now_ms >= deadline`` (exactly at the
deadline, not 1 ms before).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Final

DEFAULT_DEADLINES_MS: Final[Mapping[str, int]] = {
    "critical": 2 * 60_000,
    "major": 30 * 60_000,
    "minor": 8 * 3_600_000,
}


class Deadlines:
    """A min-heap of (deadline, event_id) with lazy deletion: an entry counts only while it
    matches the event's current deadline (``current(event_id)``, given by the caller)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def push(self, deadline_ms: int, event_id: str) -> None:
        heapq.heappush(self._heap, (deadline_ms, event_id))

    def next(self, current: Callable[[str], int | None]) -> int | None:
        """The earliest live deadline (drops stale entries)."""
        heap = self._heap
        while heap:
            deadline, event_id = heap[0]
            if current(event_id) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def due(self, now_ms: int, current: Callable[[str], int | None], limit: int | None = None) -> list[str]:
        """Pop and return the events whose live deadline is ``<= now_ms``, earliest first; at
        most ``limit`` of them (the rest stay due)."""
        out: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms and (limit is None or len(out) < limit):
            deadline, event_id = heapq.heappop(heap)
            if current(event_id) == deadline:
                out.append(event_id)
        return out

    def __len__(self) -> int:
        return len(self._heap)
