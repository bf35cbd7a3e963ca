"""Index properties on a real event store (CONTRACT §12 and issue 15's acceptance): one more open
critical event lowers a grid's index; acknowledging on time scores higher on handling than
escalations; a grid whose devices are all offline scores lowest on devices; a past ``at`` gives
the same index whatever happened after it."""

from __future__ import annotations

from typing import Any

from alerts import EventStore
from devices import Registry
from safety import EVERYTHING as ALL
from safety import GROUPS, EventAt, GridEvents, GridFleet, IndexQuery, Safety, grid_index, load_weights
from tests.unit.alerts.conftest import T0, HitFactory
from tests.unit.safety.conftest import NOW, act, raise_event

MIN = 60_000
HOUR = 3_600_000


def index(safety: Safety, at: int, grid: str | None = None) -> dict[str, Any]:
    grids: dict[str, Any] = safety.index(ALL, IndexQuery(grid=grid, at_ms=at))["grids"]
    return grids


def score(grids: dict[str, Any], grid: str, group: str, indicator: str | None = None) -> float:
    node = grids[grid]["groups"][group]
    value = node["score"] if indicator is None else node["indicators"][indicator]["score"]
    assert isinstance(value, float)
    return value


def test_the_tree_has_the_four_groups_with_their_weights(safety: Safety) -> None:
    grid = index(safety, T0)["D01-G00"]
    assert list(grid["groups"]) == ["hazards", "handling", "patrol", "devices"] == list(GROUPS)
    weights = load_weights()
    for name, group in grid["groups"].items():
        assert group["weight"] == weights.groups[name]
        assert list(group["indicators"]) == list(weights.indicators[name])
        for indicator, node in group["indicators"].items():
            assert node["weight"] == weights.indicators[name][indicator]
    # a quiet grid: no hazards, nothing to handle (null), devices all fine, G00 has no checkpoints
    assert grid["index"] == 100.0
    assert grid["groups"]["handling"]["score"] is None and grid["groups"]["patrol"]["score"] is None


def test_one_more_open_critical_event_lowers_the_index(
    store: EventStore, safety: Safety, hit: HitFactory
) -> None:
    before = index(safety, T0)
    raise_event(store, hit, "S0000", "FIRE_ALARM", "critical", T0)
    one = index(safety, T0)
    raise_event(store, hit, "W0000", "PRESSURE_LOSS", "critical", T0)
    two = index(safety, T0)
    assert before["D01-G00"]["index"] > one["D01-G00"]["index"] > two["D01-G00"]["index"]
    assert score(one, "D01-G00", "hazards", "critical") > score(two, "D01-G00", "hazards", "critical")
    assert one["D01-G00"]["groups"]["hazards"]["indicators"]["critical"]["basis"] == {
        "unresolved": 1,
        "devices": 6,
    }
    assert one["D01-G02"] == before["D01-G02"]  # the other grids are untouched
    # resolving it takes it off the hazards (the index rises again)
    event = store.list_events(type="FIRE_ALARM")[0]["event_id"]
    act(store, "W0", event, "ack", T0 + MIN)
    act(store, "W0", event, "resolve", T0 + 2 * MIN)
    assert index(safety, T0 + 2 * MIN)["D01-G00"]["groups"]["hazards"]["score"] > score(
        two, "D01-G00", "hazards"
    )


def test_acknowledging_on_time_scores_higher_on_handling_than_escalations(
    store: EventStore, safety: Safety, hit: HitFactory
) -> None:
    on_time = raise_event(store, hit, "S0000", "TAMPER", "major", T0)  # G00
    raise_event(store, hit, "S0002", "TAMPER", "major", T0)  # G02: never acknowledged
    act(store, "W0", on_time, "ack", T0 + 5 * MIN)
    store.tick(T0 + 31 * MIN)  # G02's escalates
    grids = index(safety, T0 + HOUR)
    assert score(grids, "D01-G00", "handling", "acked_on_time") == 100.0
    assert score(grids, "D01-G02", "handling", "acked_on_time") == 0.0
    assert score(grids, "D01-G00", "handling") > score(grids, "D01-G02", "handling")
    # before the deadline an unacknowledged event is not yet due: no basis, no score
    early = index(safety, T0 + 10 * MIN)["D01-G02"]["groups"]["handling"]["indicators"]["acked_on_time"]
    assert early == {"score": None, "weight": 0.4, "basis": {"acked_on_time": 0, "due": 0}}


def test_a_grid_with_all_devices_offline_scores_lowest_on_devices(
    store: EventStore, safety: Safety, hit: HitFactory, registry: Registry
) -> None:
    for device in ("S0002", "E0002", "W0002"):  # every monitored device of G02
        raise_event(store, hit, device, "DEVICE_OFFLINE", "minor", T0)
    # G00: one fault and one low battery (online devices): worse than perfect, better than blind
    raise_event(store, hit, "E0000", "DEVICE_FAULT", "major", T0)
    raise_event(store, hit, "W0000", "LOW_BATTERY", "minor", T0)
    grids = index(safety, T0 + MIN)
    devices = {grid: grids[grid]["groups"]["devices"]["score"] for grid in grids}
    assert devices["D01-G02"] == 0.0
    assert devices["D01-G02"] == min(v for v in devices.values() if v is not None)
    assert 0.0 < devices["D01-G00"] < 100.0
    online = grids["D01-G02"]["groups"]["devices"]["indicators"]
    assert online["online"]["basis"] == {"offline": 3, "monitored": 3}
    assert online["fault_free"]["score"] is None  # an offline device reports no fault
    # the device comes back (the rule clears the event): it counts as online again
    store.process([hit("S0002", "DEVICE_OFFLINE", "minor", state="clear", ts=T0 + 2 * MIN)], T0 + 2 * MIN)
    assert index(safety, T0 + 2 * MIN)["D01-G02"]["groups"]["devices"]["indicators"]["online"]["basis"] == {
        "offline": 2,
        "monitored": 3,
    }


def test_patrol_overdue_checkpoints(store: EventStore, safety: Safety, hit: HitFactory) -> None:
    raise_event(store, hit, "P0000", "PATROL_MISSED", "minor", T0)  # G01 has P0000, P0001
    grids = index(safety, T0 + MIN)
    assert score(grids, "D01-G01", "patrol", "on_schedule") == 50.0
    assert score(grids, "D01-G01", "patrol", "on_schedule_30d") == 50.0
    store.process([hit("P0000", "PATROL_MISSED", "minor", state="clear", ts=T0 + HOUR)], T0 + HOUR)
    later = index(safety, T0 + 2 * HOUR)
    assert score(later, "D01-G01", "patrol", "on_schedule") == 100.0
    assert score(later, "D01-G01", "patrol", "on_schedule_30d") == 50.0  # still within 30 days
    assert score(index(safety, T0 + 31 * 24 * HOUR), "D01-G01", "patrol", "on_schedule_30d") == 100.0


def test_the_index_is_reproducible_for_a_past_at(store: EventStore, safety: Safety, hit: HitFactory) -> None:
    fire = raise_event(store, hit, "S0000", "FIRE_ALARM", "critical", T0)
    raise_event(store, hit, "S0002", "DEVICE_OFFLINE", "minor", T0)
    past = T0 + MIN
    then = index(safety, past)
    lines = list(safety.index_lines(past))
    # everything changes afterwards: handled, closed, cleared, new events
    act(store, "W0", fire, "ack", T0 + 2 * MIN)
    act(store, "W0", fire, "resolve", T0 + 3 * MIN)
    act(store, "SUP1", fire, "close", T0 + 4 * MIN)
    store.process([hit("S0002", "DEVICE_OFFLINE", "minor", state="clear", ts=T0 + 5 * MIN)], T0 + 5 * MIN)
    raise_event(store, hit, "E0000", "CABLE_OVERHEAT", "major", T0 + 6 * MIN)
    assert index(safety, T0 + 10 * MIN) != then
    assert index(safety, past) == then
    assert list(safety.index_lines(past)) == lines


def test_grid_index_is_a_pure_function_of_events_and_fleet() -> None:
    fleet = GridFleet(devices=10, monitored=8, with_fault=8, with_battery=4, checkpoints=2)
    event = EventAt("E1", "D", "G", "FIRE_ALARM", "critical", "S1", "smoke", T0, None, None, None, False)
    quiet = grid_index("G", "D", fleet, GridEvents(), NOW, load_weights())
    burning = grid_index("G", "D", fleet, GridEvents(not_closed=[event]), NOW, load_weights())
    assert quiet.index == 100.0
    assert burning.index is not None and burning.index < quiet.index
    # 1 critical per 10 devices = 10 per 100 devices; half at 1 per 100: 100 × 1 / (1 + 10)
    assert burning.fields()["hazards_critical"] == 9.1
    assert set(quiet.fields()) >= {
        "index",
        "hazards",
        "hazards_critical",
        "devices_online",
        "patrol_on_schedule",
    }
    assert "handling" not in quiet.fields()  # null: not written
