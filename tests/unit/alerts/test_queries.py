"""list_events filters and get_event (the HTTP endpoints' data)."""

from __future__ import annotations

import pytest

from alerts import EVENT_FIELDS, EventStore
from tests.unit.alerts.conftest import T0, HitFactory, action


@pytest.fixture
def filled(store: EventStore, hit: HitFactory) -> EventStore:
    store.process([hit("S0000", "FIRE_ALARM", "critical", ts=T0)], T0)  # G00
    store.process([hit("S0002", "TAMPER", "major", ts=T0 + 1000)], T0 + 1000)  # G02
    store.process([hit("P0000", "PATROL_HAZARD", "major", ts=T0 + 2000)], T0 + 2000)  # G01
    tamper = store.list_events(type="TAMPER")[0]["event_id"]
    store.handle_action("W2", action(tamper, "ack"), T0 + 3000)
    return store


def test_filters(filled: EventStore) -> None:
    assert [e["type"] for e in filled.list_events()] == ["PATROL_HAZARD", "TAMPER", "FIRE_ALARM"]
    assert [e["type"] for e in filled.list_events(state="open")] == ["PATROL_HAZARD", "FIRE_ALARM"]
    assert [e["type"] for e in filled.list_events(state="acknowledged")] == ["TAMPER"]
    assert [e["type"] for e in filled.list_events(grid="D01-G01")] == ["PATROL_HAZARD"]
    assert filled.list_events(district="D02") == []
    assert len(filled.list_events(district="D01")) == 3
    assert [e["type"] for e in filled.list_events(since_ms=T0 + 1000)] == ["PATROL_HAZARD", "TAMPER"]
    assert [e["type"] for e in filled.list_events(type="FIRE_ALARM", state="open", grid="D01-G00")] == [
        "FIRE_ALARM"
    ]
    assert len(filled.list_events(limit=2)) == 2
    assert all(tuple(e) == EVENT_FIELDS for e in filled.list_events())


def test_bad_filters_are_refused(filled: EventStore) -> None:
    with pytest.raises(ValueError, match="state must be one of"):
        filled.list_events(state="burning")
    with pytest.raises(ValueError, match="limit"):
        filled.list_events(limit=0)


def test_get_event(filled: EventStore) -> None:
    tamper = filled.list_events(type="TAMPER")[0]
    event = filled.get_event(tamper["event_id"])
    assert event is not None
    assert {k: v for k, v in event.items() if k != "history"} == tamper
    assert [(h["action"], h["worker_id"]) for h in event["history"]] == [("raise", None), ("ack", "W2")]
    assert filled.get_event("01JF0000000000000000000000") is None


def test_queries_from_another_thread(filled: EventStore) -> None:
    import threading

    found: list[int] = []
    thread = threading.Thread(target=lambda: found.append(len(filled.list_events())))
    thread.start()
    thread.join()
    assert found == [3]
