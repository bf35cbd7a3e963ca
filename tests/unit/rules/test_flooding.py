"""DEVICE_FLOODING (CONTRACT §10): fed by ingest's rate limit through RuleEngine.limited, cleared
after quiet_s without a drop on the service clock; survives snapshot/restore and reloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devices import Registry, RulesError
from rules import Hit, RuleEngine, RulesConfig
from tests.unit.rules.conftest import T0, World, registry_dir

TYPE = "DEVICE_FLOODING"
MIN = 60_000


def flooding(hits: list[Hit]) -> list[tuple[str, str]]:
    return [(h.device_id, h.state) for h in hits if h.type == TYPE]


def slot(world: World, device_id: str) -> int:
    return world.registry.slot_of[device_id]


def test_the_first_drop_raises_once_per_episode(world: World) -> None:
    s = slot(world, "S0001")
    hits = world.engine.limited({s: 3}, T0, 5.0)
    assert flooding(hits) == [("S0001", "raise")]
    hit = hits[0]
    assert (hit.severity, hit.kind, hit.value, hit.threshold, hit.ts) == ("minor", "smoke", 3.0, 5.0, T0)
    assert hit.key == ("device", "S0001", TYPE)
    assert "5 messages/s" in hit.message and "3 messages dropped" in hit.message
    for i in range(1, 50):  # a steady flood: nothing more until it stops
        assert world.engine.limited({s: 10}, T0 + i * 1000, 5.0) == []
    assert world.engine.limited({}, T0 + 60_000) == []


def test_every_kind_and_several_devices_at_once(world: World) -> None:
    devices = ["S0000", "E0001", "W0002", "P0000"]
    hits = world.engine.limited({slot(world, d): 1 for d in devices}, T0)
    assert sorted(flooding(hits)) == sorted((d, "raise") for d in devices)
    assert {h.kind for h in hits} == {"smoke", "electrical", "water", "patrol"}
    assert all(h.threshold is None for h in hits)  # no limit given


def test_clears_after_ten_quiet_minutes_on_the_service_clock(world: World) -> None:
    s = slot(world, "W0001")
    world.engine.limited({s: 1}, T0, 5.0)
    world.engine.limited({s: 4}, T0 + 30_000, 5.0)  # the flood goes on for 30 s
    assert world.engine.next_deadline() is not None
    assert flooding(world.engine.tick(T0 + 30_000 + 10 * MIN - 1)) == []
    hits = [h for h in world.engine.tick(T0 + 30_000 + 10 * MIN) if h.type == TYPE]
    assert flooding(hits) == [("W0001", "clear")]
    assert hits[0].value == 5.0 and "10 min" in hits[0].message and "5 messages dropped" in hits[0].message
    assert flooding(world.engine.tick(T0 + 60 * MIN)) == []  # cleared once


def test_a_new_flood_after_the_clear_raises_again(world: World) -> None:
    """The event store counts the second raise as a repeat of the open event (count 2)."""
    s = slot(world, "E0000")
    assert flooding(world.engine.limited({s: 1}, T0)) == [("E0000", "raise")]
    assert flooding(world.engine.tick(T0 + 10 * MIN)) == [("E0000", "clear")]
    assert flooding(world.engine.limited({s: 2}, T0 + 11 * MIN)) == [("E0000", "raise")]


def test_the_store_turns_raises_into_one_event_with_a_count(world: World, tmp_path: Path) -> None:
    from alerts import EventStore

    published: list[str] = []

    class Recorder:
        def publish(self, topic: str, payload: bytes, qos: int) -> None:
            published.append(topic)

    store = EventStore(tmp_path / "events.sqlite", world.registry, Recorder())
    s = slot(world, "E0000")
    store.process(world.engine.limited({s: 1}, T0, 5.0), T0)
    store.process(world.engine.tick(T0 + 10 * MIN), T0 + 10 * MIN)
    store.process(world.engine.limited({s: 7}, T0 + 11 * MIN, 5.0), T0 + 11 * MIN)
    events = store.list_events(type=TYPE)
    assert len(events) == 1
    assert (events[0]["count"], events[0]["severity"], events[0]["cleared"]) == (2, "minor", False)
    grid = world.registry.grid_of(s)
    assert f"alerts/D01/{grid}" in published
    store.close()


def test_quiet_s_severity_and_enabled_come_from_the_rules_file(registry: Registry) -> None:
    config = RulesConfig.from_mapping({TYPE: {"quiet_s": 60, "severity": "major"}})
    engine = RuleEngine(registry, config, T0)
    s = registry.slot_of["S0000"]
    hits = engine.limited({s: 1}, T0)
    assert [h.severity for h in hits] == ["major"]
    assert flooding(engine.tick(T0 + 60_000)) == [("S0000", "clear")]
    off = RuleEngine(registry, RulesConfig.from_mapping({TYPE: {"enabled": False}}), T0)
    assert off.limited({s: 1}, T0) == []
    with pytest.raises(RulesError, match=r"DEVICE_FLOODING\.quiet_s"):
        RulesConfig.from_mapping({TYPE: {"quiet_s": 0}})
    with pytest.raises(RulesError, match=r"DEVICE_FLOODING\.limit: Extra inputs"):
        RulesConfig.from_mapping({TYPE: {"limit": 5}})


def test_unknown_slots_are_ignored(world: World) -> None:
    assert world.engine.limited({-1: 1, 10_000: 2}, T0) == []


def test_snapshot_restore_neither_raises_again_nor_forgets_the_clear(world: World) -> None:
    s = slot(world, "S0002")
    world.engine.limited({s: 2}, T0)
    world.engine.limited({s: 3}, T0 + MIN)
    data = world.engine.snapshot(T0 + 2 * MIN)
    # firegrid down for 3 minutes: the clear timer moves by the deaf interval
    restored = RuleEngine.restore(world.registry, None, data, T0 + 5 * MIN)
    assert restored.limited({s: 1}, T0 + 5 * MIN) == []  # still the same episode
    # the latest drop (T0 + 5 min, after the restore) now sets the clear time
    assert flooding(restored.tick(T0 + 15 * MIN - 1)) == []
    hits = [h for h in restored.tick(T0 + 15 * MIN) if h.type == TYPE]
    assert flooding(hits) == [("S0002", "clear")] and hits[0].value == 6.0


def test_restore_shifts_a_running_clear_by_the_downtime(world: World) -> None:
    s = slot(world, "S0002")
    world.engine.limited({s: 2}, T0)
    data = world.engine.snapshot(T0 + MIN)
    restored = RuleEngine.restore(world.registry, None, data, T0 + 4 * MIN)  # 3 min deaf
    assert flooding(restored.tick(T0 + 13 * MIN - 1)) == []
    assert flooding(restored.tick(T0 + 13 * MIN)) == [("S0002", "clear")]


def test_a_broker_outage_moves_the_clear(world: World) -> None:
    s = slot(world, "P0001")
    world.engine.limited({s: 1}, T0)
    world.engine.suspend(T0 + MIN)
    assert flooding(world.engine.tick(T0 + 10 * MIN)) == []  # nothing while suspended
    world.engine.resume(T0 + 3 * MIN)
    assert flooding(world.engine.tick(T0 + 12 * MIN - 1)) == []
    assert flooding(world.engine.tick(T0 + 12 * MIN)) == [("P0001", "clear")]


def test_reload_keeps_episodes_and_forgets_removed_devices(tmp_path: Path) -> None:
    root = registry_dir(tmp_path / "reg")
    registry = Registry.load(root)
    engine = RuleEngine(registry, None, T0)
    engine.limited({registry.slot_of["S0000"]: 1, registry.slot_of["S0001"]: 1}, T0)
    devices = root / "devices.csv"
    lines = devices.read_text().splitlines(keepends=True)
    devices.write_text("".join(line for line in lines if not line.startswith("S0001,")))
    reloaded = Registry.load(root, previous=registry)
    engine.reload(reloaded, T0 + MIN)
    assert engine.limited({reloaded.slot_of["S0000"]: 1}, T0 + MIN) == []  # same episode
    assert flooding(engine.tick(T0 + 11 * MIN)) == [("S0000", "clear")]  # S0001 is gone


def test_restore_with_a_device_gone_from_the_registry(tmp_path: Path) -> None:
    root = registry_dir(tmp_path / "reg")
    registry = Registry.load(root)
    engine = RuleEngine(registry, None, T0)
    engine.limited({registry.slot_of["S0000"]: 1, registry.slot_of["S0001"]: 1}, T0)
    data = engine.snapshot(T0)
    fresh = tmp_path / "fresh"
    shutil.copytree(root, fresh)
    devices = fresh / "devices.csv"
    lines = devices.read_text().splitlines(keepends=True)
    devices.write_text("".join(line for line in lines if not line.startswith("S0000,")))
    restored = RuleEngine.restore(Registry.load(fresh), None, data, T0)
    assert flooding(restored.tick(T0 + 10 * MIN)) == [("S0001", "clear")]
