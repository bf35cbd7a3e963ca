"""Rules engine benchmark: µs per reading (batches of 1000) and the offline scan at 1,000,000 devices.

Run: ``.venv/bin/python bench/bench_rules.py [--devices N] [--batches B] [--batch-size S]
[--only engine,district]``
(``engine``: the sections below at ``--devices``; ``district``: issue 17's workloads).

``district`` (issue 17): a district's traffic mix (every electrical monitor each 60 s, water each
300 s, smoke each 3600 s, at random phases, with realistic quiet values; patrol scans at walking
pace: ~94 % electrical, 4 % water, 2 % smoke) in one-reading batches (a quiet hour), batches of 4,
and batches of 500, and the same with every electrical monitor near its limits (a hot block:
pending ``for`` runs, raises and clears). Each workload runs on the engine as shipped and on the
same engine with ``small_batch = 0`` (every batch through numpy, the path before issue 17),
interleaved in one process: the ratio is the fixed per-batch cost the small path saves.

Machines are noisy, so each figure is also given as a ratio to a trivial baseline measured in the
same run: for readings, a Python loop touching each reading's ``slot`` and ``ts``; for the scan,
``numpy.sum`` over a 1,000,000-element int64 array.

Targets (issue 3): ≤ 2 µs per reading amortised, ≤ 10 ms per offline scan over 1,000,000 devices.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices import (
    KIND_CODE,
    OVERRIDE_COLUMNS,
    ElectricalPayload,
    PatrolPayload,
    Reading,
    Registry,
    SmokePayload,
    WaterPayload,
)
from rules import RuleEngine, SnapshotWriter

T0 = 1_764_583_200_000
# the reference district's mix (CONTRACT §1): smoke, electrical, water, patrol
MIX = {"smoke": 2861, "electrical": 2113, "water": 430, "patrol": 4064}


def synthetic_registry(n: int, seed: int = 1) -> Registry:
    """A registry of ``n`` devices in the reference mix, built directly (no files)."""
    rng = np.random.default_rng(seed)
    total = sum(MIX.values())
    counts = [round(n * c / total) for c in MIX.values()]
    counts[0] += n - sum(counts)
    kind_code = np.concatenate(
        [np.full(c, KIND_CODE[k], dtype=np.int8) for k, c in zip(MIX, counts, strict=True)]
    )
    prefix = {"smoke": "S", "electrical": "E", "water": "W", "patrol": "P"}
    device_ids = [f"{prefix[k]}{i:07d}" for k, c in zip(MIX, counts, strict=True) for i in range(c)]
    n_sites = max(1, n // 4)
    return Registry(
        path=Path("."),
        grids={},
        workers={},
        stations=(),
        device_ids=device_ids,
        kind_code=kind_code,
        district_idx=np.zeros(n, dtype=np.int32),
        districts=["D01"],
        grid_idx=np.zeros(n, dtype=np.int32),
        grid_names=["_unassigned"],
        site_idx=rng.integers(0, n_sites, n).astype(np.int32),
        sites=[f"S{i}" for i in range(n_sites)],
        lat=34.3 + rng.random(n) * 0.1,
        lon=108.7 + rng.random(n) * 0.1,
        overrides={name: np.full(n, np.nan, dtype=np.float32) for name in OVERRIDE_COLUMNS},
        warnings=[],
    )


def make_batches(
    registry: Registry, batches: int, size: int, seed: int = 2, repeats: bool = True
) -> list[list[Reading]]:
    """Realistic traffic: mostly normal readings, a few violations, some devices twice per batch."""
    rng = random.Random(seed)
    by_kind = {k: np.flatnonzero(registry.kind_code == KIND_CODE[k]) for k in MIX}
    weights = {"smoke": 0.45, "electrical": 0.40, "water": 0.145, "patrol": 0.005}
    kinds = list(weights)
    out: list[list[Reading]] = []
    ts = T0
    for _ in range(batches):
        batch: list[Reading] = []
        for kind in rng.choices(kinds, [weights[k] for k in kinds], k=size):
            slot = int(by_kind[kind][rng.randrange(by_kind[kind].size)])
            ts += 1
            hot = rng.random() < 0.01
            payload: SmokePayload | ElectricalPayload | WaterPayload | PatrolPayload
            if kind == "smoke":
                payload = SmokePayload(
                    alarm=hot, battery_pct=10.0 if hot else rng.uniform(20, 100), tamper=False, rssi_dbm=-70.0
                )
            elif kind == "electrical":
                payload = ElectricalPayload(
                    residual_ma=rng.uniform(0, 350 if hot else 200),
                    temp_c=[rng.uniform(30, 80 if hot else 60) for _ in range(3)],
                    current_a=[10.0, 11.0, 12.0],
                )
            elif kind == "water":
                payload = WaterPayload(
                    pressure_mpa=rng.uniform(0.03 if hot else 0.2, 0.6), battery_pct=10.0 if hot else 80.0
                )
            else:
                payload = PatrolPayload(worker_id=f"W{rng.randrange(50)}", result="hazard" if hot else "ok")
            batch.append(Reading(slot, registry.device_ids[slot], ts, payload))
        # a gateway batch: a few devices report twice, in ts order
        for i in range(0, size // 50 if repeats else 0):
            again = batch[i]
            ts += 1
            batch.append(Reading(again.slot, again.device_id, ts, again.payload))
        out.append(batch)
    return out


def district_registry(devices: int = 9468) -> Registry:
    """The reference district's counts (``MIX``); the engine does not check workers."""
    return synthetic_registry(devices)


def district_traffic(registry: Registry, minutes: float, hot: bool = False, seed: int = 3) -> list[Reading]:
    """Every device once per heartbeat at a random phase, sorted by ts; patrol workers walk from
    a tag to a near one every 5 to 10 minutes. ``hot``: electrical monitors hover around their
    limits (residual 250-330 mA, cables 60-80 °C), so conditions run, raise and clear."""
    rng = random.Random(seed)
    end = T0 + int(minutes * 60_000)
    period = {"smoke": 3_600_000, "electrical": 60_000, "water": 300_000}
    out: list[Reading] = []
    for kind, every in period.items():
        for slot in np.flatnonzero(registry.kind_code == KIND_CODE[kind]).tolist():
            ts = T0 + rng.randrange(every)
            device_id = registry.device_ids[slot]
            temp = rng.uniform(25, 45)
            while ts < end:
                payload: SmokePayload | ElectricalPayload | WaterPayload
                if kind == "smoke":
                    payload = SmokePayload(alarm=False, battery_pct=rng.uniform(40, 100), tamper=False)
                elif kind == "electrical":
                    if hot:
                        residual, temp = rng.uniform(250, 330), rng.uniform(60, 80)
                    else:
                        residual, temp = rng.uniform(5, 60), temp + rng.uniform(-0.5, 0.5)
                    payload = ElectricalPayload(
                        residual_ma=residual,
                        temp_c=[temp, temp - 1.5, temp - 3.0],
                        current_a=[10.0, 11.0, 9.0],
                    )
                else:
                    payload = WaterPayload(
                        pressure_mpa=rng.uniform(0.3, 0.5), battery_pct=rng.uniform(40, 100)
                    )
                out.append(Reading(slot, device_id, ts, payload))
                ts += every
    tags = np.flatnonzero(registry.kind_code == KIND_CODE["patrol"])
    lat, lon = registry.lat[tags], registry.lon[tags]
    for worker in range(100):
        ts = T0 + rng.randrange(600_000)
        at = rng.randrange(tags.size)
        while ts < end:
            slot = int(tags[at])
            out.append(
                Reading(
                    slot, registry.device_ids[slot], ts, PatrolPayload(worker_id=f"W{worker}", result="ok")
                )
            )
            sample = rng.sample(range(tags.size), 50)
            at = min(sample, key=lambda j: (lat[j] - lat[at]) ** 2 + (lon[j] - lon[at]) ** 2)
            ts += rng.randrange(300_000, 600_000)
    out.sort(key=lambda r: r.ts)
    return out


def run_district(args: argparse.Namespace) -> None:
    registry = district_registry()
    quiet = district_traffic(registry, args.minutes)
    hot = district_traffic(registry, args.minutes, hot=True)
    print(
        f"district: {registry.slots:,} devices, {args.minutes:g} min of traffic: {len(quiet):,} readings "
        f"({sum(isinstance(r.payload, ElectricalPayload) for r in quiet) / len(quiet):.0%} electrical)"
    )
    for name, readings in (("quiet", quiet), ("hot", hot)):
        for size in (int(x) for x in args.sizes.split(",")):
            batches = [readings[i : i + size] for i in range(0, len(readings), size)]
            warm = max(1, 2000 // size)
            times: dict[str, list[float]] = {"shipped": [], "numpy only": []}
            hits: dict[str, int] = {}
            for round_ in range(args.rounds):
                paths = list(times.items())
                for path, spent in paths if round_ % 2 == 0 else paths[::-1]:  # interleaved, both orders
                    engine = RuleEngine(registry, None, T0)
                    if path == "numpy only":
                        engine.small_batch = 0
                    for batch in batches[:warm]:
                        engine.process(batch, batch[-1].ts)
                    count = 0
                    gc.collect()
                    start = time.perf_counter()
                    for batch in batches[warm:]:
                        count += len(engine.process(batch, batch[-1].ts))
                    spent.append(time.perf_counter() - start)
                    hits[path] = count
            n = sum(len(b) for b in batches[warm:])
            shipped, numpy_only = (statistics.median(times[p]) / n * 1e6 for p in times)
            assert hits["shipped"] == hits["numpy only"]
            print(
                f"  {name:5} batches of {size:3}: {shipped:7.2f} µs/reading, numpy only {numpy_only:7.2f} "
                f"µs/reading, ratio {numpy_only / shipped:5.1f}× ({n:,} readings, {hits['shipped']} hits, "
                f"median of {args.rounds})"
            )


def baseline_loop(batches: list[list[Reading]]) -> float:
    start = time.perf_counter()
    total = 0
    for batch in batches:
        for reading in batch:
            total += reading.slot + reading.ts
    elapsed = time.perf_counter() - start
    assert total
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--only", default="engine,district", help="sections to run: engine, district")
    parser.add_argument("--minutes", type=float, default=10.0, help="district: minutes of traffic")
    parser.add_argument("--rounds", type=int, default=4, help="district: timed runs of each path")
    parser.add_argument("--sizes", default="1,4,500", help="district: batch sizes")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "district" in only:
        run_district(args)
    if "engine" not in only:
        return

    t = time.perf_counter()
    registry = synthetic_registry(args.devices)
    print(f"registry: {args.devices:,} devices built in {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    engine = RuleEngine(registry, None, T0)
    print(f"engine: started in {time.perf_counter() - t:.2f} s")
    for repeats in (True, False):
        batches = make_batches(registry, args.batches, args.batch_size, repeats=repeats)
        readings = sum(len(b) for b in batches)
        engine.process(batches[0], T0)  # warm-up
        runs = []
        hits = 0
        for _ in range(3):
            engine = RuleEngine(registry, None, T0)
            start = time.perf_counter()
            for batch in batches:
                hits += len(engine.process(batch, batch[-1].ts))
            runs.append(time.perf_counter() - start)
        per_reading = min(runs) / readings * 1e6
        base = min(baseline_loop(batches) for _ in range(3)) / readings * 1e6
        what = "2% of devices twice per batch" if repeats else "no device twice per batch"
        print(
            f"process: {readings:,} readings in batches of ~{args.batch_size} ({what}): "
            f"{per_reading:.2f} µs/reading (target ≤ 2), baseline loop {base:.3f} µs/reading, "
            f"ratio {per_reading / base:.1f}×, {hits // len(runs)} hits per run"
        )

    # offline scan: nobody is due (the realistic case between deadlines), then time tick()
    now = T0 + 60_000
    engine.tick(now)
    scans = []
    for _ in range(30):
        start = time.perf_counter()
        due = engine.tick(now)
        scans.append(time.perf_counter() - start)
    deadlines = []
    for _ in range(10):
        start = time.perf_counter()
        engine.next_deadline()
        deadlines.append(time.perf_counter() - start)
    values = np.arange(1_000_000, dtype=np.int64)
    sums = []
    for _ in range(30):
        start = time.perf_counter()
        values.sum()
        sums.append(time.perf_counter() - start)
    scan_ms = statistics.median(scans) * 1e3
    base_ms = statistics.median(sums) * 1e3
    print(
        f"offline scan (tick) over {args.devices:,} devices: median {scan_ms:.2f} ms, "
        f"max {max(scans) * 1e3:.2f} ms "
        f"(target ≤ 10), baseline numpy sum of 1M int64 {base_ms:.3f} ms, ratio {scan_ms / base_ms:.1f}×, "
        f"{len(due)} due; next_deadline() median {statistics.median(deadlines) * 1e3:.2f} ms"
    )

    start = time.perf_counter()
    data = engine.snapshot(now)
    snap_s = time.perf_counter() - start
    start = time.perf_counter()
    RuleEngine.restore(registry, None, data, now + 1000)
    restore_s = time.perf_counter() - start
    print(f"snapshot: {len(data) / 1e6:.1f} MB in {snap_s:.2f} s, restore in {restore_s:.2f} s")

    # what the service's pipeline thread pays per periodic snapshot: the copy (the write is the
    # SnapshotWriter thread's); the first save allocates its buffers, later ones reuse them
    with tempfile.TemporaryDirectory() as tmp:
        writer = SnapshotWriter(Path(tmp) / "rules.snapshot")
        pauses, writes = [], []
        for _ in range(5):
            start = time.perf_counter()
            assert writer.save(engine.snapshot_arrays(now))
            pauses.append(time.perf_counter() - start)
            writer.flush()
            writes.append(time.perf_counter() - start)
        print(
            f"background snapshot: pipeline pause median {statistics.median(pauses[1:]) * 1e3:.1f} ms "
            f"(first {pauses[0] * 1e3:.0f} ms), written in {statistics.median(writes) * 1e3:.0f} ms; "
            f"baseline: the synchronous snapshot above, ratio {snap_s / statistics.median(pauses[1:]):.0f}×"
        )


if __name__ == "__main__":
    main()
