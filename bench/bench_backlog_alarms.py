"""Alarms during a backlog (issue 17: "when the box saturates, readings may queue; alarms must
not wait behind them"). firegrid was down while the district kept publishing: it restarts onto
persistent sessions holding a backlog, and while it drains it a new smoke detector alarms every
``--every`` seconds. The backlog: ``--seconds`` of the reference district's traffic mix (the
simulator, ~94 % electrical, 4 % water, 2 % smoke) at ``--rate`` msg/s, or with ``--mix every``
``--rounds`` rounds of the every-device mix (each device once per round: a third of it smoke,
so the alarm lane has a backlog of its own). Measured: the latency of each FIRE_ALARM alert from
its publication (the alarms start once firegrid's /healthz answers, i.e. it is connected and
draining), and the drain rate, with the alarm lane (``FIREGRID_ALARM_KINDS=smoke``, the default)
and without it (empty), alternately on the same machine with the same backlog. The baseline is the run without
the lane: there an alarm waits for every reading queued before it.

A bare paho consumer drains a copy of the backlog too (its own session), as the drain's baseline.

    .venv/bin/python bench/bench_backlog_alarms.py [--rate 10000] [--seconds 10] [--runs 2] [--every 0.25]
    .venv/bin/python bench/bench_backlog_alarms.py --mix every [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import SIMULATOR_ACCOUNT
from bench._field import (
    IngestProcess,
    bare_drain,
    ingest_env,
    load_average,
    open_session,
    publish_every_device,
    subscriber,
)
from bench.bench_alert_latency import background_traffic, percentile
from devices import Registry
from firegrid._services import Influxd, Mosquitto, wait_for
from simulators import write_world


class AlarmTap:
    """Publishes alarms of detectors never alarmed before and notes when each one's first
    FIRE_ALARM alert arrives."""

    def __init__(self, broker: Mosquitto, detectors: list[tuple[str, str]]) -> None:
        self._detectors = iter(detectors)
        self.sent: dict[str, float] = {}
        self.alerted: dict[str, float] = {}
        self._lock = threading.Lock()
        self._client = subscriber(broker.url_as(SIMULATOR_ACCOUNT), "alerts/#", self._on_message, "alarm tap")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        body = orjson.loads(message.payload)
        if isinstance(body, dict) and body.get("type") == "FIRE_ALARM":
            with self._lock:
                self.alerted.setdefault(str(body.get("device_id")), now)

    def alarm(self) -> None:
        device, district = next(self._detectors)
        payload = orjson.dumps({"ts": int(time.time() * 1000), "alarm": True})
        with self._lock:
            self.sent[device] = time.perf_counter()
        self._client.publish(f"fire/{district}/smoke/{device}", payload, qos=1)

    def latencies_ms(self) -> list[float]:
        with self._lock:
            return [(self.alerted[d] - t) * 1000 for d, t in self.sent.items() if d in self.alerted]

    def all_alerted(self) -> bool:
        with self._lock:
            return all(d in self.alerted for d in self.sent)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def run_once(
    broker: Mosquitto,
    influx: Influxd,
    registry_dir: Path,
    registry: Registry,
    work: Path,
    name: str,
    alarm_kinds: str,
    args: argparse.Namespace,
) -> dict[str, object]:
    env = ingest_env(broker, influx, registry_dir, work / name, name)
    env["FIREGRID_ALARM_KINDS"] = alarm_kinds
    with (work / f"{name}.log").open("ab") as log:
        ingest = IngestProcess(env, log)
        tap = AlarmTap(broker, [(d.device_id, d.district) for d in registry.devices() if d.kind == "smoke"])
        try:
            ingest.start()  # its sessions, subscribed, then gone while the district publishes
            wait_for(ingest.healthy, 60, f"{name} healthy")
            ingest.stop()
            open_session(broker, f"{name}-bare")
            if args.mix == "every":
                publish_every_device(broker, registry, args.rounds)
            else:
                url = broker.url_as(SIMULATOR_ACCOUNT)
                if background_traffic(registry_dir, url, args.rate, args.seconds).wait():
                    raise RuntimeError("the simulator failed")
            backlog, bare_rate = bare_drain(broker, f"{name}-bare")
            ingest.start()
            wait_for(ingest.healthy, 60, f"{name} healthy again")
            first = drained = 0.0
            next_alarm = time.perf_counter()
            while not drained:
                now = time.perf_counter()
                if now >= next_alarm:
                    tap.alarm()
                    next_alarm += args.every
                received = ingest.metric("firegrid_messages_received_total")
                if received and not first:
                    first = now
                if received >= backlog:
                    drained = now
                time.sleep(0.01)
            wait_for(tap.all_alerted, 60, f"{name}: every alarm alerted")
        finally:
            ingest.stop()
            tap.close()
    values = tap.latencies_ms()
    return {
        "alarm_lane": alarm_kinds or "off",
        "backlog": backlog,
        "drain_msg_s": round(backlog / (drained - first)),
        "drain_to_bare": round(backlog / (drained - first) / bare_rate, 3),
        "alarms": len(values),
        "p50_ms": round(statistics.median(values), 1),
        "p99_ms": round(percentile(values, 0.99), 1),
        "max_ms": round(max(values), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mix", choices=("district", "every"), default="district")
    parser.add_argument("--rate", type=float, default=10000, help="district mix: msg/s published")
    parser.add_argument("--seconds", type=float, default=10, help="district mix: seconds published")
    parser.add_argument("--rounds", type=int, default=10, help="every-device mix: rounds of every device")
    parser.add_argument("--runs", type=int, default=2, help="runs of each mode, alternating")
    parser.add_argument("--every", type=float, default=0.25, help="s between alarms during the drain")
    args = parser.parse_args()
    load_before = load_average()
    results = []
    with tempfile.TemporaryDirectory(prefix="firegrid-backlog-") as tmp:
        work = Path(tmp)
        broker, influx = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
        broker.start()
        influx.start()
        try:
            registry_dir = work / "registry"
            write_world(registry_dir, scale=1.0, seed=1)
            registry = Registry.load(registry_dir)
            for run in range(args.runs):
                for kinds in ("smoke", ""):
                    name = f"backlog-{kinds or 'off'}-{run}"
                    results.append(run_once(broker, influx, registry_dir, registry, work, name, kinds, args))
                    print(json.dumps(results[-1]), flush=True)
        finally:
            broker.stop()
            influx.stop()
    lane = [r for r in results if r["alarm_lane"] != "off"]
    off = [r for r in results if r["alarm_lane"] == "off"]
    summary = {
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "p99_ms_lane": [r["p99_ms"] for r in lane],
        "p99_ms_off": [r["p99_ms"] for r in off],
        "drain_lane_to_off": [
            round(float(str(a["drain_msg_s"])) / float(str(b["drain_msg_s"])), 3)
            for a, b in zip(lane, off, strict=True)
        ],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
