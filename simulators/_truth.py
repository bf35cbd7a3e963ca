"""What a planned scenario produces: the ground truth and the timed messages.

The ground truth lists the events (CONTRACT §7), rejects and stored values a run must cause
(written as JSON Lines with ``--truth``, see simulators/README.md), and with ``--respond`` what
the simulated workers did (:class:`WorkerAction`, :class:`EventLeftAlone`); the timed messages are the
scenario's own reports, scans and hostile messages, due at a simulated time. Two helpers judge
when a condition held for a while raises a rule with a ``for`` duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from simulators._scenario_schema import Scenario


@dataclass(frozen=True, slots=True)
class ExpectedEvent:
    type: str
    grid_id: str
    district: str
    kind: str
    device_id: str | None = None
    site_id: str | None = None
    step: int = 0

    def key(self) -> tuple[str, str, str]:
        return (self.type, self.grid_id, self.device_id or self.site_id or "")


@dataclass(frozen=True, slots=True)
class ExpectedReject:
    reason: str
    topic: str
    case: str
    step: int = 0


@dataclass(frozen=True, slots=True)
class ExpectedStored:
    kind: str
    topic: str
    device_id: str
    case: str
    field: str
    value: Any
    """The value the field must be stored with; ``None``: the field must not be stored."""
    step: int = 0


@dataclass(frozen=True, slots=True)
class WorkerAction:
    """An action a simulated worker took (``--respond``): what it sent, when, and the answer."""

    worker_id: str
    event_id: str
    grid_id: str
    type: str
    severity: str
    raised_at: int
    """The event's ``raised_at`` (ms epoch, service time: when ingest raised it)."""
    seen_at: int
    """Wall clock (ms epoch) when the event's first alert arrived: the acknowledgement's delay
    counts from here (ingest raised the event and started its escalation deadline just before)."""
    action: str
    sent_at: int
    """Wall clock (ms epoch) when the action was published."""
    ok: bool | None
    """The result's ``ok``; None: no result came (not connected, or none before the run ended)."""
    error: str | None
    result_at: int | None
    """Wall clock (ms epoch) when the result arrived."""
    took_effect_at: int | None = None
    """The result's ``at``: when the change took effect (service time, as the event's history
    shows it); None when refused or without a result."""

    def line(self) -> bytes:
        return orjson.dumps(
            {
                "truth": "action",
                "worker_id": self.worker_id,
                "event_id": self.event_id,
                "grid_id": self.grid_id,
                "type": self.type,
                "severity": self.severity,
                "raised_at": self.raised_at,
                "seen_at": self.seen_at,
                "action": self.action,
                "sent_at": self.sent_at,
                "ok": self.ok,
                "error": self.error,
                "result_at": self.result_at,
                "took_effect_at": self.took_effect_at,
            }
        )


@dataclass(frozen=True, slots=True)
class EventLeftAlone:
    """An event the simulated workers decided not to act on (``--respond``): it escalates."""

    event_id: str
    grid_id: str
    type: str
    severity: str
    raised_at: int
    reason: str
    """``ignored`` (the policy's share), ``silent_worker`` (its worker never answers),
    ``no_workers`` (its grid lists none) or ``human`` (a person plays its grid's worker)."""
    worker_id: str | None = None
    seen_at: int = 0
    """Wall clock (ms epoch) when its first alert arrived."""

    def line(self) -> bytes:
        return orjson.dumps(
            {
                "truth": "ignored",
                "event_id": self.event_id,
                "grid_id": self.grid_id,
                "type": self.type,
                "severity": self.severity,
                "raised_at": self.raised_at,
                "reason": self.reason,
                "worker_id": self.worker_id,
                "seen_at": self.seen_at,
            }
        )


ResponseRecord = WorkerAction | EventLeftAlone
"""A ground-truth line of the simulated workers."""


Out = tuple[str, bytes, str]
"""(topic, payload, kind) of one message to publish; kind is the topic's kind or ``hostile``."""


@dataclass(order=True, slots=True)
class Timed:
    """A message (or several) due at simulated time ``t_ms``; ``emit(wall_ms)`` builds them."""

    t_ms: int
    order: int
    emit: Callable[[int], list[Out]] = field(compare=False)


@dataclass(slots=True)
class Plan:
    scenario: Scenario
    path: Path | None
    events: list[ExpectedEvent] = field(default_factory=list)
    rejects: list[ExpectedReject] = field(default_factory=list)
    stored: list[ExpectedStored] = field(default_factory=list)
    timed: list[Timed] = field(default_factory=list)
    needs_sim_s: float = 0.0
    """Simulated seconds the run must last for every expectation to come true."""
    needs_wall_s: float = 0.0
    """Wall seconds the run must last (offline detection runs on the service clock)."""

    def truth_lines(self) -> list[bytes]:
        name = self.scenario.name
        seen: set[tuple[str, str, str]] = set()
        lines: list[bytes] = []
        for event in self.events:
            if event.key() in seen:
                continue
            seen.add(event.key())
            record: dict[str, Any] = {"type": event.type, "grid_id": event.grid_id}
            if event.device_id is not None:
                record["device_id"] = event.device_id
            if event.site_id is not None:
                record["site_id"] = event.site_id
            record.update(district=event.district, kind=event.kind, scenario=name, step=event.step)
            lines.append(orjson.dumps(record))
        for reject in self.rejects:
            lines.append(
                orjson.dumps(
                    {
                        "reject": reject.reason,
                        "topic": reject.topic,
                        "case": reject.case,
                        "scenario": name,
                        "step": reject.step,
                    }
                )
            )
        for stored in self.stored:
            lines.append(
                orjson.dumps(
                    {
                        "accepted": stored.kind,
                        "topic": stored.topic,
                        "device_id": stored.device_id,
                        "case": stored.case,
                        "field": stored.field,
                        "value": stored.value,
                        "scenario": name,
                        "step": stored.step,
                    }
                )
            )
        return lines

    def write_truth(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(line + b"\n" for line in self.truth_lines()))


# -- when does a held condition raise a rule ------------------------------------------------------


def expect(beyond_min_s: float, beyond_max_s: float, for_s: float, cadence_s: float) -> bool | None:
    """Does a condition that holds between ``beyond_min_s`` and ``beyond_max_s`` raise a rule with
    ``for_s``? ``None`` when the answer depends on where readings fall."""
    if beyond_min_s >= for_s + 3 * cadence_s and beyond_min_s > 0:
        return True
    if beyond_max_s <= 0 or (for_s > 0 and beyond_max_s < for_s - 1.0):
        return False
    return None


def ramp_beyond(
    base: float, target: float, threshold: float, ramp_s: float, hold_s: float, *, below: bool
) -> float:
    """Seconds a ramp(base → target, hold, back) spends beyond ``threshold`` (below or above)."""

    def beyond(value: float) -> bool:
        return value < threshold if below else value > threshold

    if not beyond(target):
        return 0.0
    if beyond(base):
        return 2 * ramp_s + hold_s
    share = (base - threshold) / (base - target) if base != target else 1.0
    return hold_s + 2 * ramp_s * (1.0 - share)
