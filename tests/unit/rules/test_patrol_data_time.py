from __future__ import annotations

from pathlib import Path

from devices import PatrolPayload, Reading, Registry
from rules import RuleEngine
from tests.helpers import write_registry

H = 3_600_000


def _scan(registry: Registry, tag: str, ts: int) -> Reading:
    worker = "W1" if tag == "P0000" else "W2"  # one worker per tag: no PATROL_TOO_FAST in between
    return Reading(registry.slot_of[tag], tag, ts, PatrolPayload(worker_id=worker, result="ok", ts=ts))


def test_patrol_missed_runs_on_data_time_for_replayed_days(tmp_path: Path) -> None:
    registry = Registry.load(write_registry(tmp_path / "r"))
    now = 100 * H
    engine = RuleEngine(registry, None, now)
    assert engine.process([_scan(registry, "P0000", now - 48 * H)], now) == []
    hits = engine.process([_scan(registry, "P0001", now - 48 * H + 26 * H)], now)
    assert hits == []  # 26 h < 24 h × 1.1
    hits = engine.process([_scan(registry, "P0001", now - 48 * H + 27 * H)], now)
    assert [(h.type, h.device_id, h.state) for h in hits] == [("PATROL_MISSED", "P0000", "raise")]
    assert engine.process([_scan(registry, "P0001", now - 48 * H + 28 * H)], now) == []  # once
    hits = engine.process([_scan(registry, "P0000", now - 48 * H + 28 * H)], now)
    assert [(h.type, h.device_id, h.state) for h in hits] == [("PATROL_MISSED", "P0000", "clear")]


def test_a_late_old_scan_does_not_clear(tmp_path: Path) -> None:
    registry = Registry.load(write_registry(tmp_path / "r"))
    now = 100 * H
    engine = RuleEngine(registry, None, now)
    engine.process([_scan(registry, "P0000", now - 48 * H)], now)
    engine.process([_scan(registry, "P0001", now - 20 * H)], now)  # P0000 missed on data time
    assert engine.process([_scan(registry, "P0000", now - 47 * H)], now) == []
