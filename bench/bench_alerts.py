"""Event store benchmark: cost per hit (raise, repeat, clear), per action, per escalation, per query.

Run: ``.venv/bin/python bench/bench_alerts.py [--devices N] [--batch S]``.

Every figure includes the SQLite commit of its call (WAL, synchronous=NORMAL), the event JSON,
the ``events`` line and the publications (to a publisher that only counts them). The repeat
storms repeat every open event each round: repeats within ``alerts.REPEAT_WINDOW_MS`` of an
event's last publication are coalesced (issue 17), so a round every 50 ms publishes one in five. The alert
latency budget (issue 3: p99 ≤ 50 ms from device to subscriber) leaves the store a few ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts import EventStore
from devices import Registry
from rules import Hit
from tests.helpers import write_registry

T0 = 1_764_583_200_000


class CountingPublisher:
    def __init__(self) -> None:
        self.count = 0

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.count += 1


def hits_for(registry: Registry, devices: list[str], type: str, state: str, ts: int) -> list[Hit]:
    out = []
    for device_id in devices:
        slot = registry.slot_of[device_id]
        out.append(
            Hit(
                type=type,
                severity="critical" if type == "FIRE_ALARM" else "major",
                kind=registry.kind_of(slot),
                slot=slot,
                device_id=device_id,
                site_id=registry.site_of(slot),
                grid_id=registry.grid_of(slot),
                district=registry.district_of(slot),
                key=("device", device_id, type),
                state="raise" if state == "raise" else "clear",
                value=1.0,
                threshold=0.5,
                ts=ts,
                message=f"{type} {state} on {device_id}",
            )
        )
    return out


def timed(label: str, n: int, fn: object) -> float:
    assert callable(fn)
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {n:>7} × {elapsed / n * 1e6:8.1f} µs  ({elapsed * 1e3:7.1f} ms)")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=2500, help="devices per kind")
    parser.add_argument("--batch", type=int, default=500, help="hits per process() call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = Registry.load(write_registry(root / "registry", devices_per_kind=args.devices))
        publisher = CountingPublisher()
        store = EventStore(root / "events.sqlite", registry, publisher)
        devices = [d for d in registry.device_ids if d[0] in "SEW"]
        n = len(devices)
        batches = [devices[i : i + args.batch] for i in range(0, n, args.batch)]
        print(f"{n} devices, batches of {args.batch}")

        def run(type: str, state: str, ts: int) -> None:
            for batch in batches:
                store.process(hits_for(registry, batch, type, state, ts), ts)

        timed("raise (batched)", n, lambda: run("TAMPER", "raise", T0))
        timed("repeat (batched)", n, lambda: run("TAMPER", "raise", T0 + 1000))

        def storm(rounds: int, step_ms: int, start: int) -> None:
            # every open event repeated each round, the service clock advancing step_ms a round
            for r in range(rounds):
                run("TAMPER", "raise", start + r * step_ms)
            store.tick(start + rounds * step_ms + 10_000)  # what is still counted in memory

        timed("repeat storm, a round every 50 ms (×20)", 20 * n, lambda: storm(20, 50, T0 + 1500))
        timed("repeat storm, a round every 1 s (×5)", 5 * n, lambda: storm(5, 1000, T0 + 13_000))
        timed("clear (batched)", n, lambda: run("TAMPER", "clear", T0 + 30_000))

        single = devices[:1000]
        latencies: list[float] = []

        def one_by_one() -> None:
            for i, device_id in enumerate(single):
                start = time.perf_counter()
                store.process(hits_for(registry, [device_id], "FIRE_ALARM", "raise", T0 + i), T0 + i)
                latencies.append(time.perf_counter() - start)

        timed("raise critical, one hit per call", len(single), one_by_one)
        latencies.sort()
        p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99)]
        print(f"{'  latency per call p50 / p99':<44} {p50 * 1e3:.3f} ms / {p99 * 1e3:.3f} ms")

        open_tamper = store.list_events(state="open", type="TAMPER", limit=1000)

        def acks() -> None:
            for event in open_tamper:
                worker = registry.grids[event["grid_id"]].workers[0]
                payload = orjson.dumps({"event_id": event["event_id"], "action": "ack"})
                out = store.handle_action(worker, payload, T0 + 31_000)
                assert out.result is not None and out.result.ok, out.result

        timed("ack (one action per call)", len(open_tamper), acks)
        due = n - len(open_tamper)
        timed("escalation tick (all due at once)", due, lambda: store.tick(T0 + 31 * 60_000))
        timed("list_events(limit=1000)", 1, lambda: store.list_events(limit=1000))
        some = open_tamper[0]["event_id"]
        timed("get_event", 100, lambda: [store.get_event(some) for _ in range(100)])
        start = time.perf_counter()
        EventStore(root / "events.sqlite", registry)
        print(
            f"{'reopen with ' + str(len(store.list_events(limit=10_000))) + '+ active events':<44} "
            f"{(time.perf_counter() - start) * 1e3:.1f} ms"
        )
        print(f"published {publisher.count} messages")


if __name__ == "__main__":
    main()
