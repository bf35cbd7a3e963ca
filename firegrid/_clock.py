"""The service clock (an extension of CONTRACT §9, for simulation and demos only).

Everything in ``firegrid ingest`` that reads "now" reads it here: the receipt time of every message
(the rate limit, the ``ts`` checks), the pipeline's ``now_ms`` (events' ``raised_at``, the
escalation deadlines, transitions, offline detection, missed patrols), worker actions, the
``grid_index`` / ``grid_sla`` schedule and the default ``at`` of ``/sla`` and ``/index``.

By default the service clock *is* the wall clock. For a simulation played at ``scale`` times the
speed of real time (``firegrid simulate run --time-scale X``), it maps wall time to service time
linearly::

    service_ms = anchor_service_ms + (wall_ms - anchor_wall_ms) * scale

from the anchor on; before it, the service clock stands at the anchor's service time (an ingest
started a little ahead of the simulation loses no simulated time: its offline timers do not run
out before the first reading). So a month of simulated readings arrives in minutes *and* is
handled on the same clock: the deadlines (2 min, 30 min, 8 h), the workers' delays and the
figures all count in simulated time.
The anchor is given explicitly (``FIREGRID_CLOCK_ANCHOR=WALL_MS=SERVICE_MS``), so a restarted
ingest keeps the same mapping, and ``firegrid simulate run`` started with the same settings
follows it. Never for production: a scaled clock runs away from the wall clock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

_ANCHOR: Final = re.compile(r"^\s*(-?\d{1,16})\s*=\s*(-?\d{1,16})\s*$")


def wall_ms() -> int:
    """The wall clock, epoch ms."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Clock:
    """Wall time → service time: ``scale`` service ms per wall ms from the anchor on; standing at
    the anchor's service time before it."""

    scale: float = 1.0
    anchor_wall_ms: int = 0
    anchor_service_ms: int = 0

    def __post_init__(self) -> None:
        if not (self.scale > 0 and self.scale < float("inf")):
            raise ValueError(f"the clock's scale must be a positive number, not {self.scale}")

    @classmethod
    def parse(cls, scale: float, anchor: str | None) -> Clock:
        """The clock of the settings; ``ValueError`` (one readable line) when they do not make one."""
        if anchor is None or not anchor.strip():
            if scale != 1:
                raise ValueError("a scaled clock needs FIREGRID_CLOCK_ANCHOR=WALL_MS=SERVICE_MS")
            return cls()
        match = _ANCHOR.match(anchor)
        if match is None:
            raise ValueError(f"must be WALL_MS=SERVICE_MS (two epoch ms), got {anchor!r}")
        return cls(scale, int(match[1]), int(match[2]))

    @property
    def identity(self) -> bool:
        return self.scale == 1 and self.anchor_wall_ms == self.anchor_service_ms

    def service_ms(self, wall: int) -> int:
        """The service time at wall time ``wall`` (epoch ms)."""
        if self.identity:
            return wall
        return self.anchor_service_ms + round(max(wall - self.anchor_wall_ms, 0) * self.scale)

    def wall_at(self, service: int) -> int:
        """The wall time at which the service clock reads ``service`` (epoch ms; the anchor's for
        any earlier service time)."""
        if self.identity:
            return service
        return self.anchor_wall_ms + round(max(service - self.anchor_service_ms, 0) / self.scale)

    def start_wall_ms(self, now_ms: int, lead_ms: int) -> int:
        """When a simulation that follows this clock starts (wall, epoch ms): at the anchor when it
        lies ahead (its simulated start is then the anchor's service time), else ``lead_ms`` after
        ``now_ms``."""
        return self.anchor_wall_ms if self.anchor_wall_ms >= now_ms else now_ms + lead_ms

    def reader(self) -> Callable[[], int]:
        """A function answering the service time now (epoch ms). The identity clock is
        :func:`wall_ms` itself, so the default costs nothing more on the hot path."""
        if self.identity:
            return wall_ms
        scale, wall0, service0 = self.scale, self.anchor_wall_ms, self.anchor_service_ms

        def now_ms() -> int:
            return service0 + round(max(time.time_ns() // 1_000_000 - wall0, 0) * scale)

        return now_ms

    def describe(self) -> str:
        if self.identity:
            return "service clock = wall clock"
        return f"service clock ×{self.scale:g}: wall {self.anchor_wall_ms} = service {self.anchor_service_ms}"


WALL_CLOCK: Final = Clock()
"""The default: the service clock is the wall clock."""
