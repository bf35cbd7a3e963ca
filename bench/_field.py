"""What the field benchmarks share (issue 17): firegrid ingest as a child process, its metrics,
persistent sessions that queue a run's traffic, and the two baselines measured in the same run as
firegrid: a bare paho consumer that parses JSON, and a minimal durable consumer that parses,
formats line protocol, writes to InfluxDB and acks after the write."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from devices import KIND_BY_NAME, Registry
from firegrid._services import Influxd, Mosquitto, free_port, wait_for
from simulators import parse_mqtt_url

IDLE_S = 2.0
"""A drain is over once nothing arrived for this long (the queue is empty)."""


def memory(pid: int) -> tuple[int, int]:
    """Bytes of a process's resident set now and at its peak (Linux /proc: VmRSS, VmHWM)."""
    found = {"VmRSS:": 0, "VmHWM:": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(maxsplit=1)[0] if line else ""
        if key in found:
            found[key] = int(line.split()[1]) * 1024
    return found["VmRSS:"], found["VmHWM:"]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class IngestProcess:
    """``python -m firegrid ingest`` configured through ``FIREGRID_*`` variables."""

    def __init__(self, env: dict[str, str], log: IO[bytes]) -> None:
        self.port = free_port()
        self.http = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ, **env, FIREGRID_HTTP=self.http)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Starts it; returns the perf_counter time of the start."""
        command = [sys.executable, "-m", "firegrid", "--log-level", "warning", "ingest"]
        started = time.perf_counter()
        self.proc = subprocess.Popen(command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return started

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://{self.http}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (all label sets), 0 when absent."""
        total = 0.0
        for line in httpx.get(f"http://{self.http}/metrics", timeout=5).text.splitlines():
            if line.startswith(name) and line[len(name)] in " {":
                total += float(line.split()[-1])
        return total

    def stop(self, timeout: float = 120) -> float:
        """SIGTERM, then SIGKILL after ``timeout`` s; returns the seconds it took to exit (inf when
        killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.perf_counter()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            return float("inf")
        return time.perf_counter() - started


def ingest_env(
    broker: Mosquitto, influx: Influxd, registry: Path, data_dir: Path, client_id: str
) -> dict[str, str]:
    """A firegrid of its own (client id, data dir, database) on the shared broker and InfluxDB.
    The per-device rate limit is off: the benchmarks publish faster than a device would, and every
    message must go through the whole pipeline, as through the baselines."""
    return {
        "FIREGRID_MQTT_URL": broker.url_as(INGEST_ACCOUNT),
        "FIREGRID_INFLUX_URL": influx.url,
        "FIREGRID_INFLUX_DB": client_id.replace("-", "_"),
        "FIREGRID_REGISTRY": str(registry),
        "FIREGRID_DATA_DIR": str(data_dir),
        "FIREGRID_CLIENT_ID": client_id,
        "FIREGRID_DEVICE_RATE": "0",
    }


def firegrid_drain(ingest: IngestProcess, total: int) -> tuple[float, float]:
    """Starts ``ingest`` on a session holding ``total`` queued messages; returns (msg/s from its
    first received message until all are received and durable, start-up seconds until /healthz)."""
    started = ingest.start()
    first = 0.0
    healthy_at = 0.0
    while True:
        now = time.perf_counter()
        if not healthy_at and ingest.healthy():
            healthy_at = now
        try:
            received = ingest.metric("firegrid_messages_received_total")
            pending = ingest.metric("firegrid_commit_pending_lines")
        except httpx.HTTPError:
            received, pending = 0.0, 1.0
        if received and not first:
            first = now
        if received >= total and pending == 0:
            break
        if now - started > 900:
            raise TimeoutError(f"firegrid drained {received:.0f} of {total} in 900 s")
        time.sleep(0.02)
    return received / (time.perf_counter() - first), healthy_at - started


def _connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 16384
    return props


def _client(broker: Mosquitto, client_id: str, manual_ack: bool = False) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    client.username_pw_set(INGEST_ACCOUNT, broker.passwords[INGEST_ACCOUNT])
    return client


MessageHandler = Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]


def subscriber(url: str, topic: str, on_message: MessageHandler, label: str) -> mqtt.Client:
    """A clean MQTT 5 client of ``url``'s account, subscribed to ``topic`` at QoS 1, its network
    thread started, connected (TCP_NODELAY: a measurement of firegrid, not of Nagle's delay)."""
    host, port, user, password = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, password)
    client.on_message = on_message
    client.connect(host, port)
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.subscribe(topic, 1)
    client.loop_start()
    wait_for(client.is_connected, 10, f"{label} connected ({topic})")
    return client


def open_session(broker: Mosquitto, client_id: str, topic: str = "fire/#") -> None:
    """A persistent session subscribed to ``topic`` at QoS 1, left disconnected: the broker queues
    what is published meanwhile for its next connection."""
    client = _client(broker, client_id)
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=_connect_properties())
    client.loop_start()
    wait_for(client.is_connected, 10, f"{client_id} connected")
    client.subscribe(topic, qos=1)[1]
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def publish_every_device(broker: Mosquitto, registry: Registry, rounds: int) -> int:
    """The every-device-in-turn mix (issue 17): each device of ``registry`` publishes once, in
    registry order, ``rounds`` times over (QoS 1, as the simulator's account): its kind's sample
    with a fresh ``ts`` and ``seq``; patrol scans are ``ok`` by a worker of the checkpoint's grid.
    Returns the messages published (each PUBACKed)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-every", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(SIMULATOR_ACCOUNT, broker.passwords[SIMULATOR_ACCOUNT])
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    wait_for(client.is_connected, 10, "bench-every connected")
    published = 0
    now = int(time.time() * 1000) - rounds * 1000
    try:
        for round_ in range(rounds):
            infos = []
            for device in registry.devices():
                body = dict(KIND_BY_NAME[device.kind].sample, ts=now + round_ * 1000, seq=round_ + 1)
                if device.kind == "patrol":
                    grid = registry.grids.get(device.grid_id)
                    body.update(worker_id=grid.workers[0] if grid and grid.workers else "W0001", result="ok")
                    body.pop("hazards", None)
                topic = f"fire/{device.district}/{device.kind}/{device.device_id}"
                infos.append(client.publish(topic, orjson.dumps(body), qos=1))
            for info in infos:
                info.wait_for_publish(60)
            published += len(infos)
    finally:
        client.disconnect()
        client.loop_stop()
    return published


class _Drain:
    """Counts arrivals; over once nothing arrived for ``IDLE_S``."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    def arrived(self) -> None:
        self.last = time.perf_counter()
        if not self.count:
            self.first = self.last
        self.count += 1

    def wait_idle(self, done: threading.Event | None = None) -> None:
        wait_for(lambda: self.count > 0, 120, "first queued message")
        while time.perf_counter() - self.last < IDLE_S or (done is not None and not done.is_set()):
            time.sleep(0.05)

    def rate(self, end: float | None = None) -> float:
        return self.count / max((end or self.last) - self.first, 1e-9)


def bare_drain(broker: Mosquitto, client_id: str) -> tuple[int, float]:
    """Drains a queued session with a bare paho consumer (auto acks) that only parses JSON;
    returns (messages, msg/s)."""
    drain = _Drain()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        orjson.loads(message.payload)
        drain.arrived()

    client = _client(broker, client_id)
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=_connect_properties())
    client.loop_start()
    drain.wait_idle()
    client.disconnect()
    client.loop_stop()
    return drain.count, drain.rate()


def _line(topic: str, body: dict[str, object]) -> bytes | None:
    """One line of protocol: measurement = kind, tags district and device, numeric fields."""
    parts = topic.split("/")
    if len(parts) < 4:
        return None
    district, kind, device = parts[-3], parts[-2], parts[-1]
    fields = []
    for key, value in body.items():
        if key in ("ts", "seq"):
            continue
        if isinstance(value, int | float):  # bool too
            fields.append(f"{key}={float(value)}")
        elif isinstance(value, list):
            fields.extend(f"{key}_{i}={float(v)}" for i, v in enumerate(value) if isinstance(v, int | float))
    if not fields:
        fields.append("seen=1.0")
    return f"{kind},district={district},device={device} {','.join(fields)} {body.get('ts', 0)}".encode()


def durable_drain(broker: Mosquitto, influx: Influxd, client_id: str, batch: int = 5000) -> tuple[int, float]:
    """Drains a queued session with a minimal durable consumer: parse, format line protocol, write
    to InfluxDB in batches (≤ ``batch`` lines, or what arrived within 50 ms), ack after the write
    (in arrival order); returns (messages, msg/s until the last ack)."""
    db = client_id.replace("-", "_")
    httpx.post(f"{influx.url}/query", params={"q": f"CREATE DATABASE {db}"}, timeout=10)
    drain = _Drain()
    lock = threading.Lock()
    pending: list[tuple[int, int, bytes | None]] = []
    stop = threading.Event()
    flushed = threading.Event()
    last_ack = [0.0]

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            body = orjson.loads(message.payload)
            line = _line(message.topic, body) if isinstance(body, dict) else None
        except orjson.JSONDecodeError:
            line = None
        with lock:
            pending.append((message.mid, message.qos, line))
        drain.arrived()

    client = _client(broker, client_id, manual_ack=True)
    client.on_message = on_message

    def writer() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                with lock:
                    taken = pending[:batch]
                    del pending[:batch]
                if not taken:
                    flushed.set()
                    time.sleep(0.05)
                    continue
                flushed.clear()
                body = b"\n".join(line for _, _, line in taken if line is not None)
                if body:
                    response = http.post(
                        f"{influx.url}/write", params={"db": db, "precision": "ms"}, content=body
                    )
                    response.raise_for_status()
                for mid, qos, _ in taken:
                    client.ack(mid, qos)
                last_ack[0] = time.perf_counter()

    thread = threading.Thread(target=writer, name="durable-writer", daemon=True)
    thread.start()
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=_connect_properties())
    client.loop_start()
    drain.wait_idle(flushed)
    stop.set()
    thread.join(30)
    client.disconnect()
    client.loop_stop()
    return drain.count, drain.rate(last_ack[0])
