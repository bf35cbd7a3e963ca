"""What a demo run did, as one frozen value: the summary printed at the end and ``DIR/summary.json``.

``DemoSummary.to_json`` keeps the file's flat layout (``sent``, ``sent_per_kind``,
``influx_points``…) while the value groups what belongs together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firegrid._alert_feed import FeedStats


@dataclass(frozen=True, slots=True)
class TrafficTotals:
    """What the simulator sent, over the scenario and the background runs after it."""

    sent: int = 0
    per_kind: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredPoints:
    """What InfluxDB holds, counted before it was stopped."""

    url: str | None
    db: str
    new: Mapping[str, int] | None
    """Points per measurement written during the run; None when InfluxDB could not be asked."""
    in_db: int | None
    """Points in the database, earlier runs' included."""

    @property
    def new_total(self) -> int:
        return sum(self.new.values()) if self.new else 0


@dataclass(frozen=True, slots=True)
class DemoSummary:
    dir: Path
    stopped_by: str
    """``duration``, ``Ctrl-C``, a signal's name, ``error`` or ``end``."""
    error: str | None
    seconds: float
    """Wall seconds the traffic ran, to a tenth."""
    scale: float
    seed: int
    scenario: str
    rate: float
    traffic: TrafficTotals
    alerts: FeedStats
    influx: StoredPoints
    ingest_exit: int | None
    pids: Mapping[str, int]
    """Every child process the run started, by name."""
    problems: tuple[str, ...]
    """What went wrong while stopping; none after a clean stop."""

    def to_json(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir),
            "stopped_by": self.stopped_by,
            "error": self.error,
            "seconds": self.seconds,
            "scale": self.scale,
            "seed": self.seed,
            "scenario": self.scenario,
            "rate": self.rate,
            "sent": self.traffic.sent,
            "sent_per_kind": dict(self.traffic.per_kind),
            "simulator_warnings": list(self.traffic.warnings),
            "alerts": self.alerts.to_json(),
            "influx_url": self.influx.url,
            "influx_db": self.influx.db,
            "influx_points": dict(self.influx.new) if self.influx.new is not None else None,
            "influx_points_total": self.influx.new_total,
            "influx_points_in_db": self.influx.in_db,
            "ingest_exit": self.ingest_exit,
            "pids": dict(self.pids),
            "problems": list(self.problems),
        }
