"""The traffic runner against the real broker: every message arrives, at the requested rate."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from devices import KIND_BY_NAME, MAX_PAYLOAD, Registry, Topics, is_identifier
from firegrid import cli_simulate
from firegrid._services import Mosquitto
from simulators import RunOptions, parse_mqtt_url, run_traffic, write_world
from tests.helpers import eventually


class Subscriber:
    """Every message on the prefix's readings topics (``{prefix}fire/#``)."""

    def __init__(self, url: str, prefix: str) -> None:
        host, port, user, password = parse_mqtt_url(url)
        self.prefix = prefix
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, password)
        subscription = Topics(prefix).readings_subscription
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(subscription, 1)
        self.client.on_subscribe = lambda c, u, m, r, p: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.ready.wait(10), "subscription not confirmed"

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, seed=11)  # the reference district: 9,468 devices
    return out


@pytest.fixture
def subscriber(broker: Mosquitto, topic_prefix: str) -> Iterator[Subscriber]:
    sub = Subscriber(broker.url_as(INGEST_ACCOUNT), topic_prefix)
    yield sub
    sub.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_short_run_delivers_every_message_at_the_requested_rate(
    broker: Mosquitto, world: Path, subscriber: Subscriber, topic_prefix: str, qos: int
) -> None:
    summary = run_traffic(
        RunOptions(
            registry=world,
            url=broker.url_as(SIMULATOR_ACCOUNT),
            rate=2000,
            duration=2.0,
            qos=qos,
            prefix=topic_prefix,
            progress=False,
        )
    )
    assert summary.sent == 4000 and summary.errors == 0 and summary.unacked == 0
    assert summary.achieved_rate == pytest.approx(2000, rel=0.05)
    assert sum(summary.per_kind.values()) == 4000
    eventually(lambda: subscriber.count() >= 4000, timeout=20, what="all 4000 messages at the subscriber")
    registry = Registry.load(world)
    topics = Topics(topic_prefix)
    devices: set[str] = set()
    for topic, payload in subscriber.messages:
        parts = topics.parse_device(topic)
        assert parts is not None and is_identifier(parts.district) and is_identifier(parts.device_id), topic
        device = registry.device(parts.device_id)
        assert device is not None and device.kind == parts.kind and device.district == parts.district
        KIND_BY_NAME[parts.kind].adapter.validate_json(payload)
        devices.add(parts.device_id)
    assert len(devices) > 1000  # spread over thousands of devices, not a few
    assert subscriber.count() == 4000  # and nothing extra


def test_seq_increases_per_device(
    broker: Mosquitto, world: Path, subscriber: Subscriber, topic_prefix: str
) -> None:
    run_traffic(
        RunOptions(
            registry=world,
            url=broker.url_as(SIMULATOR_ACCOUNT),
            rate=3000,
            duration=1.0,
            qos=1,
            prefix=topic_prefix,
            progress=False,
            seq_start=10,
        )
    )
    eventually(lambda: subscriber.count() >= 3000, timeout=20, what="3000 messages")
    last: dict[str, tuple[int, int]] = {}
    for topic, payload in subscriber.messages:
        message = orjson.loads(payload)
        previous = last.get(topic)
        if previous is not None:
            assert message["seq"] > previous[0] and message["ts"] > previous[1]
        else:
            assert message["seq"] >= 10
        last[topic] = (message["seq"], message["ts"])


def test_scenario_run_writes_truth_and_sends_its_messages(
    broker: Mosquitto, world: Path, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    truth = tmp_path / "truth.jsonl"
    summary = run_traffic(
        RunOptions(
            registry=world,
            url=broker.url_as(SIMULATOR_ACCOUNT),
            rate=1500,
            duration=4.0,
            qos=1,
            prefix=topic_prefix,
            progress=False,
            scenario="hostile",
            truth=truth,
        )
    )
    lines = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    rejects = [line for line in lines if "reject" in line]
    assert len(rejects) == summary.truth_rejects > 20
    eventually(lambda: subscriber.count() >= summary.sent, timeout=20, what="every message")
    topics = {topic for topic, _ in subscriber.messages}
    for reject in rejects:
        assert reject["topic"] in topics
        assert reject["topic"].startswith(topic_prefix)
    oversize = [p for t, p in subscriber.messages if len(p) > MAX_PAYLOAD]
    assert len(oversize) == 1


def test_cli_run_and_errors(
    broker: Mosquitto,
    world: Path,
    subscriber: Subscriber,
    topic_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli_simulate.main(
        [
            "simulate",
            "run",
            "--registry",
            str(world),
            "--url",
            broker.url_as(SIMULATOR_ACCOUNT),
            "--rate",
            "500",
            "--duration",
            "1",
            "--prefix",
            topic_prefix,
            "--no-progress",
            "--qos",
            "1",
        ]
    )
    assert code == 0
    eventually(lambda: subscriber.count() >= 500, timeout=20, what="500 messages")
    out = capsys.readouterr().out
    assert "500 messages" in out and "msg/s achieved" in out
    assert (
        cli_simulate.main(["simulate", "run", "--registry", str(world), "--url", "mqtt://127.0.0.1:1"]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "firegrid simulate: error: cannot connect to the MQTT broker at 127.0.0.1:1: "
        "[Errno 111] Connection refused"
    ]


@pytest.mark.parametrize("with_prefix", [False, True], ids=["url-only", "url-and-prefix"])
def test_cli_reaches_the_broker_of_the_ingest_settings(
    broker: Mosquitto, world: Path, topic_prefix: str, tmp_path: Path, with_prefix: bool
) -> None:
    """As in docker-compose: `firegrid simulate run` without --url, with FIREGRID_MQTT_URL (and
    FIREGRID_TOPIC_PREFIX) only, publishes to that broker."""
    prefix = topic_prefix if with_prefix else ""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FIREGRID_")}
    env["FIREGRID_MQTT_URL"] = broker.url_as(SIMULATOR_ACCOUNT)
    if with_prefix:
        env["FIREGRID_TOPIC_PREFIX"] = prefix
    command = [sys.executable, "-m", "firegrid", "simulate", "run", "--registry", str(world)]
    command += ["--rate", "300", "--duration", "1", "--qos", "1", "--no-progress"]  # no --url
    subscriber = Subscriber(broker.url_as(INGEST_ACCOUNT), prefix)
    try:
        log = tmp_path / "simulate.log"
        with log.open("wb") as out:
            proc = subprocess.run(
                command,
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=120,
                check=False,
            )
        assert proc.returncode == 0, log.read_text()
        assert "300 messages" in log.read_text()
        eventually(lambda: subscriber.count() >= 300, timeout=20, what="300 messages at the subscriber")
        registry = Registry.load(world)
        topics = Topics(prefix)
        for topic, _ in subscriber.messages:
            parts = topics.parse_device(topic)
            assert parts is not None and registry.device(parts.device_id) is not None, topic
        assert subscriber.count() == 300
    finally:
        subscriber.close()
