"""DEVICE_OFFLINE and the patrol rules (PATROL_HAZARD, PATROL_MISSED, PATROL_TOO_FAST)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devices import haversine_m
from tests.unit.rules.conftest import T0, World, kinds_of

DEADLINE_S = {"smoke": 2 * 3600 + 60, "electrical": 2 * 60 + 60, "water": 2 * 300 + 60}
PATROL_DEADLINE_MS = int(24 * 1.1 * 3600 * 1000)


@pytest.mark.parametrize("kind", ["smoke", "electrical", "water"])
def test_never_heard_devices_go_offline_counted_from_service_start(world: World, kind: str) -> None:
    due = T0 + DEADLINE_S[kind] * 1000
    early = [h for h in world.engine.tick(due - 1) if h.kind == kind]
    assert early == []
    hits = [h for h in world.engine.tick(due) if h.kind == kind]
    assert sorted(kinds_of(hits)) == [
        ("DEVICE_OFFLINE", f"{kind[0].upper()}000{i}", "raise") for i in range(3)
    ]
    assert {(h.severity, h.value, h.threshold, h.ts) for h in hits} == {
        ("minor", DEADLINE_S[kind], DEADLINE_S[kind], due)
    }
    assert [
        h for h in world.engine.tick(due + 10_000_000) if h.kind == kind and h.type == "DEVICE_OFFLINE"
    ] == []


def test_a_message_restarts_the_timer_and_clears_offline(world: World) -> None:
    world.one(world.electrical("E0000", T0 + 100_000), now=T0 + 100_000)
    hits = world.engine.tick(T0 + 180_000)
    assert sorted(kinds_of(hits, "DEVICE_OFFLINE"))[:2] == [
        ("DEVICE_OFFLINE", "E0001", "raise"),
        ("DEVICE_OFFLINE", "E0002", "raise"),
    ]
    assert "E0000" not in {h.device_id for h in hits}
    assert kinds_of(world.engine.tick(T0 + 280_000)) == [("DEVICE_OFFLINE", "E0000", "raise")]
    back = world.one(world.electrical("E0000", T0 + 1000), now=T0 + 300_000)  # old ts, heard now
    assert kinds_of(back) == [("DEVICE_OFFLINE", "E0000", "clear")]
    assert back[0].ts == T0 + 300_000
    assert world.one(world.electrical("E0000", T0 + 2000), now=T0 + 301_000) == []
    assert world.engine.tick(T0 + 479_999) == []
    assert kinds_of(world.engine.tick(T0 + 481_000)) == [("DEVICE_OFFLINE", "E0000", "raise")]


def test_heartbeat_override_and_next_deadline(make_world: Callable[..., World]) -> None:
    world = make_world({"E0001": {"heartbeat_s": 30}})
    assert world.engine.next_deadline() == T0 + 120_000  # 2 × 30 + 60 s
    assert kinds_of(world.engine.tick(T0 + 120_000)) == [("DEVICE_OFFLINE", "E0001", "raise")]
    assert world.engine.next_deadline() == T0 + 180_000


def test_patrol_tags_are_never_offline(world: World) -> None:
    assert {h.type for h in world.engine.tick(T0 + 10 * 86_400_000) if h.kind == "patrol"} == {
        "PATROL_MISSED"
    }


def test_patrol_hazard_raises_on_every_hazard_scan(world: World) -> None:
    hits = world.one(world.patrol("P0000", T0, result="hazard", hazards=["blocked exit"], note="stair B"))
    assert kinds_of(hits) == [("PATROL_HAZARD", "P0000", "raise")]
    assert hits[0].message == "Hazard reported by W0 at checkpoint P0000: blocked exit (stair B)"
    assert hits[0].severity == "major" and hits[0].value == 1
    assert world.one(world.patrol("P0000", T0 + 1000)) == []
    assert kinds_of(world.one(world.patrol("P0000", T0 + 2000, result="hazard"))) == [
        ("PATROL_HAZARD", "P0000", "raise")
    ]


def test_patrol_missed_after_interval_times_1_1_and_cleared_by_a_scan(world: World) -> None:
    world.one(world.patrol("P0001", T0 + 3_600_000), now=T0 + 3_600_000)
    hits = world.engine.tick(T0 + PATROL_DEADLINE_MS - 1)
    assert [h for h in hits if h.type == "PATROL_MISSED"] == []
    hits = world.engine.tick(T0 + PATROL_DEADLINE_MS)
    assert sorted(kinds_of(hits, "PATROL_MISSED")) == [
        ("PATROL_MISSED", "P0000", "raise"),
        ("PATROL_MISSED", "P0002", "raise"),
    ]
    assert kinds_of(world.engine.tick(T0 + 3_600_000 + PATROL_DEADLINE_MS), "PATROL_MISSED") == [
        ("PATROL_MISSED", "P0001", "raise")
    ]
    now = T0 + 2 * PATROL_DEADLINE_MS
    assert world.one(world.patrol("P0000", T0 + 1000), now=now) == []  # a late upload of an old scan
    assert kinds_of(world.one(world.patrol("P0000", now), now=now)) == [("PATROL_MISSED", "P0000", "clear")]


def test_patrol_interval_override(make_world: Callable[..., World]) -> None:
    world = make_world({"P0002": {"patrol_interval_h": 1}})
    assert kinds_of(world.engine.tick(T0 + 3_960_000), "PATROL_MISSED") == [
        ("PATROL_MISSED", "P0002", "raise")
    ]


def test_patrol_too_fast_by_haversine(world: World) -> None:
    reg = world.registry
    a, b = reg.slot_of["P0000"], reg.slot_of["P0001"]
    metres = haversine_m(reg.lat[a], reg.lon[a], reg.lat[b], reg.lon[b])
    assert 500 < metres < 600
    fast_ms = int(metres / 10 * 1000) - 20  # just over 10 m/s
    world.one(world.patrol("P0000", T0, worker_id="W1"))
    hits = world.one(world.patrol("P0001", T0 + fast_ms, worker_id="W1"))
    assert kinds_of(hits) == [("PATROL_TOO_FAST", "P0001", "raise")]
    assert hits[0].value is not None and hits[0].value > 10 and hits[0].threshold == 10
    # exactly 10 m/s is not faster than 10 m/s; other workers' scans do not interleave
    slow_ms = int(metres / 10 * 1000) + 1
    world.one(world.patrol("P0002", T0 + fast_ms + 10, worker_id="W2"))
    assert world.one(world.patrol("P0000", T0 + fast_ms + slow_ms, worker_id="W1")) == []


def test_patrol_too_fast_in_one_batch_follows_the_worker_sequence(world: World) -> None:
    hits = world.feed(
        [
            world.patrol("P0000", T0, worker_id="W1"),
            world.patrol("P0000", T0 + 30_000, worker_id="W1"),  # same tag twice: not a move
            world.patrol("P0002", T0 + 40_000, worker_id="W1"),  # ~1.1 km in 10 s
            world.patrol("P0002", T0 + 41_000, worker_id="W3", result="hazard"),
        ]
    )
    assert kinds_of(hits) == [("PATROL_TOO_FAST", "P0002", "raise"), ("PATROL_HAZARD", "P0002", "raise")]
