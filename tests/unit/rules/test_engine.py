"""The engine: repeated devices in a batch, snapshot/restore, suspend/resume, reload, catalogue."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from devices import KINDS, Reading, Registry, RulesError
from rules import (
    EVENT_TYPES,
    RULE_TYPES,
    SERVICE_TYPES,
    Hit,
    RuleEngine,
    SnapshotWriter,
    load_snapshot,
    save_snapshot,
)
from rules._all import EXTRACTORS, FAMILIES
from tests.unit.rules.conftest import T0, World, kinds_of, registry_dir

# -- catalogue ---------------------------------------------------------------------------------------


def test_every_contract_type_has_exactly_one_family() -> None:
    emitted = [t for family in FAMILIES for t in family.types]
    assert sorted(emitted) == sorted(EVENT_TYPES)
    assert len(set(RULE_TYPES)) == 15  # §7
    assert SERVICE_TYPES == ("DEVICE_FLOODING",)  # §10
    assert EVENT_TYPES == RULE_TYPES + SERVICE_TYPES


def test_every_kind_has_rules_and_a_numeric_kind_an_extractor() -> None:
    every_kind = {"DEVICE_FAULT", *SERVICE_TYPES}  # families that any kind gets, not its own rules
    for spec in KINDS:
        assert spec.name in EXTRACTORS or spec.name == "patrol"  # patrol's family reads payloads
        assert any(spec.name in family.kinds for family in FAMILIES if not set(family.types) <= every_kind)


def test_every_kind_sample_goes_through_the_engine(world: World) -> None:
    readings = []
    for spec in KINDS:
        device = f"{spec.name[0].upper()}0000"
        readings.append(world.reading(device, T0, spec.payload.model_validate(spec.sample)))
    hits = world.feed(readings)
    assert {h.type for h in hits} <= {"PATROL_HAZARD"}


# -- batches with repeated devices ---------------------------------------------------------------------


def _signature(hits: list[Hit]) -> list[tuple[str, str, str, int, str, str]]:
    return sorted((h.type, h.device_id, h.state, h.ts, h.severity, h.message) for h in hits)


def _random_readings(world: World, seed: int, n: int) -> list[Reading]:
    rng = random.Random(seed)
    clock = {d: T0 for d in ("S0000", "S0001", "S0002", "E0000", "E0001", "W0000", "W0001", "P0000", "P0001")}
    out = []
    for _ in range(n):
        device = rng.choice(sorted(clock))
        clock[device] += rng.choice([1000, 4000, 9900, 10_000, 20_000, 60_000])
        ts = clock[device]
        if device[0] == "S":
            out.append(
                world.smoke(
                    device,
                    ts,
                    alarm=rng.random() < 0.3,
                    battery_pct=rng.choice([10, 17, 25]),
                    tamper=rng.choice([None, True, False]),
                    fault=rng.choice([None, "x"]),
                )
            )
        elif device[0] == "E":
            out.append(
                world.electrical(
                    device,
                    ts,
                    residual_ma=rng.choice([100, 280, 300, 320]),
                    temp_c=[rng.choice([40.0, 64.0, 70.0, 91.0])],
                )
            )
        elif device[0] == "W":
            out.append(
                world.water(device, ts, pressure_mpa=rng.choice([0.04, 0.06, 0.09, 0.11, 0.5, 1.19, 1.3]))
            )
        else:
            out.append(
                world.patrol(
                    device, ts, worker_id=rng.choice(["W0", "W1"]), result=rng.choice(["ok", "hazard"])
                )
            )
    return out


@pytest.mark.parametrize("seed", range(8))
def test_a_batch_with_repeats_gives_what_one_reading_at_a_time_gives(
    make_world: Callable[..., World], seed: int
) -> None:
    one, many = make_world(), make_world()
    readings = _random_readings(one, seed, 300)
    now = max(r.ts for r in readings)
    expected: list[Hit] = []
    for reading in readings:
        expected += one.engine.process([reading], now)
    got: list[Hit] = []
    for start in range(0, len(readings), 100):
        got += many.engine.process(readings[start : start + 100], now)
    assert _signature(got) == _signature(expected)
    assert len(expected) > 20
    # and the per-key order (raise before clear) is kept
    for key in {h.key for h in expected}:
        assert [h.state for h in got if h.key == key] == [h.state for h in expected if h.key == key]


def test_a_whole_for_window_inside_one_batch(world: World) -> None:
    hits = world.feed([world.electrical("E0000", T0 + i * 1000, temp_c=[80.0]) for i in range(15)])
    assert kinds_of(hits) == [("CABLE_OVERHEAT", "E0000", "raise")]
    assert hits[0].ts == T0 + 10_000


def test_readings_of_unknown_or_mismatched_slots_are_ignored(world: World) -> None:
    good = world.smoke("S0000", T0, alarm=True)
    wrong_kind = Reading(world.registry.slot_of["E0000"], "E0000", T0, good.payload)
    out_of_range = Reading(10_000, "Z9", T0, good.payload)
    assert kinds_of(world.feed([wrong_kind, out_of_range, good])) == [("FIRE_ALARM", "S0000", "raise")]


# -- snapshot / restore ---------------------------------------------------------------------------------


def test_restore_in_the_middle_of_a_for_window(world: World) -> None:
    world.one(world.electrical("E0000", T0, temp_c=[75.0]))
    world.one(world.electrical("E0000", T0 + 5000, temp_c=[75.0]))
    engine = RuleEngine.restore(world.registry, None, world.engine.snapshot(T0 + 5000), T0 + 7000)
    world.engine = engine
    assert world.one(world.electrical("E0000", T0 + 9900, temp_c=[75.0])) == []
    assert kinds_of(world.one(world.electrical("E0000", T0 + 10_000, temp_c=[75.0]))) == [
        ("CABLE_OVERHEAT", "E0000", "raise")
    ]
    # a restart after the raise does not raise again
    world.engine = RuleEngine.restore(world.registry, None, world.engine.snapshot(), T0 + 11_000)
    assert world.one(world.electrical("E0000", T0 + 12_000, temp_c=[75.0])) == []
    assert kinds_of(world.one(world.electrical("E0000", T0 + 13_000, temp_c=[60.0]))) == [
        ("CABLE_OVERHEAT", "E0000", "clear")
    ]


def test_restore_keeps_offline_timers_and_shifts_them_by_the_downtime(world: World) -> None:
    world.one(world.electrical("E0000", T0 + 60_000), now=T0 + 60_000)  # due at T0 + 240 s
    assert kinds_of(world.engine.tick(T0 + 180_000)) == [
        ("DEVICE_OFFLINE", "E0001", "raise"),
        ("DEVICE_OFFLINE", "E0002", "raise"),
    ]
    data = world.engine.snapshot(T0 + 200_000)
    # firegrid was down from T0+200 s to T0+500 s: E0000 is not offline at T0+500 s
    restored = RuleEngine.restore(world.registry, None, data, T0 + 500_000)
    assert [h for h in restored.tick(T0 + 500_000) if h.kind == "electrical"] == []
    assert kinds_of([h for h in restored.tick(T0 + 539_999) if h.kind == "electrical"]) == []
    assert kinds_of([h for h in restored.tick(T0 + 540_000) if h.kind == "electrical"]) == [
        ("DEVICE_OFFLINE", "E0000", "raise")
    ]
    # the devices already offline are not raised again, and a message clears them
    assert kinds_of(restored.process([world.electrical("E0001", T0 + 1)], T0 + 541_000)) == [
        ("DEVICE_OFFLINE", "E0001", "clear")
    ]


def test_restore_without_downtime_forgets_no_timer(world: World) -> None:
    world.one(world.electrical("E0000", T0 + 60_000), now=T0 + 60_000)
    restored = RuleEngine.restore(world.registry, None, world.engine.snapshot(T0 + 100_000), T0 + 100_000)
    assert restored.next_deadline() == T0 + 180_000
    assert sorted(kinds_of([h for h in restored.tick(T0 + 240_000) if h.kind == "electrical"])) == [
        ("DEVICE_OFFLINE", "E0000", "raise"),
        ("DEVICE_OFFLINE", "E0001", "raise"),
        ("DEVICE_OFFLINE", "E0002", "raise"),
    ]


def test_restore_keeps_site_and_worker_state(world: World) -> None:
    world.one(world.smoke("S0000", T0, alarm=True))
    world.one(world.patrol("P0000", T0, worker_id="W1"))
    world.engine = RuleEngine.restore(world.registry, None, world.engine.snapshot(T0), T0 + 1000)
    assert kinds_of(world.one(world.smoke("S0002", T0 + 10_000, alarm=True)), "FIRE_CONFIRMED") == [
        ("FIRE_CONFIRMED", "S0002", "raise")
    ]
    assert kinds_of(world.one(world.patrol("P0002", T0 + 20_000, worker_id="W1"))) == [
        ("PATROL_TOO_FAST", "P0002", "raise")
    ]


def test_restore_matches_devices_by_id_when_the_registry_was_edited(tmp_path: Path, world: World) -> None:
    world.one(world.electrical("E0002", T0, temp_c=[75.0]))
    data = world.engine.snapshot(T0)
    root = registry_dir(tmp_path / "edited")
    lines = (root / "devices.csv").read_text().splitlines()
    (root / "devices.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # new slots
    edited = Registry.load(root)
    assert edited.slot_of["E0002"] != world.registry.slot_of["E0002"]
    engine = RuleEngine.restore(edited, None, data, T0 + 1000)
    reading = Reading(
        edited.slot_of["E0002"], "E0002", T0 + 10_000, world.electrical("E0002", 0, temp_c=[75.0]).payload
    )
    assert kinds_of(engine.process([reading], T0 + 10_000)) == [("CABLE_OVERHEAT", "E0002", "raise")]


def test_unreadable_snapshot_is_refused(world: World) -> None:
    with pytest.raises(RulesError, match=r"rule state state\.npz: unreadable snapshot"):
        RuleEngine.restore(world.registry, None, b"not a snapshot", T0, source="state.npz")


def test_save_and_load_snapshot(tmp_path: Path, world: World) -> None:
    path = tmp_path / "data" / "rules.npz"
    assert load_snapshot(path) is None
    save_snapshot(path, world.engine.snapshot())
    data = load_snapshot(path)
    assert data is not None
    RuleEngine.restore(world.registry, None, data, T0)
    assert [p.name for p in path.parent.iterdir()] == ["rules.npz"]


def test_snapshot_writer_saves_a_copy_in_the_background(tmp_path: Path, world: World) -> None:
    world.one(world.smoke("S0000", T0 + 1000, alarm=True), now=T0 + 1000)
    writer = SnapshotWriter(tmp_path / "rules.npz")
    assert writer.save(world.engine.snapshot_arrays(T0 + 1000))
    expected = world.engine.snapshot(T0 + 1000)
    world.one(world.smoke("S0000", T0 + 2000, alarm=False), now=T0 + 2000)  # runs on meanwhile
    writer.flush()
    data = load_snapshot(writer.path)
    assert data is not None
    saved = RuleEngine.restore(world.registry, None, data, T0 + 1000)
    assert saved.snapshot(T0 + 1000) == expected  # the state at save(), not the later one
    assert writer.failures == 0
    # a second save reuses the first one's buffers and still saves the current state
    assert writer.save(world.engine.snapshot_arrays(T0 + 2000))
    writer.flush()
    again = load_snapshot(writer.path)
    assert again is not None
    assert RuleEngine.restore(world.registry, None, again, T0 + 2000).snapshot(
        T0 + 2000
    ) == world.engine.snapshot(T0 + 2000)


def test_snapshot_writer_skips_while_busy_and_reports_failures(tmp_path: Path, world: World) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    writer = SnapshotWriter(blocker / "rules.npz")  # its parent is a file: the write fails
    writer._idle.clear()  # as if a write were in progress
    assert not writer.save(world.engine.snapshot_arrays())
    writer._idle.set()
    assert writer.save(world.engine.snapshot_arrays())
    writer.flush()
    assert writer.failures == 1 and not writer.busy


# -- suspend / resume ---------------------------------------------------------------------------------------


def test_broker_outage_gives_no_false_offline(world: World) -> None:
    world.one(world.water("W0000", T0 + 100_000), now=T0 + 100_000)  # due at T0 + 760 s
    world.engine.suspend(T0 + 200_000)
    assert world.engine.tick(T0 + 10_000_000) == []  # deaf: nothing is judged
    assert world.engine.next_deadline() is None
    world.engine.resume(T0 + 1_200_000)  # deaf for 1000 s
    assert [h for h in world.engine.tick(T0 + 1_200_000) if h.kind == "water"] == []
    assert kinds_of([h for h in world.engine.tick(T0 + 1_759_999) if h.kind == "water"]) == [
        ("DEVICE_OFFLINE", "W0001", "raise"),
        ("DEVICE_OFFLINE", "W0002", "raise"),
    ]  # never heard: 660 s of listening since start, shifted by the outage too
    assert kinds_of([h for h in world.engine.tick(T0 + 1_760_000) if h.kind == "water"]) == [
        ("DEVICE_OFFLINE", "W0000", "raise")
    ]


def test_a_timer_that_expired_before_the_outage_still_fires(world: World) -> None:
    world.engine.suspend(T0 + 700_000)  # water due at T0 + 660 s, not ticked yet
    world.engine.resume(T0 + 900_000)
    assert len([h for h in world.engine.tick(T0 + 900_000) if h.kind == "water"]) == 3


def test_snapshot_taken_while_suspended_counts_the_outage_from_its_start(world: World) -> None:
    world.one(world.water("W0000", T0 + 100_000), now=T0 + 100_000)
    world.engine.suspend(T0 + 200_000)
    data = world.engine.snapshot(T0 + 300_000)
    restored = RuleEngine.restore(world.registry, None, data, T0 + 1_200_000)
    assert not restored.suspended
    water = [h for h in restored.tick(T0 + 1_659_999) if h.kind == "water"]
    assert water == []  # W0001/W0002: due at 660 s, + 1000 s deaf from the suspension
    assert len([h for h in restored.tick(T0 + 1_660_000) if h.kind == "water"]) == 2


# -- reload -------------------------------------------------------------------------------------------


def test_reload_keeps_state_starts_new_devices_and_stops_retired_ones(tmp_path: Path) -> None:
    root = registry_dir(tmp_path / "reg")
    registry = Registry.load(root)
    world = World(registry)
    world.one(world.electrical("E0000", T0, temp_c=[75.0]))
    world.one(world.electrical("E0000", T0 + 10_000, temp_c=[75.0]))
    world.one(world.electrical("E0001", T0 + 10_000, temp_c=[75.0]))  # a `for` run in progress
    text = (root / "devices.csv").read_text().splitlines()
    kept = [line for line in text if not line.startswith("E0002,")]
    kept.append("E0009,electrical,D01,S5,34.305,108.705,,,,,,,")
    (root / "devices.csv").write_text("\n".join(kept) + "\n")
    reloaded = Registry.load(root, previous=registry)
    world.engine.reload(reloaded, T0 + 60_000)
    world.registry = reloaded
    assert (
        world.one(world.electrical("E0000", T0 + 20_000, temp_c=[75.0]), now=T0 + 60_000) == []
    )  # still raised
    assert kinds_of(world.one(world.electrical("E0001", T0 + 20_000, temp_c=[75.0]), now=T0 + 60_000)) == [
        ("CABLE_OVERHEAT", "E0001", "raise")
    ]
    # E0002 is retired: no hits; E0009 was added at T0 + 60 s, as E0000/E0001 were last heard
    assert [h for h in world.engine.tick(T0 + 239_999) if h.kind == "electrical"] == []
    hits = [h for h in world.engine.tick(T0 + 240_000) if h.kind == "electrical"]
    assert sorted(kinds_of(hits)) == [("DEVICE_OFFLINE", d, "raise") for d in ("E0000", "E0001", "E0009")]
    assert [h for h in world.engine.tick(T0 + 10**9) if h.kind == "electrical"] == []


def test_reload_with_a_registry_loaded_without_previous_is_refused(tmp_path: Path, world: World) -> None:
    root = tmp_path / "small"
    shutil.copytree(world.registry.path, root)
    lines = (root / "devices.csv").read_text().splitlines()
    (root / "devices.csv").write_text("\n".join(lines[:4]) + "\n")
    with pytest.raises(ValueError, match="previous"):
        world.engine.reload(Registry.load(root), T0)


def test_hits_after_a_reload_name_the_device_where_it_is_now(tmp_path: Path) -> None:
    """Hits carry the device's grid, site and district of the registry in use (the engine keeps
    them per device between hits, forgotten at a reload)."""
    root = registry_dir(tmp_path / "reg")
    registry = Registry.load(root)
    world = World(registry)
    before = world.one(world.smoke("S0000", T0, alarm=True), now=T0)
    assert [(h.type, h.grid_id) for h in before] == [
        ("FIRE_ALARM", registry.grid_of(registry.slot_of["S0000"]))
    ]
    rows = (root / "devices.csv").read_text().splitlines()
    moved = []
    for row in rows:
        cells = row.split(",")
        if cells[0] == "S0000":  # the next grid north, and another site
            cells[3], cells[4] = "S9", str(float(cells[4]) + 0.01)
        moved.append(",".join(cells))
    (root / "devices.csv").write_text("\n".join(moved) + "\n")
    reloaded = Registry.load(root, previous=registry)
    slot = reloaded.slot_of["S0000"]
    assert (reloaded.grid_of(slot), reloaded.site_of(slot)) != (before[0].grid_id, before[0].site_id)
    world.engine.reload(reloaded, T0 + 1_000)
    world.registry = reloaded
    after = world.one(world.smoke("S0000", T0 + 2_000, alarm=False), now=T0 + 2_000)
    assert [(h.type, h.state, h.grid_id, h.site_id) for h in after] == [
        ("FIRE_ALARM", "clear", reloaded.grid_of(slot), "S9")
    ]
