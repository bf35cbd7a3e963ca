"""How cost grows (issue 17): throughput, CPU per message and p99 alert latency of a live firegrid
at 1k, 10k, 100k and 1M devices and at 1k, 5k and 10k msg/s of the simulator's district mix
(QoS 1), as a table and a plot (``--plot``, committed as docs/scaling.svg).

For each registry size one firegrid runs; for each rate the simulator sends for ``--seconds`` (after
a short ramp) while the probe measures the alert latency of new FIRE_ALARMs and, as the baseline
of the same load, the broker's own round trip. Throughput is what firegrid received and wrote per second
(it may fall behind what was offered, which then shows);
CPU per message is firegrid's user + system CPU over the messages it received.

    .venv/bin/python bench/bench_scaling.py [--devices 1000,10000,100000,1000000]
        [--rates 1000,5000,10000] [--seconds 20] [--samples 60] [--plot docs/scaling.svg]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from bench._field import IngestProcess, ingest_env, load_average, memory
from bench.bench_alert_latency import Probe, background_traffic, cpu_seconds, percentile
from devices import Registry
from firegrid._services import Influxd, Mosquitto, wait_for
from simulators import write_world

REFERENCE_DISTRICT = 9_468
"""Devices of the simulator's reference district (world at scale 1)."""

RAMP_S = 3.0
"""Seconds the background runs before measuring (the simulator reaches its rate)."""


def world_for(devices: int, out: Path) -> int:
    """A simulator world of about ``devices`` devices: scaled districts up to one, then whole ones."""
    if devices <= REFERENCE_DISTRICT:
        summary = write_world(out, scale=devices / REFERENCE_DISTRICT, seed=5)
    else:
        summary = write_world(out, scale=1.0, seed=5, districts=max(1, round(devices / REFERENCE_DISTRICT)))
    return sum(summary.devices.values())


def ramp_up(ingest: IngestProcess, rate: int, timeout: float = 300.0) -> None:
    """Wait until firegrid receives at least half the offered rate (the simulator loads its
    registry first: tens of seconds at 1,000,000 devices), then ``RAMP_S`` more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = ingest.metric("firegrid_messages_received_total")
        time.sleep(1.0)  # a benchmark, not a test: a rate is measured over a second
        if ingest.metric("firegrid_messages_received_total") - before >= rate / 2:
            time.sleep(RAMP_S)
            return
    raise TimeoutError(f"the simulator did not reach {rate / 2:.0f} msg/s in {timeout:.0f} s")


def durable(ingest: IngestProcess) -> float:
    """Points written to InfluxDB so far (InfluxDB stays up here: nothing waits in the spool)."""
    return ingest.metric("firegrid_points_written_total")


def measure_size(
    devices: int, rates: list[int], args: argparse.Namespace, work: Path
) -> list[dict[str, object]]:
    registry_dir = work / f"registry-{devices}"
    actual = world_for(devices, registry_dir)
    registry = Registry.load(registry_dir)
    detectors = [(d.device_id, d.district, d.grid_id) for d in registry.devices() if d.kind == "smoke"]
    del registry
    broker, influx = Mosquitto(work / f"mosquitto-{devices}"), Influxd(work / f"influxd-{devices}")
    broker.start()
    influx.start()
    log = (work / f"ingest-{devices}.log").open("wb")
    ingest = IngestProcess(
        ingest_env(broker, influx, registry_dir, work / f"data-{devices}", f"bench-scaling-{devices}"), log
    )
    rows: list[dict[str, object]] = []
    probe = None
    try:
        started = ingest.start()
        wait_for(ingest.healthy, 300, "firegrid healthy")
        startup_s = time.perf_counter() - started
        probe = Probe(broker.url_as(SIMULATOR_ACCOUNT), detectors, echo_url=broker.url_as(INGEST_ACCOUNT))
        for round_, rate in enumerate(rates):
            probe.round = round_
            probe.detectors = detectors[round_ * args.samples :] or detectors
            load_before = load_average()
            background = background_traffic(registry_dir, broker.url_as(SIMULATOR_ACCOUNT), rate, 600)
            try:
                ramp_up(ingest, rate)
                cpu0, wall0 = cpu_seconds(ingest.pid), time.monotonic()
                received0, durable0 = ingest.metric("firegrid_messages_received_total"), durable(ingest)
                base = probe.measure(args.samples, alerts=False)
                alert = probe.measure(args.samples, alerts=True)
                rest = args.seconds - (time.monotonic() - wall0)
                if rest > 0:
                    time.sleep(rest)
                wall = time.monotonic() - wall0
                received = ingest.metric("firegrid_messages_received_total") - received0
                written = durable(ingest) - durable0
                cpu = cpu_seconds(ingest.pid) - cpu0
            finally:
                background.terminate()
                background.wait(30)
            rss, _ = memory(ingest.pid)
            rows.append(
                {
                    "devices": actual,
                    "rate": rate,
                    "received_msg_s": round(received / wall),
                    "durable_points_s": round(written / wall),
                    "cpu_us_per_msg": round(cpu / max(received, 1) * 1e6, 1),
                    "cpu_cores": round(cpu / wall, 2),
                    "alert_p50_ms": round(statistics.median(alert), 1),
                    "alert_p99_ms": round(percentile(alert, 0.99), 1),
                    "broker_p99_ms": round(percentile(base, 0.99), 1),
                    "rss_mib": rss >> 20,
                    "startup_s": round(startup_s, 1),
                    "load": f"{load_before} -> {load_average()}",
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            # the next rate starts from an empty queue
            wait_for(lambda: ingest.metric("firegrid_commit_pending_lines") == 0, 300, "firegrid caught up")
    finally:
        if probe is not None:
            probe.close()
        ingest.stop()
        broker.stop()
        influx.stop()
    return rows


def table(rows: list[dict[str, object]]) -> str:
    head = (
        "| devices | offered msg/s | received msg/s | CPU µs/msg | CPU cores | alert p50 / p99 ms "
        "| broker p99 ms | RSS MiB |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['devices']:,} | {r['rate']:,} | {r['received_msg_s']:,} | {r['cpu_us_per_msg']} "
            f"| {r['cpu_cores']} | {r['alert_p50_ms']} / {r['alert_p99_ms']} | {r['broker_p99_ms']} "
            f"| {r['rss_mib']:,} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    rates = sorted({int(str(r["rate"])) for r in rows})
    for rate in rates:
        mine = [r for r in rows if r["rate"] == rate]
        xs = [int(str(r["devices"])) for r in mine]
        for axis, key in zip(axes, ("received_msg_s", "cpu_us_per_msg", "alert_p99_ms"), strict=True):
            axis.plot(xs, [float(str(r[key])) for r in mine], marker="o", label=f"{rate:,} msg/s offered")
    titles = ("throughput (msg/s received)", "CPU per message (µs)", "p99 alert latency (ms)")
    for axis, title in zip(axes, titles, strict=True):
        axis.set_xscale("log")
        axis.set_xlabel("devices in the registry")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    axes[2].axhline(50, color="red", linestyle="--", linewidth=1, label="target p99 50 ms")
    axes[2].legend(fontsize=8)
    figure.suptitle("firegrid: how cost grows (bench/bench_scaling.py)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Date": None})
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="1000,10000,100000,1000000")
    parser.add_argument("--rates", default="1000,5000,10000")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per rate")
    parser.add_argument("--samples", type=int, default=60, help="alert (and broker) samples per rate")
    parser.add_argument("--plot", type=Path, help="write the plot (SVG or PNG by suffix)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args()
    sizes = [int(n) for n in args.devices.split(",")]
    rates = [int(r) for r in args.rates.split(",")]
    if any(n <= 0 for n in sizes) or any(r <= 0 for r in rates) or not math.isfinite(args.seconds):
        parser.error("device counts, rates and seconds must be positive")
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="firegrid-scaling-") as tmp:
        for devices in sizes:
            rows += measure_size(devices, rates, args, Path(tmp))
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
