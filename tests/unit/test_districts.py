"""FIREGRID_DISTRICTS (issue 17): the registry an instance works on, its subscriptions, who
answers a worker's action, its client id, and the claim on its data dir."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pytest

from devices import RETIRED, Registry, SettingsError, Topics
from firegrid._districts import (
    ActionRouter,
    check_districts,
    claim_data_dir,
    districts_suffix,
    own_registry,
    parse_districts,
    readings_subscriptions,
)
from firegrid._settings import load_settings
from tests.integration.test_two_instances import write_two_districts


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry.load(write_two_districts(tmp_path / "registry"))


def test_own_registry_keeps_slots_and_retires_other_districts(registry: Registry) -> None:
    mine = own_registry(registry, ("D02",))
    assert mine.device_ids == registry.device_ids  # same slots: snapshots keep their layout
    assert {mine.district_of(slot) for slot in mine.slot_of.values()} == {"D02"}
    assert len(mine) == len(registry) // 2
    for device_id, slot in registry.slot_of.items():
        assert (device_id in mine.slot_of) == device_id.startswith("D02")
        if not device_id.startswith("D02"):
            assert mine.kind_code[slot] == RETIRED
    assert {g.district for g in mine.grids.values()} == {"D02"}
    assert {s.district for s in mine.stations} == {"D02"}
    assert mine.workers == registry.workers  # a patrol scan by any worker stays valid


def test_unknown_district_is_one_line(registry: Registry) -> None:
    check_districts(registry, ("D01", "D02"))
    with pytest.raises(SettingsError) as caught:
        check_districts(registry, ("D01", "D7"))
    assert str(caught.value).startswith("invalid setting FIREGRID_DISTRICTS: unknown district D7 (")
    assert "\n" not in str(caught.value)


def test_subscriptions() -> None:
    topics = Topics("p/")
    assert readings_subscriptions(topics, ()) == ["p/fire/#"]
    assert readings_subscriptions(topics, ("D01", "D02")) == ["p/fire/D01/#", "p/fire/D02/#"]


def test_settings_client_id_and_instance() -> None:
    plain = load_settings(environ={})
    assert (plain.mqtt_client_id, plain.instance_name, plain.district_list) == (
        "firegrid-ingest",
        "ingest-1",
        (),
    )
    two = load_settings(environ={"FIREGRID_DISTRICTS": " D02, D01,D02 "})
    assert two.district_list == ("D01", "D02")
    assert (two.mqtt_client_id, two.instance_name) == ("firegrid-ingest-D01_D02", "ingest-D01_D02")
    named = load_settings(
        environ={"FIREGRID_DISTRICTS": "D01", "FIREGRID_CLIENT_ID": "fg", "FIREGRID_INSTANCE": "a"}
    )
    assert (named.mqtt_client_id, named.instance_name) == ("fg-D01", "a")
    many = [f"District{i:03d}" for i in range(30)]
    assert districts_suffix(many).startswith("h") and len(districts_suffix(many)) == 11
    assert parse_districts(",".join(reversed(many))) == tuple(many)
    with pytest.raises(
        SettingsError, match=r"^invalid setting FIREGRID_DISTRICTS: 'D 1' is not a district id"
    ):
        load_settings(environ={"FIREGRID_DISTRICTS": "D01,D 1"})


def _action(event_id: str | None, action: str = "ack") -> bytes:
    return orjson.dumps({"event_id": event_id, "action": action} if event_id else {"action": action})


def test_actions_are_answered_by_one_instance(registry: Registry) -> None:
    a, b = ActionRouter(registry, ("D01",)), ActionRouter(registry, ("D02",))
    known_a, known_b = {"E1"}, {"E2"}

    def answered(worker: str | None, payload: bytes) -> list[str]:
        return [
            name
            for name, router, known in (("a", a, known_a), ("b", b, known_b))
            if router.decide(worker, payload, known.__contains__)
        ]

    # a plain worker: always its district's instance, even for another instance's event
    assert answered("W-D01", _action("E1")) == ["a"]
    assert answered("W-D01", _action("E2")) == ["a"]  # refused there ("unknown event")
    assert answered("W-D02", _action("NOPE")) == ["b"]
    # a supervisor: the instance that has the event; an event nobody has: no answer
    assert answered("SUP1", _action("E1", "close")) == ["a"]
    assert answered("SUP1", _action("E2", "close")) == ["b"]
    assert answered("SUP1", _action("NOPE", "close")) == []
    # nothing to route by: the first district's instance
    assert answered("SUP1", b"not json") == ["a"]
    assert answered("SUP1", _action(None)) == ["a"]
    assert answered("STRANGER", _action("E2")) == ["a"]
    assert answered(None, _action("E2")) == ["a"]
    # one instance of everything answers all
    assert ActionRouter(registry, ()).decide("SUP1", _action("NOPE"), lambda _: False)


def test_worker_across_instances_goes_by_event(tmp_path: Path, registry: Registry) -> None:
    root = write_two_districts(tmp_path / "r2")
    grids = json.loads((root / "grids.geojson").read_text())
    for feature in grids["features"]:
        feature["properties"]["workers"].append("W-BOTH")
    (root / "grids.geojson").write_text(json.dumps(grids))
    with (root / "workers.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(["W-BOTH", "Both", "worker"])
    both = Registry.load(root)
    a, b = ActionRouter(both, ("D01",)), ActionRouter(both, ("D02",))
    assert a.decide("W-BOTH", _action("E1"), {"E1"}.__contains__)
    assert not b.decide("W-BOTH", _action("E1"), {"E2"}.__contains__)
    assert ActionRouter(both, ("D01", "D02")).decide("W-BOTH", _action("X"), lambda _: False)


def test_data_dir_claim(tmp_path: Path) -> None:
    data = tmp_path / "data"
    claim = claim_data_dir(data, ("D01",), "firegrid-ingest-D01")
    with pytest.raises(SettingsError, match="is in use by another running firegrid ingest"):
        claim_data_dir(data, ("D01",), "firegrid-ingest-D01")
    claim.release()
    claim_data_dir(data, ("D01",), "firegrid-ingest-D01").release()  # the same instance again
    with pytest.raises(SettingsError, match="belongs to an instance of districts D01"):
        claim_data_dir(data, ("D02",), "firegrid-ingest-D02")
    with pytest.raises(SettingsError, match="belongs to an instance of districts D01"):
        claim_data_dir(data, (), "firegrid-ingest")
    fresh = tmp_path / "old"  # a data dir from before instances: taken as it is
    fresh.mkdir()
    claim_data_dir(fresh, (), "firegrid-ingest").release()
    with pytest.raises(SettingsError, match="belongs to an instance of all districts"):
        claim_data_dir(fresh, ("D01",), "x")


def test_timers_and_fleet_cover_own_districts_only(registry: Registry) -> None:
    from rules import RuleEngine, load_rules

    mine = own_registry(registry, ("D01",))
    engine = RuleEngine(mine, load_rules(None), 0)
    assert {district for district, _ in engine.fleet()} == {"D01"}
    hits = engine.tick(10 * 86_400_000)  # ten days of silence: every device of D01 offline
    offline = {hit.device_id for hit in hits if hit.type == "DEVICE_OFFLINE"}
    assert offline == {d for d in registry.slot_of if d.startswith("D01")}  # smoke, electrical, water
    assert all(hit.device_id.startswith("D01") for hit in hits)
