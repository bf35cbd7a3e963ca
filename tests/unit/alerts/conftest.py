"""Fixtures for the alerts tests: a small registry, a recording publisher, hit builders, a
line-protocol reader. The clock is plain ints (epoch ms)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts import EventStore
from devices import Registry
from rules import Hit, Severity
from tests.helpers import write_registry

T0 = 1_764_583_200_000
MINUTE = 60_000


class FakePublisher:
    """Records every publication as (topic, payload, qos)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.sent.append((topic, payload, qos))

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The JSON documents published to ``topic``, in order."""
        return [orjson.loads(p) for t, p, _ in self.sent if t == topic]

    def topics(self) -> list[str]:
        return [t for t, _, _ in self.sent]

    def clear(self) -> None:
        self.sent.clear()


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "registry")


@pytest.fixture
def registry(registry_path: Path) -> Registry:
    return Registry.load(registry_path)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "events.sqlite"


@pytest.fixture
def store(db_path: Path, registry: Registry, publisher: FakePublisher) -> Iterator[EventStore]:
    store = EventStore(db_path, registry, publisher)
    yield store
    store.close()


HitFactory = Callable[..., Hit]


@pytest.fixture
def hit(registry: Registry) -> HitFactory:
    """``hit("S0000", "FIRE_ALARM", "critical", ts=T0)``: a Hit as the rules engine makes it."""

    def make(
        device_id: str,
        type: str,
        severity: Severity = "major",
        *,
        state: str = "raise",
        ts: int = T0,
        value: float | None = 1.0,
        threshold: float | None = 0.5,
        message: str | None = None,
    ) -> Hit:
        slot = registry.slot_of[device_id]
        site = registry.site_of(slot)
        key = ("site", site, type) if type == "FIRE_CONFIRMED" else ("device", device_id, type)
        return Hit(
            type=type,
            severity=severity,
            kind=registry.kind_of(slot),
            slot=slot,
            device_id=device_id,
            site_id=site,
            grid_id=registry.grid_of(slot),
            district=registry.district_of(slot),
            key=key,
            state="raise" if state == "raise" else "clear",
            value=value,
            threshold=threshold,
            ts=ts,
            message=message or f"{type} {state} on {device_id}",
        )

    return make


def action(event_id: str, name: str, note: str | None = None) -> bytes:
    document: dict[str, Any] = {"event_id": event_id, "action": name}
    if note is not None:
        document["note"] = note
    return orjson.dumps(document)


# -- line protocol, read back ------------------------------------------------------------------


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes and not escaped by a backslash."""
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def _field_value(text: str) -> Any:
    if text.startswith('"'):
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if text in ("true", "false"):
        return text == "true"
    return float(text)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    """(measurement, tags, fields, ts) of one line written by the store."""
    series, fields_text, ts = _split(line, " ")
    measurement, *tag_parts = _split(series, ",")
    tags = dict(part.split("=", 1) for part in tag_parts)
    fields = {}
    for part in _split(fields_text, ","):
        key, value = part.split("=", 1)
        fields[key] = _field_value(value)
    return measurement, tags, fields, int(ts)
