"""Ingest throughput end to end (QoS 1: received, validated, durable, acknowledged) against the
receive ceiling of a bare paho consumer that only parses JSON, fed by the same publishers in the
same run; and registry + ingest memory per device at 1,000,000 devices.

    .venv/bin/python bench/bench_ingest.py [--messages N] [--memory-devices N]
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import multiprocessing as mp
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from firegrid._services import Influxd, Mosquitto, free_port, wait_for
from simulators import parse_mqtt_url
from tests.helpers import write_registry

PUBLISHERS = 2
DEVICES = 1000


def _publish(url: str, prefix: str, worker: int, count: int, start_ms: int) -> None:
    host, port, user, password = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, password)
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    infos: list[mqtt.MQTTMessageInfo] = []
    for i in range(count):
        if len(infos) >= 20_000:  # paho has 65,535 message ids: wait before reusing them
            for info in infos:
                info.wait_for_publish(120)
            infos.clear()
        device = (i * PUBLISHERS + worker) % DEVICES
        seq = (i * PUBLISHERS + worker) // DEVICES
        payload = orjson.dumps(
            {
                "seq": seq,
                "ts": start_ms + seq,
                "residual_ma": 12.5 + (i % 7),
                "temp_c": [31.0, 33.5, 32.25],
                "current_a": [10.5, 11.0, 9.75],
            }
        )
        infos.append(client.publish(f"{prefix}fire/D01/electrical/E{device:04d}", payload, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def _run_publishers(url: str, prefix: str, total: int) -> list[mp.Process]:
    start_ms = int(time.time() * 1000) - 3_600_000
    procs = [
        mp.Process(target=_publish, args=(url, prefix, w, total // PUBLISHERS, start_ms))
        for w in range(PUBLISHERS)
    ]
    for proc in procs:
        proc.start()
    return procs


def bare_ceiling(broker: Mosquitto, total: int, queued: bool) -> float:
    """msg/s of a bare paho QoS 1 consumer that only parses JSON.

    ``queued``: the messages wait in the consumer's persistent session and are drained by it
    alone; otherwise the publishers run while it consumes.
    """
    received = 0
    done = threading.Event()
    first: list[float] = []

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        orjson.loads(message.payload)
        if not first:
            first.append(time.perf_counter())
        received += 1
        if received >= total:
            done.set()

    prefix = f"bare{int(queued)}/"
    client_id = f"bench-bare-{int(queued)}"
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(INGEST_ACCOUNT, broker.passwords[INGEST_ACCOUNT])
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=props)
    client.subscribe(f"{prefix}fire/#", qos=1)
    client.loop_start()
    wait_for(client.is_connected, 10, "bare consumer connected")
    time.sleep(0.5)  # let the subscription settle before the publishers start (a benchmark, not a test)
    procs: list[mp.Process] = []
    if queued:
        client.disconnect()
        client.loop_stop()
        for proc in _run_publishers(broker.url_as(SIMULATOR_ACCOUNT), prefix, total):
            proc.join()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        client.on_message = on_message
        started = time.perf_counter()
        client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        client.loop_start()
    else:
        started = time.perf_counter()
        procs = _run_publishers(broker.url_as(SIMULATOR_ACCOUNT), prefix, total)
    done.wait(600)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    client.disconnect()
    client.loop_stop()
    return received / elapsed


def firegrid_rate(
    broker: Mosquitto, influx: Influxd, registry: Path, work: Path, total: int, queued: bool
) -> tuple[float, dict[str, float]]:
    port = free_port()
    prefix = f"fg{int(queued)}/"
    env = dict(
        os.environ,
        FIREGRID_MQTT_URL=broker.url_as(INGEST_ACCOUNT),
        FIREGRID_INFLUX_URL=influx.url,
        FIREGRID_INFLUX_DB=f"bench{int(queued)}",
        FIREGRID_REGISTRY=str(registry),
        FIREGRID_DATA_DIR=str(work / f"data{int(queued)}"),
        FIREGRID_HTTP=f"127.0.0.1:{port}",
        FIREGRID_TOPIC_PREFIX=prefix,
        FIREGRID_CLIENT_ID=f"bench-firegrid-{int(queued)}",
    )
    log = (work / "ingest.log").open("ab")
    command = [sys.executable, "-m", "firegrid", "--log-level", "warning", "ingest"]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def metric(name: str) -> float:
        for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 30, "firegrid healthy")
    procs: list[mp.Process] = []
    if queued:  # stop it (the session stays), queue everything, then time its drain alone
        proc.terminate()
        proc.wait(60)
        for publisher in _run_publishers(broker.url_as(SIMULATOR_ACCOUNT), prefix, total):
            publisher.join()
        started = time.perf_counter()
        profile = os.environ.get("BENCH_PROFILE")  # e.g. /tmp/ingest.svg: py-spy records the drain
        drain_command = (
            ["py-spy", "record", "--threads", "-r", "250", "-o", profile, "--", *command]
            if profile
            else command
        )
        proc = subprocess.Popen(drain_command, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(healthy, 30, "firegrid healthy again")
    else:
        started = time.perf_counter()
        procs = _run_publishers(broker.url_as(SIMULATOR_ACCOUNT), prefix, total)
    wait_for(
        lambda: metric("firegrid_points_written_total") >= total, 600, "all points written", interval=0.02
    )
    elapsed = time.perf_counter() - started
    figures = {
        name: metric(f"firegrid_{name}")
        for name in (
            "messages_received_total",
            "points_spooled_total",
            "duplicates_total",
            "write_latency_seconds_sum",
            "write_latency_seconds_count",
        )
    }
    for p in procs:
        p.join()
    proc.send_signal(signal.SIGINT if os.environ.get("BENCH_PROFILE") else signal.SIGTERM)
    proc.wait(60)
    log.close()
    return total / elapsed, figures


def memory_per_device(devices: int, work: Path) -> float:
    """Bytes of RSS per device for the registry plus ingest state, all devices touched once."""
    from devices import Registry
    from ingest import Pipeline
    from ingest._metrics import IngestMetrics

    root = write_registry(work / "memreg", devices_per_kind=1)
    with (root / "devices.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "kind", "district", "site_id", "lat", "lon", "grid_id"])
        for i in range(devices):
            writer.writerow(
                [f"E{i:07d}", "electrical", "D01", f"SITE{i // 8:06d}", 34.305, 108.705, "D01-G00"]
            )
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    registry = Registry.load(root)

    pipeline = Pipeline(registry, IngestMetrics())
    encoder = pipeline._encoder
    for slot in range(registry.slots):
        encoder._series_of(slot)  # the per-device series cache, fully populated
    gc.collect()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return (after - before) / devices


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--memory-devices", type=int, default=1_000_000)
    parser.add_argument("--only-queued", action="store_true", help="skip the live-publisher phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="firegrid-bench-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto")
        influx = Influxd(work / "influxd")
        broker.start()
        influx.start()
        try:
            registry = write_registry(work / "registry", devices_per_kind=DEVICES)
            live_ceiling = live = 1.0
            if not args.only_queued:
                live_ceiling = bare_ceiling(broker, args.messages, queued=False)
                live, _ = firegrid_rate(broker, influx, registry, work, args.messages, queued=False)
            ceiling = bare_ceiling(broker, args.messages, queued=True)
            rate, figures = firegrid_rate(broker, influx, registry, work, args.messages, queued=True)
        finally:
            broker.stop()
            influx.stop()
        memory = memory_per_device(args.memory_devices, work)
    latency_ms = 1000 * figures["write_latency_seconds_sum"] / max(figures["write_latency_seconds_count"], 1)
    result = {
        "messages": args.messages,
        "live_bare_paho_msg_s": round(live_ceiling),
        "live_firegrid_msg_s": round(live),
        "live_ratio": round(live / live_ceiling, 3),
        "queued_bare_paho_msg_s": round(ceiling),
        "queued_firegrid_msg_s": round(rate),
        "queued_ratio": round(rate / ceiling, 3),
        "mean_batch_durability_ms": round(latency_ms, 2),
        "spooled": figures["points_spooled_total"],
        "memory_bytes_per_device": round(memory),
        "memory_devices": args.memory_devices,
    }
    print(json.dumps(result, indent=2))
    print(
        f"ingest, live publishers: {live:,.0f} msg/s end to end = {live / live_ceiling:.2f} × bare paho "
        f"({live_ceiling:,.0f} msg/s, publisher-bound when the ratio is ~1)"
    )
    print(
        f"ingest, queued session drained: {rate:,.0f} msg/s end to end = {rate / ceiling:.2f} × bare paho "
        f"({ceiling:,.0f} msg/s); targets ≥ 10,000 msg/s and ≥ 0.6 ×"
    )
    print(f"memory: {memory:,.0f} B per device at {args.memory_devices:,} devices; target ≤ 1024")
    return 0


if __name__ == "__main__":
    mp.set_start_method("spawn")
    sys.exit(main())
