"""Every core (issue 17): a queued session drained by one `firegrid ingest` owning every district
vs two instances owning half the districts each (FIREGRID_DISTRICTS), on the same run of
district traffic (the simulator's mix over a world of ``--districts`` reference districts scaled by
``--scale``), against one broker and one InfluxDB. Baseline in the same run: a bare paho consumer
that only parses JSON, draining the same run from a session of its own.

Each firegrid's persistent session is made first (each instance started once and stopped, so the
broker holds its subscriptions), then the simulator publishes at QoS 1 while they are all away,
then the sessions are drained one after another: the bare consumer, one instance, the two
instances together (started at the same moment; the drain ends when both have received and made
durable everything). Target: two instances ≥ 1.3 × one.

    .venv/bin/python bench/bench_instances.py [--districts 2] [--scale 1] [--rate 4000] [--duration 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import SIMULATOR_ACCOUNT
from bench._field import (
    IngestProcess,
    bare_drain,
    ingest_env,
    load_average,
    open_session,
    publish_every_device,
)
from bench.bench_alert_latency import cpu_seconds
from devices import Registry
from firegrid._services import Influxd, Mosquitto, wait_for
from simulators import write_world


def make_session(ingest: IngestProcess) -> None:
    """Start ``ingest`` until subscribed, then stop it: its session stays, subscribed."""
    ingest.start()
    wait_for(ingest.healthy, 120, "firegrid healthy")
    ingest.stop()


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


class Usage:
    """CPU cores used over a drain by firegrid (all its instances, start-up included), mosquitto,
    influxd, and the whole machine (every session on it)."""

    def __init__(self, broker: Mosquitto, influx: Influxd) -> None:
        self.pids = {"mosquitto": broker.pid or 0, "influxd": influx.pid or 0}
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine = machine_busy()
        self.started = time.perf_counter()

    def result(self, instances: list[IngestProcess]) -> dict[str, float]:
        wall = time.perf_counter() - self.started
        used = {
            "firegrid": sum(cpu_seconds(ingest.pid) for ingest in instances) / wall,
            **{name: (cpu_seconds(pid) - self.before[name]) / wall for name, pid in self.pids.items()},
        }
        busy, total = machine_busy()
        used["machine_busy"] = (busy - self.machine[0]) / wall
        used["machine_cores"] = (total - self.machine[1]) / wall
        return {name: round(value, 2) for name, value in used.items()}


def drain_together(
    instances: list[IngestProcess], total: int, usage: Usage
) -> tuple[float, list[float], dict[str, float]]:
    """Start every instance at once on its queued session; returns (msg/s of them all, from the
    first message any received until all ``total`` are received and durable; each one's share;
    the CPU cores used meanwhile)."""
    for ingest in instances:
        ingest.start()
    first = 0.0
    started = time.perf_counter()
    while True:
        now = time.perf_counter()
        received: list[float] = []
        pending = 0.0
        for ingest in instances:
            try:
                received.append(ingest.metric("firegrid_messages_received_total"))
                pending += ingest.metric("firegrid_commit_pending_lines")
            except httpx.HTTPError:
                received.append(0.0)
                pending += 1
        if sum(received) and not first:
            first = now
        if sum(received) >= total and pending == 0:
            return sum(received) / (time.perf_counter() - first), received, usage.result(instances)
        if now - started > 900:
            raise TimeoutError(f"instances drained {sum(received):.0f} of {total} in 900 s")
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--districts", type=int, default=2, help="reference districts in the world")
    parser.add_argument("--scale", type=float, default=1.0, help="each district's scale")
    parser.add_argument("--rate", type=float, default=4000, help="msg/s the simulator publishes")
    parser.add_argument("--duration", type=float, default=30, help="s the simulator publishes")
    parser.add_argument(
        "--mix",
        choices=("district", "every"),
        default="district",
        help="district: the simulator's traffic; every: each device once in turn, --rounds times",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the every-device mix")
    args = parser.parse_args()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="firegrid-instances-") as tmp:
        work = Path(tmp)
        registry_dir = work / "registry"
        write_world(registry_dir, scale=args.scale, seed=1, districts=args.districts)
        registry = Registry.load(registry_dir)
        districts = registry.districts
        halves = [districts[: len(districts) // 2], districts[len(districts) // 2 :]]
        broker, influx = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
        broker.start()
        influx.start()
        log = (work / "ingest.log").open("ab")
        one = IngestProcess(ingest_env(broker, influx, registry_dir, work / "one", "inst-one"), log)
        pair = []
        for i, half in enumerate(halves):
            env = ingest_env(broker, influx, registry_dir, work / f"two-{i}", "inst-two")
            env["FIREGRID_DISTRICTS"] = ",".join(half)
            pair.append(IngestProcess(env, log))
        try:
            for ingest in (one, *pair):
                make_session(ingest)
            open_session(broker, "inst-bare")
            published = time.perf_counter()
            if args.mix == "every":
                publish_every_device(broker, registry, args.rounds)
            else:
                command = [
                    sys.executable,
                    "-m",
                    "firegrid",
                    "simulate",
                    "run",
                    "--registry",
                    str(registry_dir),
                ]
                command += ["--url", broker.url_as(SIMULATOR_ACCOUNT), "--rate", str(args.rate), "--qos", "1"]
                command += ["--duration", str(args.duration), "--no-progress"]
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            publish_s = time.perf_counter() - published
            total, bare_rate = bare_drain(broker, "inst-bare")
            load_mid = load_average()
            one_rate, _, one_cpu = drain_together([one], total, Usage(broker, influx))
            one.stop()
            two_rate, shares, two_cpu = drain_together(pair, total, Usage(broker, influx))
        finally:
            for ingest in (one, *pair):
                ingest.stop()
            log.close()
            broker.stop()
            influx.stop()
    result = {
        "load_average_before": load_before,
        "load_average_before_drains": load_mid,
        "load_average_after": load_average(),
        "devices": len(registry),
        "districts": districts,
        "halves": halves,
        "mix": args.mix,
        "messages": total,
        "publish_s": round(publish_s, 1),
        "bare_paho_msg_s": round(bare_rate),
        "one_instance_msg_s": round(one_rate),
        "two_instances_msg_s": round(two_rate),
        "two_shares": [round(s) for s in shares],
        "cores_used_one": one_cpu,
        "cores_used_two": two_cpu,
        "two_to_one": round(two_rate / one_rate, 3),
        "one_to_bare": round(one_rate / bare_rate, 3),
        "two_to_bare": round(two_rate / bare_rate, 3),
    }
    print(json.dumps(result, indent=2))
    print(
        f"{args.mix} mix, queued session of {total:,} messages: one instance "
        f"{result['one_to_bare']} × bare paho; two instances {result['two_instances_msg_s']:,} msg/s = "
        f"{result['two_to_one']} × one instance ({result['one_instance_msg_s']:,}); target ≥ 1.3 ×; "
        f"bare paho {result['bare_paho_msg_s']:,}; "
        f"load average {load_before} → {result['load_average_after']}; cores used (firegrid, "
        f"machine): one {one_cpu['firegrid']}, {one_cpu['machine_busy']} of {one_cpu['machine_cores']}; "
        f"two {two_cpu['firegrid']}, {two_cpu['machine_busy']} of {two_cpu['machine_cores']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
