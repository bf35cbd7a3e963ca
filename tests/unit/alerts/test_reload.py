"""Registry reloads (SIGHUP) and concurrent use from several threads."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

from alerts import EventStore
from devices import Registry
from tests.unit.alerts.conftest import T0, FakePublisher, HitFactory, action


def _edit_registry(root: Path) -> None:
    """W1 joins grid D01-G00; device S0000 moves to D01-G01 (explicit grid_id)."""
    grids = json.loads((root / "grids.geojson").read_text())
    for feature in grids["features"]:
        if feature["properties"]["grid_id"] == "D01-G00":
            feature["properties"]["workers"].append("W1")
    (root / "grids.geojson").write_text(json.dumps(grids))
    with (root / "devices.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows[1:]:
        if row[0] == "S0000":
            row[4], row[5], row[6] = "34.305", "108.715", "D01-G01"
    with (root / "devices.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_reload_applies_new_assignments_and_reroutes_moved_devices(
    store: EventStore, publisher: FakePublisher, registry: Registry, hit: HitFactory
) -> None:
    moved = store.process([hit("S0000", "FIRE_ALARM", "critical")], T0).events[0]
    stays = store.process([hit("S0001", "TAMPER")], T0).events[0]
    refused = store.handle_action("W1", action(stays["event_id"], "ack"), T0 + 1)
    assert refused.result is not None and not refused.result.ok
    _edit_registry(registry.path)
    publisher.clear()

    out = store.reload(Registry.load(registry.path, previous=registry), T0 + 2)
    assert [e["event_id"] for e in out.events] == [moved["event_id"]]
    [event] = publisher.on("alerts/D01/D01-G01")
    assert event["grid_id"] == "D01-G01" and (event["lat"], event["lon"]) == (34.305, 108.715)
    assert event["station_id"] == "D01-ST1"
    assert publisher.on("alerts/station/D01-ST1") == [event]
    history = store.get_event(moved["event_id"])["history"]  # type: ignore[index]
    assert history[-1]["action"] == "reroute" and "D01-G00 → D01-G01" in history[-1]["note"]

    ok = store.handle_action("W1", action(stays["event_id"], "ack"), T0 + 3)
    assert ok.result is not None and ok.result.ok
    assert store.registry is not registry
    # a reload with nothing changed reroutes nothing
    assert store.reload(store.registry, T0 + 4).published == []


def test_concurrent_hits_and_actions_keep_the_store_consistent(
    store: EventStore, registry: Registry, hit: HitFactory
) -> None:
    devices = ["S0000", "S0001", "E0000", "E0001", "W0000", "W0001"]
    types = [f"TYPE{i}" for i in range(20)]
    errors: list[BaseException] = []

    def raise_all(device: str) -> None:
        try:
            for i, type in enumerate(types):
                store.process([hit(device, type, ts=T0 + i)], T0 + i)
                store.process([hit(device, type, ts=T0 + i + 1000)], T0 + i + 1000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def ack_all() -> None:
        try:
            for _ in range(3):
                for event in store.list_events(state="open", grid="D01-G00"):
                    store.handle_action("W0", action(event["event_id"], "ack"), T0 + 5000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=raise_all, args=(d,)) for d in devices]
    threads.append(threading.Thread(target=ack_all))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = store.list_events(limit=10_000)
    assert len(events) == len(devices) * len(types)
    assert {e["count"] for e in events} == {2}
    counts = store.counts()
    assert counts["open"] + counts["acknowledged"] == len(events)
