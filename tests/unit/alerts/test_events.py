"""Hits into events: raise, routing, dedup and repeats, clear, severity rise, new event after close."""

from __future__ import annotations

import math

from alerts import EVENT_FIELDS, REPEAT_POINT_MS, EventStore
from devices import Reading, Registry, SmokePayload
from rules import RuleEngine
from tests.unit.alerts.conftest import T0, FakePublisher, HitFactory, action, parse_line


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * r * math.asin(math.sqrt(a))


def _nearest(registry: Registry, device_id: str) -> str:
    slot = registry.slot_of[device_id]
    lat, lon = float(registry.lat[slot]), float(registry.lon[slot])
    stations = registry.stations_of(registry.district_of(slot))
    return min(stations, key=lambda s: _haversine(lat, lon, s.lat, s.lon)).station_id


def test_raise_publishes_every_contract_field_to_the_grid_topic(
    store: EventStore, publisher: FakePublisher, registry: Registry, hit: HitFactory
) -> None:
    out = store.process(
        [hit("E0000", "CABLE_OVERHEAT", "major", value=74.5, threshold=70.0, message="Cable 74.5 °C")], T0 + 5
    )
    assert publisher.topics() == ["alerts/D01/D01-G00"]
    [event] = publisher.on("alerts/D01/D01-G00")
    assert tuple(event) == EVENT_FIELDS
    slot = registry.slot_of["E0000"]
    assert event == {
        "event_id": event["event_id"],
        "type": "CABLE_OVERHEAT",
        "severity": "major",
        "state": "open",
        "cleared": False,
        "escalated": False,
        "district": "D01",
        "grid_id": "D01-G00",
        "site_id": "S0",
        "device_id": "E0000",
        "kind": "electrical",
        "lat": float(registry.lat[slot]),
        "lon": float(registry.lon[slot]),
        "station_id": None,
        "value": 74.5,
        "threshold": 70.0,
        "count": 1,
        "raised_at": T0 + 5,  # service time: when firegrid raised it (the reading's ts is T0)
        "updated_at": T0 + 5,
        "message": "Cable 74.5 °C",
        "rev": 1,
    }
    assert len(event["event_id"]) == 26  # a ULID
    assert [p.qos for p in out.published] == [1]
    assert out.events == [event]
    assert len(out.lines) == 1


def test_critical_event_also_goes_to_the_nearest_station(
    store: EventStore, publisher: FakePublisher, registry: Registry, hit: HitFactory
) -> None:
    store.process([hit("S0000", "FIRE_ALARM", "critical")], T0)
    store.process([hit("W0002", "PRESSURE_LOSS", "critical", value=0.02, threshold=0.05)], T0)
    assert _nearest(registry, "S0000") == "D01-ST1"
    assert _nearest(registry, "W0002") == "D01-ST2"
    [fire] = publisher.on("alerts/station/D01-ST1")
    [pressure] = publisher.on("alerts/station/D01-ST2")
    assert fire["device_id"] == "S0000" and fire["station_id"] == "D01-ST1"
    assert pressure["device_id"] == "W0002" and pressure["station_id"] == "D01-ST2"
    assert publisher.on(f"alerts/D01/{pressure['grid_id']}") == [pressure]
    assert publisher.on("alerts/D01/D01-G00") == [fire]


def test_a_district_without_stations_routes_critical_events_to_the_grid_only(
    hit: HitFactory, publisher: FakePublisher, registry: Registry
) -> None:
    (registry.path / "stations.csv").write_text("station_id,name,district,lat,lon\n")
    bare = Registry.load(registry.path)
    store = EventStore(registry.path.parent / "bare.sqlite", bare, publisher)
    out = store.process([hit("S0000", "FIRE_ALARM", "critical")], T0)
    assert out.events[0]["station_id"] is None
    assert publisher.topics() == ["alerts/D01/D01-G00"]


def test_repeat_counts_on_the_same_event_without_a_second_open_point(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    first = store.process([hit("S0000", "TAMPER", ts=T0)], T0)
    later = T0 + REPEAT_POINT_MS  # sooner, the repeat's point would wait (test_coalescing.py)
    second = store.process([hit("S0000", "TAMPER", ts=later, value=2.0)], later)
    a, b = publisher.on("alerts/D01/D01-G00")
    assert a["event_id"] == b["event_id"]
    assert (a["count"], b["count"]) == (1, 2)
    assert b["value"] == 2.0 and b["updated_at"] == later and b["raised_at"] == T0
    assert parse_line(first.lines[0])[2]["state"] == "open"
    [repeat] = second.lines
    fields = parse_line(repeat)[2]
    assert "state" not in fields and fields["change"] == "repeat" and fields["count"] == 2.0
    assert len(store.list_events()) == 1


def test_clear_marks_cleared_but_keeps_the_event_open_and_a_new_raise_counts(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    store.process([hit("S0001", "LOW_BATTERY", "minor")], T0)
    store.process([hit("S0001", "LOW_BATTERY", "minor", state="clear", ts=T0 + 10)], T0 + 10)
    store.process([hit("S0001", "LOW_BATTERY", "minor", ts=T0 + 20)], T0 + 20)
    raised, cleared, again = publisher.on("alerts/D01/D01-G00")
    assert (raised["cleared"], cleared["cleared"], again["cleared"]) == (False, True, False)
    assert cleared["state"] == "open" and again["state"] == "open"
    assert (cleared["count"], again["count"]) == (1, 2)
    assert len({raised["event_id"], cleared["event_id"], again["event_id"]}) == 1


def test_clear_without_an_event_or_twice_does_nothing(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    assert store.process([hit("S0001", "TAMPER", state="clear")], T0).published == []
    store.process([hit("S0001", "TAMPER")], T0)
    store.process([hit("S0001", "TAMPER", state="clear", ts=T0 + 1)], T0 + 1)
    out = store.process([hit("S0001", "TAMPER", state="clear", ts=T0 + 2)], T0 + 2)
    assert out.published == [] and out.lines == []
    assert len(publisher.sent) == 2


def test_dedup_is_per_device_and_type(store: EventStore, hit: HitFactory) -> None:
    store.process(
        [
            hit("S0000", "TAMPER"),
            hit("S0001", "TAMPER"),
            hit("S0000", "DEVICE_FAULT"),
            hit("S0000", "TAMPER", ts=T0 + 1),
        ],
        T0,
    )
    events = {(e["device_id"], e["type"]): e["count"] for e in store.list_events()}
    assert events == {("S0000", "TAMPER"): 2, ("S0001", "TAMPER"): 1, ("S0000", "DEVICE_FAULT"): 1}


def test_fire_confirmed_is_one_event_per_site(store: EventStore, hit: HitFactory) -> None:
    # S0000 and S0002 share site S0
    store.process([hit("S0000", "FIRE_CONFIRMED", "critical")], T0)
    store.process([hit("S0002", "FIRE_CONFIRMED", "critical", ts=T0 + 5)], T0 + 5)
    [event] = store.list_events(type="FIRE_CONFIRMED")
    assert event["count"] == 2 and event["site_id"] == "S0"


def test_severity_rise_routes_to_the_station_from_then_on(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    store.process([hit("E0000", "CABLE_OVERHEAT", "major", value=75.0)], T0)
    assert publisher.topics() == ["alerts/D01/D01-G00"]
    out = store.process([hit("E0000", "CABLE_OVERHEAT", "critical", value=91.0, ts=T0 + 1000)], T0 + 1000)
    assert publisher.topics()[1:] == ["alerts/D01/D01-G00", "alerts/station/D01-ST1"]
    [event] = publisher.on("alerts/station/D01-ST1")
    assert event["severity"] == "critical" and event["station_id"] == "D01-ST1" and event["count"] == 2
    _, tags, fields, _ = parse_line(out.lines[0])
    assert tags["severity"] == "critical" and fields["change"] == "severity" and "state" not in fields
    # a later major repeat (after a clear) never lowers the severity
    store.process([hit("E0000", "CABLE_OVERHEAT", "major", ts=T0 + 3000)], T0 + 3000)
    assert store.list_events()[0]["severity"] == "critical"
    assert publisher.topics()[-1] == "alerts/station/D01-ST1"


def test_raise_after_close_creates_a_new_event(store: EventStore, hit: HitFactory) -> None:
    first = store.process([hit("S0000", "TAMPER")], T0).events[0]["event_id"]
    for worker, name in (("W0", "ack"), ("W0", "resolve"), ("SUP1", "close")):
        assert store.handle_action(worker, action(first, name), T0 + 1).result.ok  # type: ignore[union-attr]
    second = store.process([hit("S0000", "TAMPER", ts=T0 + 10)], T0 + 10).events[0]
    assert second["event_id"] != first and second["count"] == 1 and second["state"] == "open"
    states = {e["event_id"]: e["state"] for e in store.list_events()}
    assert states == {first: "closed", second["event_id"]: "open"}


def test_a_replayed_raise_is_not_counted(store: EventStore, hit: HitFactory) -> None:
    """After a restart the rules engine may replay a raise (same ts): not a repeat."""
    store.process([hit("S0000", "FIRE_ALARM", "critical", ts=T0)], T0)
    out = store.process([hit("S0000", "FIRE_ALARM", "critical", ts=T0)], T0 + 50)
    assert out.published == [] and out.lines == []
    assert store.list_events()[0]["count"] == 1


def test_topic_prefix_is_prepended_everywhere(
    registry: Registry, publisher: FakePublisher, hit: HitFactory
) -> None:
    store = EventStore(registry.path.parent / "p.sqlite", registry, publisher, topic_prefix="t7/")
    event = store.process([hit("S0000", "FIRE_ALARM", "critical")], T0).events[0]
    store.handle_action("W0", action(event["event_id"], "ack"), T0 + 1)
    store.process([hit("S0001", "FIRE_ALARM", "critical")], T0)
    store.tick(T0 + 120_000)
    assert set(publisher.topics()) == {
        "t7/alerts/D01/D01-G00",
        "t7/alerts/station/D01-ST1",
        "t7/actions/W0/result",
        "t7/alerts/D01/escalations",
    }
    assert store.topics.actions_subscription == "t7/actions/+"
    assert (
        store.handle_message("t7/actions/W0", action(event["event_id"], "comment", "x"), T0 + 2) is not None
    )
    assert store.handle_message("actions/W0", b"{}", T0) is None
    assert store.handle_message("t7/actions/W0/result", b"{}", T0) is None


def test_a_publisher_failure_does_not_lose_the_event(registry: Registry, hit: HitFactory) -> None:
    class Broken:
        def publish(self, topic: str, payload: bytes, qos: int) -> None:
            raise RuntimeError("broker gone")

    store = EventStore(registry.path.parent / "b.sqlite", registry, Broken())
    out = store.process([hit("S0000", "FIRE_ALARM", "critical")], T0)
    assert len(out.published) == 2
    assert store.list_events()[0]["type"] == "FIRE_ALARM"


def test_without_a_publisher_the_publications_are_returned(registry: Registry, hit: HitFactory) -> None:
    store = EventStore(registry.path.parent / "n.sqlite", registry)
    out = store.process([hit("S0000", "FIRE_ALARM", "critical")], T0)
    assert [p.topic for p in out.published] == ["alerts/D01/D01-G00", "alerts/station/D01-ST1"]


def test_hits_of_the_real_rules_engine(
    store: EventStore, publisher: FakePublisher, registry: Registry
) -> None:
    engine = RuleEngine(registry, None, T0)
    slot = registry.slot_of["S0001"]
    alarm = Reading(slot, "S0001", T0, SmokePayload(alarm=True))
    store.process(engine.process([alarm], T0), T0)
    quiet = Reading(slot, "S0001", T0 + 5000, SmokePayload(alarm=False))
    store.process(engine.process([quiet], T0 + 5000), T0 + 5000)
    raised, cleared = publisher.on("alerts/D01/D01-G00")
    assert raised["type"] == "FIRE_ALARM" and raised["severity"] == "critical"
    assert raised["device_id"] == "S0001" and raised["raised_at"] == T0
    assert cleared["cleared"] is True and cleared["event_id"] == raised["event_id"]
    assert publisher.on("alerts/station/D01-ST1")[0]["event_id"] == raised["event_id"]
