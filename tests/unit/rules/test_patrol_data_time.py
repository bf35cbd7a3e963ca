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


def test_missed_again_after_a_clear_and_after_a_restore(tmp_path: Path) -> None:
    """The engine keeps a lower bound of the next data-time deadline instead of scanning every
    checkpoint per batch; a clear and a snapshot restore must both keep it right."""
    registry = Registry.load(write_registry(tmp_path / "r"))
    now = 200 * H
    t0 = now - 150 * H
    engine = RuleEngine(registry, None, now)
    engine.process([_scan(registry, "P0000", t0), _scan(registry, "P0001", t0)], now)
    hits = engine.process([_scan(registry, "P0001", t0 + 27 * H)], now)
    assert [(h.device_id, h.state) for h in hits] == [("P0000", "raise")]
    hits = engine.process([_scan(registry, "P0000", t0 + 28 * H)], now)
    assert [(h.device_id, h.state) for h in hits] == [("P0000", "clear")]
    assert engine.process([_scan(registry, "P0001", t0 + 54 * H)], now) == []  # 26 h after the clear
    hits = engine.process([_scan(registry, "P0001", t0 + 55 * H)], now)
    assert [(h.device_id, h.state) for h in hits] == [("P0000", "raise")]
    hits = engine.process([_scan(registry, "P0000", t0 + 56 * H)], now)
    assert [(h.device_id, h.state) for h in hits] == [("P0000", "clear")]
    restored = RuleEngine.restore(registry, None, engine.snapshot(now), now)
    assert restored.process([_scan(registry, "P0001", t0 + 82 * H)], now) == []
    hits = restored.process([_scan(registry, "P0001", t0 + 83 * H)], now)
    assert [(h.device_id, h.state) for h in hits] == [("P0000", "raise")]
