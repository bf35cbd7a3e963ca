"""Handling figures and index (CONTRACT §12) over a month of one district's events.

Run: ``.venv/bin/python bench/bench_sla.py [--events N] [--repeat R]``.

Builds the reference district (``simulators.write_world``, 1089 grids), raises ``--events``
events spread over 30 days through the real event store (``alerts.EventStore``: hits, then worker
actions ack → resolve → close for most of them, so each event has 2–5 transitions), then times
``GET /sla``'s and ``GET /index``'s work (``safety.Safety``, its read-only SQLite connection):
the whole district and one worker's grid, and the 15-minute ``grid_index`` points. Best of
``--repeat`` runs (a shared machine).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts import EventStore
from devices import Registry
from rules import Hit, Severity
from safety import EVERYTHING, IndexQuery, Safety, Scope, SlaQuery, load_weights
from simulators import write_world

T0 = 1_764_583_200_000
DAY = 86_400_000
TYPES: dict[str, tuple[tuple[str, Severity], ...]] = {
    "smoke": (("FIRE_ALARM", "critical"), ("TAMPER", "major"), ("LOW_BATTERY", "minor")),
    "electrical": (
        ("CABLE_OVERHEAT", "major"),
        ("RESIDUAL_CURRENT_HIGH", "major"),
        ("DEVICE_FAULT", "major"),
    ),
    "water": (("LOW_PRESSURE", "major"), ("PRESSURE_LOSS", "critical"), ("HIGH_PRESSURE", "minor")),
    "patrol": (("PATROL_MISSED", "minor"), ("PATROL_HAZARD", "major"), ("PATROL_TOO_FAST", "minor")),
}


class Silent:
    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        pass


def hit(registry: Registry, device_id: str, type: str, severity: Severity, ts: int) -> Hit:
    slot = registry.slot_of[device_id]
    return Hit(
        type=type,
        severity=severity,
        kind=registry.kind_of(slot),
        slot=slot,
        device_id=device_id,
        site_id=registry.site_of(slot),
        grid_id=registry.grid_of(slot),
        district=registry.district_of(slot),
        key=("device", device_id, type),
        state="raise",
        value=1.0,
        threshold=0.5,
        ts=ts,
        message=f"{type} on {device_id}",
    )


def fill(store: EventStore, registry: Registry, events: int, rng: random.Random) -> int:
    """Raise ``events`` events over 30 days and act on most; returns the transitions written."""
    keys = [(d, t, s) for d in registry.device_ids for t, s in TYPES[registry.kind_of(registry.slot_of[d])]]
    rng.shuffle(keys)
    keys = keys[:events]
    supervisor = next(w for w in registry.workers.values() if w.is_supervisor)
    transitions = 0
    batch = 50
    for start in range(0, len(keys), batch):
        now = T0 + (start * 30 * DAY) // len(keys)
        out = store.process([hit(registry, d, t, s, now) for d, t, s in keys[start : start + batch]], now)
        transitions += len(out.events)
        for event in out.events:
            workers = registry.grids[event["grid_id"]].workers if event["grid_id"] in registry.grids else ()
            if not workers or rng.random() < 0.1:
                continue  # left open
            at = now
            for action in ("ack", "resolve", "close"):
                at += int(rng.expovariate(1 / (20 * 60_000)))
                who = supervisor.worker_id if action == "close" else workers[0]
                payload = orjson.dumps({"event_id": event["event_id"], "action": action})
                result = store.handle_action(who, payload, at).result
                assert result is not None and result.ok, result
                transitions += 1
                if rng.random() < 0.15:
                    break
    return transitions


def best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times = []
    value = None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=30_000, help="events raised over the 30 days")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_world(root / "registry")
        registry = Registry.load(root / "registry")
        store = EventStore(root / "data" / "events.sqlite", registry, Silent())
        start = time.perf_counter()
        transitions = fill(store, registry, args.events, random.Random(1))
        print(
            f"{args.events:,} events, {transitions:,} transitions, {len(registry.grids)} grids, "
            f"{len(registry):,} devices (built in {time.perf_counter() - start:.0f} s)"
        )
        wal = store.path.with_name(store.path.name + "-wal")
        mib = store.path.stat().st_size / 2**20, wal.stat().st_size / 2**20
        print(f"event store {mib[0]:.0f} MiB, its WAL {mib[1]:.0f} MiB")
        store.close()  # its WAL checkpointed, as the store's checkpointer does when the writes pause
        at = T0 + 30 * DAY
        safety = Safety(store.path, lambda: registry, load_weights(), clock=lambda: at)
        worker_grid = next(g for g in registry.grids.values() if g.workers)
        worker = Scope(grids=frozenset({worker_grid.grid_id}))
        month = SlaQuery(since_ms=T0, at_ms=at)
        rows = [
            ("/sla, the district's month (total + 1089 grids)", lambda: safety.sla(EVERYTHING, month)),
            ("/sla, one worker's grid", lambda: safety.sla(worker, month)),
            (
                "/sla, the month evaluated 15 days in",
                lambda: safety.sla(EVERYTHING, SlaQuery(since_ms=T0, at_ms=at - 15 * DAY)),
            ),
            ("/index, every grid of the district", lambda: safety.index(EVERYTHING, IndexQuery(at_ms=at))),
            (
                "/index, past at (closed events scanned)",
                lambda: safety.index(EVERYTHING, IndexQuery(at_ms=at - DAY)),
            ),
            ("/index, one worker's grid", lambda: safety.index(worker, IndexQuery(at_ms=at))),
            ("grid_index points (every grid)", lambda: list(safety.index_lines(at))),
            ("grid_sla points (one day, every grid)", lambda: list(safety.sla_lines(at - DAY, at))),
        ]
        for label, fn in rows:
            seconds, value = best(args.repeat, fn)
            size = (
                f"{len(orjson.dumps(value)):,} bytes" if isinstance(value, dict) else f"{len(value):,} lines"
            )
            print(f"{label:<48} {seconds * 1e3:8.1f} ms  ({size})")
        total = safety.sla(EVERYTHING, month)["total"]
        print(f"month's figures: {orjson.dumps(total).decode()}")
        safety.close()


if __name__ == "__main__":
    main()
