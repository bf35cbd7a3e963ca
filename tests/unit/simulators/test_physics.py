"""Normal traffic is valid and trips no rule of CONTRACT §7."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import orjson
import pytest

from devices import KIND_BY_NAME, Registry, haversine_m
from simulators import Background, Fleet, write_world

START = 1_764_583_200_000  # 2025-12-01 10:00 UTC+8


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    out = tmp_path_factory.mktemp("world")
    write_world(out, scale=0.25, seed=3)
    return Registry.load(out)


def _slope_c_per_min(ts: list[int], values: list[float]) -> float:
    t = np.asarray(ts, dtype=float) / 60_000
    return float(np.polyfit(t - t.mean(), np.asarray(values), 1)[0])


def test_two_days_of_normal_telemetry_are_valid_and_far_from_every_threshold(registry: Registry) -> None:
    fleet = Fleet(registry, seed=5, start_ms=START)
    temps: dict[int, list[tuple[int, float]]] = {}
    for step in range(0, 2 * 86_400, 900):  # every 15 min of two simulated days
        t_ms = START + step * 1000
        for kind in ("smoke", "electrical", "water"):
            bank = fleet.banks[kind]
            messages = bank.messages(np.arange(bank.size), t_ms)
            assert len(messages) == bank.size
            adapter = KIND_BY_NAME[kind].adapter
            for i, message in messages:
                payload = adapter.validate_json(orjson.dumps(message))
                assert payload.ts == message["ts"] and payload.fault_text is None
                if kind == "smoke":
                    assert payload.alarm is False and payload.tamper is False
                    assert payload.battery_pct >= 20
                elif kind == "electrical":
                    assert max(payload.temp_c) < 55 and payload.residual_ma < 100
                    assert 1 <= len(payload.temp_c) == len(payload.current_a) <= 8
                    temps.setdefault(i, []).append((payload.ts, max(payload.temp_c)))
                else:
                    assert 0.15 < payload.pressure_mpa < 1.0
                    assert payload.battery_pct is None or payload.battery_pct >= 20
    # the cable temperature follows the load slowly: nowhere near 5 °C/min over 2 minutes
    for series in list(temps.values())[:50]:
        values = [v for _, v in series]
        steps = np.diff(values) / 15.0
        assert float(np.abs(steps).max()) < 1.0


def test_fast_readings_show_no_temperature_rise(registry: Registry) -> None:
    fleet = Fleet(registry, seed=5, start_ms=START)
    bank = fleet.electrical
    idx = np.arange(min(bank.size, 40))
    series: dict[int, list[tuple[int, float]]] = {}
    for second in range(0, 120, 2):  # 2-second readings over the TEMP_RISE_FAST window
        for i, message in bank.messages(idx, START + 7 * 3600_000 + second * 1000):
            series.setdefault(i, []).append((message["ts"], max(message["temp_c"])))
    for points in series.values():
        ts, values = zip(*points, strict=True)
        assert abs(_slope_c_per_min(list(ts), list(values))) < 1.0


def test_seq_and_ts_increase_per_device(registry: Registry) -> None:
    fleet = Fleet(registry, seed=1, start_ms=START, seq_start=100)
    bank = fleet.water
    same = np.array([0, 0, 0, 1], dtype=np.int64)
    first = bank.messages(same, START)
    second = bank.messages(same, START)
    seqs = [m["seq"] for i, m in first + second if i == 0]
    stamps = [m["ts"] for i, m in first + second if i == 0]
    assert seqs == [100, 101, 102, 103, 104, 105]
    assert stamps == sorted(set(stamps))


def test_patrols_walk_at_walking_speed_and_scan_every_checkpoint_daily(registry: Registry) -> None:
    fleet = Fleet(registry, seed=2, start_ms=START)
    patrol = fleet.patrol
    assert patrol.unpatrolled == []
    scans = patrol.scans(START, START + 3 * 86_400_000)
    by_worker: dict[int, list[tuple[int, int]]] = {}
    last: dict[int, int] = {}
    for scan in scans:
        by_worker.setdefault(scan.worker, []).append((scan.t_ms, scan.tag))
        if scan.tag in last:
            assert scan.t_ms - last[scan.tag] < 24.9 * 3600_000  # limit 26.4 h
        last[scan.tag] = scan.t_ms
    assert len(last) == patrol.size
    for points in by_worker.values():
        for (t1, a), (t2, b) in itertools.pairwise(points):
            metres = haversine_m(patrol.lat[a], patrol.lon[a], patrol.lat[b], patrol.lon[b])
            assert metres / ((t2 - t1) / 1000) < 2.0  # limit 10 m/s
    message = patrol.scan_message(scans[0])
    assert message is not None
    payload = KIND_BY_NAME["patrol"].adapter.validate_json(orjson.dumps(message[1]))
    assert payload.result == "ok" and payload.worker_id in registry.workers
    # every checkpoint's first scan comes within a day of the start
    first_seen = {s.tag: s.t_ms for s in reversed(patrol.scans(START, START + 86_400_000))}
    assert len(first_seen) == patrol.size


def test_background_shares_follow_the_heartbeats(registry: Registry) -> None:
    fleet = Fleet(registry, seed=1, start_ms=START)
    background = Background(fleet, seed=1)
    counts: dict[str, int] = {}
    for _ in range(100):
        for kind, idx in background.take(997):
            counts[kind] = counts.get(kind, 0) + int(idx.size)
    assert sum(counts.values()) == 99_700
    n = {kind: fleet.banks[kind].size for kind in ("smoke", "electrical", "water")}
    natural = {kind: count / (KIND_BY_NAME[kind].heartbeat_s or 1.0) for kind, count in n.items()}
    total = sum(natural.values())
    for kind, share in natural.items():
        assert counts[kind] == pytest.approx(99_700 * share / total, abs=3)
    # at 1000 msg/s every device reports far more often than its heartbeat
    interval = background.wall_interval_s(1000.0)
    assert all(interval[kind] < (KIND_BY_NAME[kind].heartbeat_s or 0.0) for kind in n)


def test_physics_is_deterministic(tmp_path: Path, registry: Registry) -> None:
    def run() -> list[bytes]:
        fleet = Fleet(registry, seed=9, start_ms=START)
        bank = fleet.electrical
        return [orjson.dumps(m) for _, m in bank.messages(np.arange(bank.size), START + 3600_000)]

    assert run() == run()
