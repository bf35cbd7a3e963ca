from __future__ import annotations

from pathlib import Path

from devices import Reading, Registry, WaterPayload
from rules import RuleEngine
from tests.helpers import write_registry


def test_fleet_counts_registered_and_offline_per_district_and_kind(tmp_path: Path) -> None:
    registry = Registry.load(write_registry(tmp_path / "r"))
    engine = RuleEngine(registry, None, 0)
    assert engine.fleet() == {
        ("D01", "smoke"): (3, 0),
        ("D01", "electrical"): (3, 0),
        ("D01", "water"): (3, 0),
    }
    slot = registry.slot_of["W0000"]
    later = 2 * 300_000 + 60_000 + 1
    engine.process([Reading(slot, "W0000", later - 1000, WaterPayload(pressure_mpa=0.3))], later - 1000)
    engine.tick(later)  # every device but W0000 has been silent since the start for longer than its deadline
    fleet = engine.fleet()
    assert fleet[("D01", "water")] == (3, 2)
    assert fleet[("D01", "electrical")] == (3, 3)
    assert fleet[("D01", "smoke")] == (3, 0)  # smoke's deadline is 2 h + 60 s
