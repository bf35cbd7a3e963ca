"""Per-device rate limit (CONTRACT §10): what it adds per message, and what a flood costs.

Run: ``.venv/bin/python bench/bench_ratelimit.py [--devices N] [--messages M] [--repeat R]``.

In process, no broker: the ingest ``Pipeline`` (decode, validate, dedup, encode; no sinks) on
batches of 500 electrical messages spread over ``--devices`` devices, with and without
``FIREGRID_DEVICE_RATE`` (5/300, nobody over it), timed batch by batch in CPU time of the
thread (other processes on the shared machine do not count), alternately first, each batch's
best of ``--repeat`` passes. The difference is the limit's cost per message.
Also: ``RateLimiter.admit`` alone (net of a no-op method call in the same loop), a message
dropped by the limit through the whole pipeline (one device flooding), and the limiter's memory
at 1,000,000 devices. Baseline, as in bench_rules: a Python loop touching each message's topic
and payload, measured in the same run.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import logging
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices import Registry
from ingest import DeviceRate, IngestMetrics, InMessage, Pipeline, RateLimiter

T0 = 1_764_583_200_000
BATCH = 500


def registry_of(devices: int, root: Path) -> Registry:
    from tests.helpers import write_registry

    write_registry(root, devices_per_kind=1)
    with (root / "devices.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "kind", "district", "site_id", "lat", "lon", "grid_id"])
        for i in range(devices):
            writer.writerow([f"E{i:07d}", "electrical", "D01", f"S{i // 8:06d}", 34.305, 108.705, "D01-G00"])
    return Registry.load(root)


def messages(devices: int, count: int, flooder: bool = False) -> list[InMessage]:
    """``count`` messages: round robin over the devices (each well under 5/s), or all of device 0."""
    out = []
    for i in range(count):
        device = 0 if flooder else i % devices
        seq = i if flooder else i // devices
        payload = orjson.dumps(
            {"seq": seq, "ts": T0 + seq, "residual_ma": 12.5, "temp_c": [31.0, 33.5], "current_a": [10.5]}
        )
        # received over 100 s: ≤ 1 message a second a device when devices ≥ count / 100
        received = T0 + i * 100_000 // count
        out.append(InMessage(i, 1, f"fire/D01/electrical/E{device:07d}", payload, received, 0))
    return out


def per_message_us(run: Callable[[], object], n: int, repeat: int) -> float:
    """Best of ``repeat`` runs, in CPU time of this thread, per message."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time_ns()
        run()
        best = min(best, time.thread_time_ns() - started)
    return best / n / 1000


def interleaved(
    registry: Registry, stream: list[InMessage], rate: DeviceRate, repeat: int
) -> tuple[float, float]:
    """µs a message of the pipeline without and with the limit.

    Both pipelines see every batch once per pass, timed batch by batch (CPU time of this thread,
    so that other processes on the machine do not count) and alternately first; each batch's
    best time over ``repeat`` passes is summed."""
    batches = [stream[start : start + BATCH] for start in range(0, len(stream), BATCH)]
    best: dict[bool, list[int]] = {False: [2**62] * len(batches), True: [2**62] * len(batches)}
    for _ in range(repeat):
        pipelines = {
            False: Pipeline(registry, IngestMetrics(), clock_ms=lambda: T0 + 100_000),
            True: Pipeline(registry, IngestMetrics(), clock_ms=lambda: T0 + 100_000, device_rate=rate),
        }
        for i, batch in enumerate(batches):
            for limited in (False, True) if i % 2 else (True, False):
                began = time.thread_time_ns()
                pipelines[limited].process(batch)
                spent = time.thread_time_ns() - began
                best[limited][i] = min(best[limited][i], spent)
        limiter = pipelines[True].limiter
        assert limiter is not None and limiter.dropped == 0, "the stream must stay under the limit"
    return sum(best[False]) / len(stream) / 1000, sum(best[True]) / len(stream) / 1000


def pipeline_run(registry: Registry, batch: list[InMessage], rate: DeviceRate | None) -> Callable[[], object]:
    def run() -> object:
        pipeline = Pipeline(registry, IngestMetrics(), clock_ms=lambda: T0 + 100_000, device_rate=rate)
        for start in range(0, len(batch), BATCH):
            pipeline.process(batch[start : start + BATCH])
        return pipeline

    return run


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--memory-devices", type=int, default=1_000_000)
    args = parser.parse_args()
    logging.getLogger("ingest").setLevel(logging.ERROR)  # the flood's per-minute warnings
    rate = DeviceRate(5, 300)
    with tempfile.TemporaryDirectory(prefix="firegrid-bench-") as tmp:
        registry = registry_of(args.devices, Path(tmp) / "reg")
    # as `firegrid ingest` does (firegrid/_service.py _tune_gc): the registry frozen, gen 0 rare
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    normal = messages(args.devices, args.messages)
    flood = messages(args.devices, args.messages, flooder=True)
    n = len(normal)

    def baseline() -> int:
        total = 0
        for message in normal:
            total += len(message.topic) + len(message.payload)
        return total

    base = per_message_us(baseline, n, args.repeat)
    off, on = interleaved(registry, normal, rate, args.repeat)
    flooded = per_message_us(pipeline_run(registry, flood, rate), n, args.repeat)

    limiter = RateLimiter(rate, registry.slots)
    calls = [(i % args.devices, T0 + i * 2000) for i in range(n)]

    class Nothing:
        def admit(self, slot: int, now_ms: int, topic: str, payload: bytes) -> bool:
            return True

    def loop(target: RateLimiter | Nothing) -> Callable[[], object]:
        def run() -> None:
            admit = target.admit
            for slot, at in calls:
                admit(slot, at, "t", b"")

        return run

    admit_us = per_message_us(loop(limiter), n, args.repeat) - per_message_us(loop(Nothing()), n, args.repeat)

    tracemalloc.start()
    big = RateLimiter(rate, args.memory_devices)
    memory = tracemalloc.get_traced_memory()[0] / args.memory_devices
    tracemalloc.stop()
    del big

    result = {
        "devices": args.devices,
        "messages": n,
        "baseline_us": round(base, 3),
        "pipeline_off_us": round(off, 2),
        "pipeline_on_us": round(on, 2),
        "added_us": round(on - off, 3),
        "added_ratio_to_baseline": round((on - off) / base, 2),
        "added_pct_of_pipeline": round(100 * (on - off) / off, 1),
        "admit_alone_net_us": round(admit_us, 3),
        "dropped_message_us": round(flooded, 2),
        "dropped_vs_decoded": round(flooded / off, 3),
        "limiter_bytes_per_device": round(memory, 1),
    }
    print(json.dumps(result, indent=2))
    print(
        f"rate limit adds {on - off:.3f} µs a message ({100 * (on - off) / off:.1f} % of the pipeline's "
        f"{off:.2f} µs; {(on - off) / base:.2f} × baseline); admit alone {admit_us:.3f} µs net of the "
        f"call; a dropped message costs {flooded:.2f} µs ({flooded / off:.2f} × a decoded one); "
        f"{memory:.1f} B a device"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
