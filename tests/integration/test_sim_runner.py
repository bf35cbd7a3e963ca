"""The traffic runner against the real broker: every message arrives, at the requested rate."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices import KIND_BY_NAME, Registry
from firegrid import cli_simulate
from firegrid._services import Mosquitto
from simulators import RunOptions, parse_mqtt_url, run_traffic, write_world
from tests.helpers import eventually

TOPIC = re.compile(
    r"^fire/(?P<district>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})/(?P<kind>smoke|electrical|water|patrol)/"
    r"(?P<device>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$"
)


class Subscriber:
    def __init__(self, url: str, prefix: str) -> None:
        host, port, _, _ = parse_mqtt_url(url)
        self.prefix = prefix
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(f"{prefix}#", 1)
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
    sub = Subscriber(broker.url, topic_prefix)
    yield sub
    sub.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_short_run_delivers_every_message_at_the_requested_rate(
    broker: Mosquitto, world: Path, subscriber: Subscriber, topic_prefix: str, qos: int
) -> None:
    summary = run_traffic(
        RunOptions(
            registry=world,
            url=broker.url,
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
    devices: set[str] = set()
    for topic, payload in subscriber.messages:
        match = TOPIC.match(topic.removeprefix(topic_prefix))
        assert match is not None, topic
        device = registry.device(match["device"])
        assert device is not None and device.kind == match["kind"] and device.district == match["district"]
        KIND_BY_NAME[match["kind"]].adapter.validate_json(payload)
        devices.add(match["device"])
    assert len(devices) > 1000  # spread over thousands of devices, not a few
    assert subscriber.count() == 4000  # and nothing extra


def test_seq_increases_per_device(
    broker: Mosquitto, world: Path, subscriber: Subscriber, topic_prefix: str
) -> None:
    run_traffic(
        RunOptions(
            registry=world,
            url=broker.url,
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
            url=broker.url,
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
    oversize = [p for t, p in subscriber.messages if len(p) > 256 * 1024]
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
            broker.url,
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
