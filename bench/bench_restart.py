"""Restart at province scale (issue 17): ``firegrid ingest`` over the simulator's world of
``--districts`` districts (106: ~1,003,000 devices), from the start of the process until /healthz
says subscribed (registry load, rule-state restore, event store open, broker connection), with
no rule-state snapshot (a first start) and with the snapshot its previous run left; its RSS then
and at its peak. Baseline in the same run: a Python process that only loads the same registry
(``devices.Registry.load``), timed and measured the same way.

Targets: start-up ≤ 10 s including state restore, RSS ≤ 1 GiB.

    .venv/bin/python bench/bench_restart.py [--districts 106] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._field import IngestProcess, ingest_env, load_average, memory
from devices import Registry
from firegrid._services import Influxd, Mosquitto, wait_for
from simulators import write_world

GIB = 1024**3

_LOAD_ONLY = """
import resource, sys, time
started = time.perf_counter()
from devices import Registry
registry = Registry.load(sys.argv[1])
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def registry_only(registry: Path) -> tuple[float, int]:
    """Seconds from a process's start until it has loaded the registry (imports included), and its
    peak RSS."""
    root = str(Path(__file__).resolve().parent.parent)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_ONLY, str(registry)],
        cwd=root,
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()
    return time.perf_counter() - started, int(out[1])


def start_until_healthy(ingest: IngestProcess) -> dict[str, float]:
    started = ingest.start()
    wait_for(ingest.healthy, 300, "firegrid healthy", interval=0.02)
    elapsed = time.perf_counter() - started
    rss, peak = memory(ingest.pid)
    return {
        "startup_s": round(elapsed, 2),
        "rss_mib": round(rss / 2**20),
        "peak_rss_mib": round(peak / 2**20),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--districts", type=int, default=106, help="districts of ~9,468 devices each")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--snapshot-wait", type=float, default=7, help="s the first run lives (snapshots: 5 s)"
    )
    args = parser.parse_args()
    load_before = load_average()
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="firegrid-restart-") as tmp:
        work = Path(tmp)
        registry_dir = work / "registry"
        started = time.perf_counter()
        write_world(registry_dir, districts=args.districts, seed=1)
        world_s = time.perf_counter() - started
        devices = Registry.load(registry_dir).slots
        broker, influx = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
        broker.start()
        influx.start()
        log = (work / "ingest.log").open("ab")
        try:
            for repeat in range(args.repeats):
                load_s, load_peak = registry_only(registry_dir)
                data = work / f"data{repeat}"
                ingest = IngestProcess(
                    ingest_env(broker, influx, registry_dir, data, f"restart-{repeat}"), log
                )
                try:
                    cold = start_until_healthy(ingest)
                    time.sleep(args.snapshot_wait)
                finally:
                    cold_stop_s = ingest.stop()
                snapshot = data / "rules.snapshot"
                snapshot_mib = snapshot.stat().st_size / 2**20 if snapshot.exists() else 0.0
                try:
                    warm = start_until_healthy(ingest)
                finally:
                    warm_stop_s = ingest.stop()
                runs.append(
                    {
                        "registry_only_s": round(load_s, 2),
                        "registry_only_peak_rss_mib": round(load_peak / 2**20),
                        "no_snapshot": cold,
                        "with_snapshot": warm,
                        "snapshot_mib": round(snapshot_mib, 1),
                        "stop_s": [round(cold_stop_s, 1), round(warm_stop_s, 1)],
                        "no_snapshot_to_registry_only": round(cold["startup_s"] / load_s, 2),
                        "with_snapshot_to_registry_only": round(warm["startup_s"] / load_s, 2),
                    }
                )
        finally:
            log.close()
            print((work / "ingest.log").read_text()[-3000:], file=sys.stderr)
            broker.stop()
            influx.stop()
    result = {
        "devices": devices,
        "districts": args.districts,
        "write_world_s": round(world_s, 1),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    for run in runs:
        restarted = run["with_snapshot"]
        assert isinstance(restarted, dict)
        print(
            f"restart at {devices:,} devices: {restarted['startup_s']} s to subscribed with the snapshot "
            f"= {run['with_snapshot_to_registry_only']} × loading the registry alone "
            f"({run['registry_only_s']} s), "
            f"RSS {restarted['rss_mib']} MiB (peak {restarted['peak_rss_mib']}); "
            f"targets ≤ 10 s, ≤ {GIB // 2**20} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
