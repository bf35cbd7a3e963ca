"""The compound fault run (issue 16): one QoS 1 stream with a seq per device and alarms among it,
while InfluxDB is down, the broker restarts twice and ``firegrid ingest`` is killed with -9 three
times; then every seq and every alert is accounted for.

One implementation, sized by a :class:`FaultPlan` (a short one in ``make test``, the full one
under the ``soak`` marker)::

    Stream              the readings: water and smoke devices, seq in ``ts`` and in a field
    ReliablePublisher   QoS 1 in chunks, a chunk re-published until all its PUBACKs came
    FaultPlan, run_faults   when each fault happens, and doing it
    account_readings, account_alerts   the accounting at the end
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from firegrid._services import Influxd, Mosquitto
from simulators import parse_mqtt_url
from tests.helpers import eventually, influx_query, write_registry
from tests.integration.conftest import IngestProcess
from tests.mqtt import SessionSubscriber
from tests.scenario_run import list_events

STEP_MS = 10
"""Readings of one device are this far apart in ``ts`` (seq = (ts - base) / STEP_MS)."""
SEQ_FIELD = {"water": "level_m", "smoke": "obscuration_db_m"}
"""The field that carries the seq as well, so that a point is counted by its value."""


def metric(ingest: IngestProcess, name: str) -> float:
    """One unlabelled value of ingest's /metrics."""
    [line] = [m for m in ingest.metrics().splitlines() if m.startswith(f"{name} ")]
    return float(line.split()[-1])


def proc_status(pid: int, key: str) -> int:
    """A number of /proc/PID/status (``VmRSS`` in kB, ``Threads``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


# -- the stream ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """``seqs`` readings of each device, one message per device and seq; each smoke detector is in
    alarm at exactly one seq (spread over the stream), so each must raise one FIRE_ALARM."""

    prefix: str
    devices: int
    """Of each kind (water, smoke): the registry's first ones."""
    seqs: int
    base_ms: int
    district: str = "D01"

    def ids(self, kind: str) -> list[str]:
        return [f"{kind[0].upper()}{i:04d}" for i in range(self.devices)]

    @property
    def detectors(self) -> list[str]:
        return self.ids("smoke")

    def alarm_seq(self, detector: int) -> int:
        return (detector + 1) * self.seqs // (self.devices + 1)

    @property
    def messages(self) -> int:
        return 2 * self.devices * self.seqs

    def _payload(self, kind: str, index: int, seq: int) -> bytes:
        body: dict[str, Any] = {"seq": seq, "ts": self.base_ms + seq * STEP_MS, SEQ_FIELD[kind]: float(seq)}
        if kind == "water":
            body["pressure_mpa"] = 0.3
        else:
            body["alarm"] = seq == self.alarm_seq(index)
        return orjson.dumps(body)

    def chunks(self, seqs_per_chunk: int) -> Iterator[list[tuple[str, bytes]]]:
        for first in range(0, self.seqs, seqs_per_chunk):
            yield [
                (f"{self.prefix}fire/{self.district}/{kind}/{device}", self._payload(kind, i, seq))
                for seq in range(first, min(first + seqs_per_chunk, self.seqs))
                for kind in SEQ_FIELD
                for i, device in enumerate(self.ids(kind))
            ]


def write_fault_registry(root: Path, stream_devices: int) -> Path:
    """The suite's small registry with ``stream_devices`` of each kind."""
    return write_registry(root, devices_per_kind=stream_devices)


# -- MQTT clients ----------------------------------------------------------------------------


def _client(url: str, client_id: str) -> tuple[mqtt.Client, str, int]:
    host, port, user, password = parse_mqtt_url(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    if user is not None:
        client.username_pw_set(user, password)
    client.reconnect_delay_set(1, 2)
    return client, host, port


def _acked(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # not sent (no connection): paho may still send it later
        return False


class ReliablePublisher:
    """QoS 1, at least once across broker restarts: a chunk is published and its PUBACKs awaited;
    a chunk whose PUBACKs did not all come within ``ack_timeout`` is published again once the
    client is connected (ingest drops the repeats by (device, seq))."""

    def __init__(self, url: str, client_id: str, ack_timeout: float = 10.0) -> None:
        self.client, host, port = _client(url, client_id)
        self.client.max_inflight_messages_set(1000)
        self.ack_timeout = ack_timeout
        self.published = 0
        self.republished_chunks = 0
        self.client.connect(host, port)
        self.client.loop_start()
        eventually(self.client.is_connected, timeout=10, what="publisher connected")

    def publish_chunk(self, items: Sequence[tuple[str, bytes]]) -> None:
        while True:
            eventually(self.client.is_connected, timeout=120, what="publisher reconnected")
            if self._publish_once(items):
                return
            self.republished_chunks += 1

    def _publish_once(self, items: Sequence[tuple[str, bytes]]) -> bool:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in items]
        self.published += len(infos)
        try:
            eventually(lambda: all(_acked(i) for i in infos), timeout=self.ack_timeout)
        except AssertionError:
            return False
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the faults ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPlan:
    """How long and how fast the stream runs, and how long InfluxDB stays down. The faults are
    spread over the stream: kill -9 at 10, 50 and 80 %, InfluxDB down from 20 %, the broker
    restarted at 35 % (inside the outage when it is long) and 65 %."""

    name: str
    stream_s: float
    rate: float
    """Messages per second."""
    influx_down_s: float
    devices: int = 20
    """Of each kind: the stream's water meters and smoke detectors."""
    seqs_per_chunk: int = 5

    @property
    def seqs(self) -> int:
        return round(self.stream_s * self.rate / (2 * self.devices))

    def schedule(self) -> list[tuple[float, str]]:
        t = self.stream_s
        return sorted(
            [
                (0.10 * t, "kill -9"),
                (0.20 * t, "influxdb stop"),
                (0.20 * t + self.influx_down_s, "influxdb start"),
                (0.35 * t, "broker restart"),
                (0.50 * t, "kill -9"),
                (0.65 * t, "broker restart"),
                (0.80 * t, "kill -9"),
            ]
        )


@dataclass
class FaultLog:
    done: list[tuple[float, str]] = field(default_factory=list)

    def count(self, name: str) -> int:
        return sum(1 for _, n in self.done if n == name)


def fault_actions(ingest: IngestProcess, broker: Mosquitto, influx: Influxd) -> dict[str, Callable[[], None]]:
    def stop_influx() -> None:
        influx.stop()

    def kill() -> None:
        assert ingest.stop(signal.SIGKILL) == -signal.SIGKILL
        ingest.start()  # waits until healthy: connected to the broker again

    def restart_broker() -> None:
        broker.restart()
        eventually(ingest.healthy, timeout=60, what="ingest reconnected after the broker restart")

    return {
        "kill -9": kill,
        "influxdb stop": stop_influx,
        "influxdb start": influx.start,
        "broker restart": restart_broker,
    }


def run_faults(
    plan: FaultPlan, actions: dict[str, Callable[[], None]], started: float, log: FaultLog
) -> None:
    """Each fault of the plan at its time after ``started`` (monotonic); late when the one before
    took longer (a restart of ingest under load can take seconds), but InfluxDB stays down its
    full ``influx_down_s`` from when it was actually stopped. The waits are the scenario's timing,
    not synchronisation."""
    influx_stopped: float | None = None
    for at, name in plan.schedule():
        due = started + at
        if name == "influxdb start" and influx_stopped is not None:
            due = max(due, influx_stopped + plan.influx_down_s)
        time.sleep(max(0.0, due - time.monotonic()))
        actions[name]()
        if name == "influxdb stop":
            influx_stopped = time.monotonic()
        log.done.append((round(time.monotonic() - started, 1), name))


def publish_stream(stream: Stream, plan: FaultPlan, publisher: ReliablePublisher, started: float) -> None:
    """The stream paced at the plan's rate (a chunk waits for its turn; a late one goes at once)."""
    for k, chunk in enumerate(stream.chunks(plan.seqs_per_chunk)):
        time.sleep(max(0.0, started + k * len(chunk) / plan.rate - time.monotonic()))
        publisher.publish_chunk(chunk)


# -- the accounting --------------------------------------------------------------------------


@dataclass
class ReadingAccount:
    sent: int
    written: int
    rejected: int
    missing: dict[str, list[int]]
    duplicated: dict[str, list[int]]


def _written(influx: Influxd, db: str, stream: Stream) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {d: [] for kind in SEQ_FIELD for d in stream.ids(kind)}
    for kind, name in SEQ_FIELD.items():
        for row in influx_query(influx.url, db, f"SELECT {name} FROM {kind} GROUP BY device"):
            found[row["device"]].append(int(row[name]))
    return found


def all_written(influx: Influxd, db: str, stream: Stream) -> bool:
    counts: dict[str, int] = {}
    for kind, name in SEQ_FIELD.items():
        for row in influx_query(influx.url, db, f"SELECT count({name}) FROM {kind} GROUP BY device"):
            counts[row["device"]] = int(row["count"])
    return all(counts.get(d, 0) >= stream.seqs for kind in SEQ_FIELD for d in stream.ids(kind))


def _rejected(influx: Influxd, db: str, stream: Stream) -> set[tuple[str, int]]:
    """(device, seq) of the stream's messages recorded as rejects (from each one's payload)."""
    out: set[tuple[str, int]] = set()
    for row in influx_query(influx.url, db, "SELECT topic, payload FROM rejects"):
        topic, payload = str(row.get("topic") or ""), str(row.get("payload") or "")
        if not topic.startswith(stream.prefix):
            continue
        try:
            body = json.loads(payload)
        except ValueError:
            continue
        for item in body if isinstance(body, list) else [body]:
            if isinstance(item, dict) and isinstance(item.get("seq"), int):
                out.add((topic.rsplit("/", 1)[-1], item["seq"]))
    return out


def account_readings(influx: Influxd, db: str, stream: Stream) -> ReadingAccount:
    """Every seq sent is written exactly once or is a named reject."""
    written = _written(influx, db, stream)
    rejected = _rejected(influx, db, stream)
    missing: dict[str, list[int]] = {}
    duplicated: dict[str, list[int]] = {}
    for device, seqs in written.items():
        counts = Counter(seqs)
        if gone := [s for s in range(stream.seqs) if s not in counts and (device, s) not in rejected]:
            missing[device] = gone
        if twice := sorted(s for s, n in counts.items() if n > 1):
            duplicated[device] = twice
    return ReadingAccount(
        stream.messages, sum(len(v) for v in written.values()), len(rejected), missing, duplicated
    )


@dataclass
class AlertAccount:
    events: int
    """Events ingest knows (/events)."""
    fire_alarms: dict[str, list[str]]
    """Detector → event ids of its FIRE_ALARM events (one each expected)."""
    unpublished: dict[str, list[int]]
    """Event id → revs (1 .. its rev in /events) that never reached the subscriber."""
    received: int
    repeats: int
    """Alerts received more than once (same topic, event_id, rev): allowed."""


def account_alerts(http: str, subscriber: SessionSubscriber) -> AlertAccount:
    """Every change of every event ingest knows (rev 1 .. its rev) reached the persistent
    subscriber at least once; FIRE_ALARM events per detector, from /events."""
    events = list_events(http)
    alerts = [(topic, body["event_id"], int(body["rev"])) for topic, body in subscriber.messages()]
    revs: dict[str, set[int]] = defaultdict(set)
    for _, event_id, rev in alerts:
        revs[event_id].add(rev)
    unpublished = {
        e["event_id"]: gone
        for e in events
        if (gone := [r for r in range(1, int(e["rev"]) + 1) if r not in revs[e["event_id"]]])
    }
    fire_alarms: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if e["type"] == "FIRE_ALARM":
            fire_alarms[e["device_id"]].append(e["event_id"])
    repeats = sum(n - 1 for n in Counter(alerts).values())
    return AlertAccount(len(events), dict(fire_alarms), unpublished, len(alerts), repeats)
