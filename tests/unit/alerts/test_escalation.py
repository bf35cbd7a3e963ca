"""Escalation on a fake clock: exactly at the deadline, once, to the escalations topic."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import EventStore
from devices import Registry
from tests.unit.alerts.conftest import MINUTE, T0, FakePublisher, HitFactory, action, parse_line

DEADLINES = {"critical": 2 * MINUTE, "major": 30 * MINUTE, "minor": 8 * 60 * MINUTE}
TYPES = {"critical": "FIRE_ALARM", "major": "TAMPER", "minor": "LOW_BATTERY"}


@pytest.mark.parametrize("severity", ["critical", "major", "minor"])
def test_escalates_exactly_at_the_deadline_and_once(
    store: EventStore, publisher: FakePublisher, hit: HitFactory, severity: str
) -> None:
    opened = T0 + 7
    event = store.process([hit("S0000", TYPES[severity], severity)], opened).events[0]
    deadline = opened + DEADLINES[severity]
    assert store.next_deadline() == deadline
    publisher.clear()

    early = store.tick(deadline - 1)
    assert early.published == [] and early.lines == [] and publisher.sent == []

    out = store.tick(deadline)
    expected = ["alerts/D01/D01-G00"]
    if severity == "critical":
        expected.append("alerts/station/D01-ST1")
    expected.append("alerts/D01/escalations")
    assert publisher.topics() == expected
    [escalated] = publisher.on("alerts/D01/escalations")
    assert escalated["event_id"] == event["event_id"]
    assert escalated["escalated"] is True and escalated["state"] == "open"
    assert escalated["updated_at"] == deadline
    [line] = out.lines
    fields = parse_line(line)[2]
    assert fields["escalated"] is True and fields["change"] == "escalated" and "state" not in fields

    assert store.next_deadline() is None
    assert store.tick(deadline + DEADLINES["minor"]).published == []
    assert len(publisher.on("alerts/D01/escalations")) == 1
    history = store.get_event(event["event_id"])["history"]  # type: ignore[index]
    assert [h["action"] for h in history] == ["raise", "escalate"]
    assert history[-1]["at_ms"] == deadline


def test_an_acknowledged_event_does_not_escalate(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    event = store.process([hit("S0000", "FIRE_ALARM", "critical")], T0).events[0]
    store.handle_action("W0", action(event["event_id"], "ack"), T0 + MINUTE)
    assert store.next_deadline() is None
    publisher.clear()
    assert store.tick(T0 + 10 * MINUTE).published == []


def test_an_escalated_event_can_still_be_worked(store: EventStore, hit: HitFactory) -> None:
    event = store.process([hit("S0000", "FIRE_ALARM", "critical")], T0).events[0]
    store.tick(T0 + 2 * MINUTE)
    out = store.handle_action("W0", action(event["event_id"], "ack"), T0 + 3 * MINUTE)
    assert out.result is not None and out.result.ok
    assert out.events[0]["escalated"] is True and out.events[0]["state"] == "acknowledged"


def test_deadlines_are_ordered_and_each_event_escalates_at_its_own(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    store.process([hit("S0000", "TAMPER", "major")], T0)
    store.process([hit("S0001", "FIRE_ALARM", "critical")], T0 + MINUTE)
    assert store.next_deadline() == T0 + 3 * MINUTE
    assert [e["device_id"] for e in store.tick(T0 + 3 * MINUTE).events] == ["S0001"]
    assert store.next_deadline() == T0 + 30 * MINUTE
    assert [e["device_id"] for e in store.tick(T0 + 31 * MINUTE).events] == ["S0000"]
    assert len(publisher.on("alerts/D01/escalations")) == 2


def test_a_severity_rise_brings_the_deadline_forward(store: EventStore, hit: HitFactory) -> None:
    store.process([hit("E0000", "CABLE_OVERHEAT", "major")], T0)
    assert store.next_deadline() == T0 + 30 * MINUTE
    store.process([hit("E0000", "CABLE_OVERHEAT", "critical", ts=T0 + MINUTE)], T0 + MINUTE)
    assert store.next_deadline() == T0 + 3 * MINUTE
    out = store.tick(T0 + 3 * MINUTE)
    assert [p.topic for p in out.published] == [
        "alerts/D01/D01-G00",
        "alerts/station/D01-ST1",
        "alerts/D01/escalations",
    ]
    assert store.tick(T0 + 30 * MINUTE).published == []


def test_a_late_upload_gets_its_full_deadline_on_the_service_clock(
    store: EventStore, hit: HitFactory
) -> None:
    """A gateway delivers an alarm an hour late: the workers still get their 2 minutes, and
    raised_at is when firegrid raised it (service time, CONTRACT §12), from which §12's
    acked_on_time counts the same deadline."""
    event = store.process([hit("S0000", "FIRE_ALARM", "critical", ts=T0)], T0 + 60 * MINUTE).events[0]
    assert event["raised_at"] == T0 + 60 * MINUTE
    assert store.next_deadline() == T0 + 62 * MINUTE


def test_deadlines_survive_a_restart(
    db_path: Path, registry: Registry, publisher: FakePublisher, store: EventStore, hit: HitFactory
) -> None:
    store.process([hit("S0000", "FIRE_ALARM", "critical")], T0)
    reopened = EventStore(db_path, registry, publisher)
    assert reopened.next_deadline() == T0 + 2 * MINUTE
    publisher.clear()
    assert reopened.tick(T0 + 10 * MINUTE).events[0]["escalated"] is True
    again = EventStore(db_path, registry, publisher)
    assert again.next_deadline() is None
    assert again.tick(T0 + 20 * MINUTE).published == []


def test_custom_deadlines(db_path: Path, registry: Registry, hit: HitFactory) -> None:
    store = EventStore(db_path, registry, deadlines_ms={"critical": 1000, "major": 2000, "minor": 3000})
    store.process([hit("S0000", "TAMPER", "major")], T0)
    assert store.next_deadline() == T0 + 2000
    with pytest.raises(ValueError, match="minor"):
        EventStore(db_path, registry, deadlines_ms={"critical": 1000, "major": 2000})


def test_a_limited_tick_escalates_the_earliest_and_leaves_the_rest_due(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    devices = ["S0000", "S0001", "S0002", "W0000", "W0001"]
    for n, device in enumerate(devices):  # one ms apart: the deadlines have an order
        store.process([hit(device, "LOW_BATTERY", "minor")], T0 + n)
    last = T0 + len(devices) - 1 + DEADLINES["minor"]
    publisher.clear()
    assert store.tick(last, limit=0).published == []  # none: a timer round without room
    assert store.next_deadline() == T0 + DEADLINES["minor"]

    rounds: list[list[str]] = []
    while (due := store.next_deadline()) is not None and due <= last:
        store.tick(last, limit=2)
        rounds.append([e["device_id"] for e in publisher.on("alerts/D01/escalations")])
        publisher.clear()
        assert len(rounds) <= len(devices), "the ticks make no progress"
    assert rounds == [devices[:2], devices[2:4], devices[4:]]
    assert store.counts()["escalated"] == len(devices)
