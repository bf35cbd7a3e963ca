"""Figures from a real event store at a time ``at``: later transitions are not seen, ``at`` may
lie in the future, severity rises and clears are taken as they stood, selections and scopes."""

from __future__ import annotations

from typing import Any

from alerts import EventStore
from safety import EVERYTHING, Safety, Scope, Selection, SlaQuery
from tests.unit.alerts.conftest import T0, HitFactory
from tests.unit.safety.conftest import NOW, act, raise_event

MIN = 60_000
HOUR = 3_600_000


def sla(safety: Safety, scope: Scope = EVERYTHING, **query: Any) -> Any:
    return safety.sla(scope, SlaQuery(since_ms=T0 - HOUR, **query))


def total(safety: Safety, at: int) -> Any:
    return sla(safety, at_ms=at)["total"]


def test_at_in_the_past_ignores_later_transitions_and_later_events(
    store: EventStore, safety: Safety, hit: HitFactory
) -> None:
    event = raise_event(store, hit, "S0001", "TAMPER", "major", T0)
    act(store, "W0", event, "ack", T0 + 10 * MIN)
    act(store, "W0", event, "resolve", T0 + 2 * HOUR)
    act(store, "SUP1", event, "close", T0 + 3 * HOUR)
    raise_event(store, hit, "E0001", "CABLE_OVERHEAT", "major", T0 + 4 * HOUR)

    assert total(safety, T0 - 1)["raised"] == 0  # nothing existed yet
    before_ack = total(safety, T0 + 5 * MIN)
    assert (before_ack["raised"], before_ack["acked_on_time"], before_ack["ack_p50_s"]) == (1, 0, None)
    acked = total(safety, T0 + 10 * MIN)  # a transition exactly at `at` counts
    assert (acked["acked_on_time"], acked["ack_p50_s"], acked["resolve_p50_s"]) == (1, 600.0, None)
    resolved = total(safety, T0 + 2 * HOUR + 1)
    assert (resolved["resolve_p90_s"], resolved["closed"], resolved["closure_pct"]) == (7200.0, 0, 0.0)
    closed = total(safety, T0 + 3 * HOUR)
    assert (closed["raised"], closed["closed"], closed["closure_pct"]) == (1, 1, 100.0)
    assert closed["handled_8h_pct"] is None  # nothing raised 8 h before at
    # later: the second event exists; at in the future (8 h after both) counts handled_8h
    future = total(safety, T0 + 20 * HOUR)
    assert future == {
        "raised": 2, "acked_on_time": 1, "handled_8h": 1, "closed": 1, "ack_p50_s": 600.0,
        "ack_p90_s": 600.0, "resolve_p50_s": 7200.0, "resolve_p90_s": 7200.0,
        "handled_8h_pct": 50.0, "closure_pct": 50.0,
    }  # fmt: skip
    assert total(safety, NOW) == total(safety, NOW + 365 * 24 * HOUR)  # nothing after now to see


def test_severity_is_taken_as_it_stood_at_at(store: EventStore, safety: Safety, hit: HitFactory) -> None:
    event = raise_event(store, hit, "E0000", "CABLE_OVERHEAT", "major", T0)
    store.process([hit("E0000", "CABLE_OVERHEAT", "critical", ts=T0 + MIN)], T0 + MIN)  # rises
    act(store, "W0", event, "ack", T0 + 5 * MIN)
    # at T0 + 5 min it is critical (deadline 2 min after raised_at): late; had it stayed major, on time
    assert total(safety, T0 + 5 * MIN)["acked_on_time"] == 0
    history = safety.history.raised_between(Selection(), T0 - 1, None, T0 + 30_000)
    assert [e.severity for e in history] == ["major"]


def test_cleared_as_it_stood(store: EventStore, safety: Safety, hit: HitFactory) -> None:
    raise_event(store, hit, "W0000", "LOW_BATTERY", "minor", T0)
    store.process([hit("W0000", "LOW_BATTERY", "minor", state="clear", ts=T0 + MIN)], T0 + MIN)
    store.process([hit("W0000", "LOW_BATTERY", "minor", ts=T0 + 2 * MIN)], T0 + 2 * MIN)  # again
    states = [
        safety.history.raised_between(Selection(), T0 - 1, None, at)[0].cleared
        for at in (T0, T0 + MIN, T0 + 2 * MIN)
    ]
    assert states == [False, True, False]


def test_grids_every_grid_of_the_selection_the_user_may_see(
    store: EventStore, safety: Safety, hit: HitFactory
) -> None:
    raise_event(store, hit, "S0000", "FIRE_ALARM", "critical", T0)  # G00, critical: a station's
    raise_event(store, hit, "S0002", "TAMPER", "major", T0)  # G02
    everyone = sla(safety)
    assert sorted(everyone["grids"]) == ["D01-G00", "D01-G01", "D01-G02", "D01-G03"]
    raised = {g: f["raised"] for g, f in everyone["grids"].items()}
    assert raised == {"D01-G00": 1, "D01-G01": 0, "D01-G02": 1, "D01-G03": 0}
    assert everyone["total"]["raised"] == 2

    w0 = sla(safety, Scope(grids=frozenset({"D01-G00"})))
    assert list(w0["grids"]) == ["D01-G00"] and w0["total"]["raised"] == 1
    assert sla(safety, Scope(grids=frozenset({"D01-G00"})), grid="D01-G02")["grids"] == {}
    assert sla(safety, Scope(grids=frozenset({"D01-G00"})), grid="D01-G02")["total"]["raised"] == 0
    assert list(sla(safety, grid="D01-G02")["grids"]) == ["D01-G02"]
    assert sla(safety, district="D02")["grids"] == {}
    assert sla(safety, type="TAMPER")["total"]["raised"] == 1

    fire = store.list_events(type="FIRE_ALARM")[0]
    station = sla(safety, Scope(station=fire["station_id"]))
    assert len(station["grids"]) == 4 and station["total"]["raised"] == 1
    other = "D01-ST2" if fire["station_id"] == "D01-ST1" else "D01-ST1"
    assert sla(safety, Scope(station=other))["total"]["raised"] == 0
    assert sla(safety, Scope(station="nowhere"))["grids"] == {}
