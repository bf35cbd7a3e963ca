"""Alert latency: from a device's publish to the alert's arrival at a subscriber of the grid
topic, p50 and p99, under 1,000 and 5,000 msg/s of background QoS 1 traffic. The baseline in the
same run is the broker's own round trip (publish → subscriber) under the same load.

    .venv/bin/python bench/bench_alert_latency.py [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from bench._field import subscriber
from devices import Registry
from firegrid._services import Influxd, Mosquitto, free_port, wait_for
from simulators import write_world


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


PROBE_TOPIC = "probe/fire"
"""The broker round trip's topic: under the one-level prefix ``probe/`` on which the suite broker's
service accounts are valid, so the simulator's account may publish it and ingest's account (a
connection of the probe's own, not the running ingest's) may read it."""


class Probe:
    """Sets one smoke detector after another in alarm; each raises an event, which is published.
    With ``echo_url`` it also measures the broker's own round trip (``alerts=False``)."""

    def __init__(self, url: str, detectors: list[tuple[str, str, str]], echo_url: str | None = None) -> None:
        self.detectors = detectors
        self.round = 0
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.client = subscriber(url, "alerts/#", self._on_message, "probe")
        self.echo = (
            None if echo_url is None else subscriber(echo_url, f"{PROBE_TOPIC}/#", self._on_message, "probe")
        )

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        if message.topic.startswith(PROBE_TOPIC):
            key = message.payload.decode()
        else:
            body = json.loads(message.payload)
            key = f"{body['device_id']}:{body['updated_at']}"
        with self.lock:
            self.arrived.setdefault(key, now)

    def measure(self, samples: int, alerts: bool) -> list[float]:
        latencies = []
        for i in range(samples):
            device, district, _ = self.detectors[i % len(self.detectors)]
            ts = int(time.time() * 1000)
            if alerts:  # a new FIRE_ALARM on another detector each time (the background traffic's
                # heartbeats clear alarms on their own, so a toggle would not always change an event)
                topic, payload = f"fire/{district}/smoke/{device}", orjson.dumps({"ts": ts, "alarm": True})
            else:
                assert self.echo is not None, "a broker round trip needs Probe(echo_url=...)"
                topic, payload = f"{PROBE_TOPIC}/{self.round}/{i}", f"probe:{self.round}:{i}".encode()
            sent = time.perf_counter()
            self.client.publish(topic, payload, qos=1)

            def arrived(i: int = i, device: str = device, sent: float = sent) -> float | None:
                with self.lock:
                    if not alerts:
                        return self.arrived.get(f"probe:{self.round}:{i}")
                    return next(
                        (t for k, t in self.arrived.items() if k.startswith(f"{device}:") and t > sent), None
                    )

            wait_for(
                lambda: arrived() is not None,
                10,
                f"alert {alerts} sample {i} {topic} {payload!r}",
                interval=0.0005,
            )
            got = arrived()
            assert got is not None
            latencies.append((got - sent) * 1000)
        return latencies

    def close(self) -> None:
        for client in (self.client, self.echo):
            if client is not None:
                client.disconnect()
                client.loop_stop()


def background_traffic(registry: Path, url: str, rate: float, seconds: float) -> subprocess.Popen[bytes]:
    """The simulator's district traffic (QoS 1) at ``rate`` for ``seconds``, in a process of its own."""
    command = [sys.executable, "-m", "firegrid", "simulate", "run", "--registry", str(registry)]
    command += ["--url", url, "--rate", str(rate), "--duration", str(seconds), "--qos", "1", "--no-progress"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rates", default="1000,5000")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="firegrid-latency-") as tmp:
        work = Path(tmp)
        broker, influx = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
        broker.start()
        influx.start()
        registry_dir = work / "registry"
        write_world(registry_dir, scale=0.5, seed=3)
        registry = Registry.load(registry_dir)
        detectors = [(d.device_id, d.district, d.grid_id) for d in registry.devices() if d.kind == "smoke"]
        port = free_port()
        env = dict(
            os.environ,
            FIREGRID_MQTT_URL=broker.url_as(INGEST_ACCOUNT),
            FIREGRID_INFLUX_URL=influx.url,
            FIREGRID_REGISTRY=str(registry_dir),
            FIREGRID_DATA_DIR=str(work / "data"),
            FIREGRID_HTTP=f"127.0.0.1:{port}",
            FIREGRID_CLIENT_ID="bench-latency",
        )
        log = (work / "ingest.log").open("wb")
        ingest = subprocess.Popen(
            [sys.executable, "-m", "firegrid", "--log-level", "warning", "ingest"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        probe = None
        try:
            wait_for(lambda: _healthy(port), 60, "firegrid healthy")
            probe = Probe(broker.url_as(SIMULATOR_ACCOUNT), detectors, echo_url=broker.url_as(INGEST_ACCOUNT))
            for round_, rate in enumerate(int(r) for r in args.rates.split(",")):
                probe.detectors = detectors[round_ * args.samples : (round_ + 1) * args.samples]
                probe.round = round_
                background = background_traffic(registry_dir, broker.url_as(SIMULATOR_ACCOUNT), rate, 600)
                try:
                    time.sleep(3)  # let the background traffic reach its rate (a benchmark, not a test)
                    pids = {
                        "firegrid": ingest.pid,
                        "simulator": background.pid,
                        "mosquitto": broker.proc.pid if broker.proc else 0,
                        "influxd": influx.proc.pid if influx.proc else 0,
                    }
                    cpu_before, wall_before = {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
                    received_before = received(f"127.0.0.1:{port}")
                    base = probe.measure(args.samples, alerts=False)
                    alert = probe.measure(args.samples, alerts=True)
                    wall = time.monotonic() - wall_before
                    received_rate = round((received(f"127.0.0.1:{port}") - received_before) / wall)
                    cpu = {n: round((cpu_seconds(p) - cpu_before[n]) / wall, 2) for n, p in pids.items()}
                finally:
                    background.terminate()
                    background.wait(30)
                delay = _metric_lines(port, "firegrid_pipeline_delay_seconds")
                results[rate] = {
                    "pipeline_delay": delay,
                    "cpu_cores_used": cpu,
                    "received_msg_s": received_rate,
                    "alert_p50_ms": round(statistics.median(alert), 2),
                    "alert_p99_ms": round(percentile(alert, 0.99), 2),
                    "broker_p50_ms": round(statistics.median(base), 2),
                    "broker_p99_ms": round(percentile(base, 0.99), 2),
                    "p99_ratio_to_broker": round(
                        percentile(alert, 0.99) / max(percentile(base, 0.99), 1e-3), 1
                    ),
                }
        finally:
            if probe is not None:
                probe.close()
            ingest.terminate()
            ingest.wait(60)
            broker.stop()
            influx.stop()
    print(json.dumps(results, indent=2))
    for rate, r in results.items():
        print(
            f"alert latency at {rate:,} msg/s background ({r['received_msg_s']:,} received): "
            f"p50 {r['alert_p50_ms']} ms, "
            f"p99 {r['alert_p99_ms']} ms (broker round trip p99 {r['broker_p99_ms']} ms); "
            f"target p99 ≤ 50 ms; CPU cores used: {r['cpu_cores_used']} of {os.cpu_count()}"
        )
    return 0


def _metric_lines(port: int, name: str) -> list[str]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return [line for line in text.splitlines() if line.startswith(name)]


def received(http: str) -> float:
    """Messages the firegrid at ``host:port`` has received so far (the background's achieved rate,
    probes included)."""
    text = httpx.get(f"http://{http}/metrics", timeout=5).text
    [line] = [m for m in text.splitlines() if m.startswith("firegrid_messages_received_total")]
    return float(line.split()[-1])


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
