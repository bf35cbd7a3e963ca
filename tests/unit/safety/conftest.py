"""Fixtures for the safety tests: a real event store (the alerts package's, on a temporary file)
driven with hits and worker actions at chosen times, and a :class:`safety.Safety` reading it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts import EventStore
from devices import Registry
from safety import Safety, load_weights
from tests.unit.alerts.conftest import (  # noqa: F401 (fixtures)
    T0,
    FakePublisher,
    HitFactory,
    action,
    db_path,
    hit,
    publisher,
    registry,
    registry_path,
)

NOW = T0 + 40 * 86_400_000
"""The clock of :class:`Safety` in these tests (well after every event)."""


@pytest.fixture
def store(db_path: Path, registry: Registry, publisher: FakePublisher) -> Iterator[EventStore]:  # noqa: F811
    store = EventStore(db_path, registry, publisher)
    yield store
    store.close()


@pytest.fixture
def safety(store: EventStore, registry: Registry) -> Iterator[Safety]:  # noqa: F811
    safety = Safety(store.path, lambda: registry, load_weights(), clock=lambda: NOW)
    yield safety
    safety.close()


def raise_event(store: EventStore, hit: HitFactory, device: str, type: str, severity: str, at: int) -> str:  # noqa: F811
    out = store.process([hit(device, type, severity, ts=at)], at)
    return str(out.events[-1]["event_id"])


def act(store: EventStore, worker: str, event_id: str, name: str, at: int) -> None:
    result = store.handle_action(worker, action(event_id, name), at).result
    assert result is not None and result.ok, result
