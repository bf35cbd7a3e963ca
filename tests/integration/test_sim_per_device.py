"""The simulator with per-device credentials against a real mosquitto running the files of
`firegrid credentials`: every device signs in as itself and publishes only its own topic.

"Nothing else delivered" is proven with a marker: once every QoS 1 publish of the run has its
PUBACK, the broker has routed it; a marker published afterwards arrives after all of them.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from access import INGEST_ACCOUNT, SERVICE_ACCOUNTS, make_credentials
from devices import Registry, Topics
from firegrid import cli_simulate
from firegrid._services import Mosquitto
from simulators import (
    DeviceConnections,
    MissingPasswordsError,
    RunOptions,
    RunSummary,
    run_traffic,
    write_world,
)
from tests.helpers import eventually

PREFIX = "pd/"
TOPICS = Topics(PREFIX)
TOPIC_CASES = {
    "kind_mismatch",
    "district_mismatch",
    "unknown_device",
    "unknown_kind",
    "short_topic",
    "long_topic",
    "topic_injection",
}
"""The hostile cases that publish on a topic that is not their sender's own."""
CLI = ["simulate", "run", "--prefix", PREFIX, "--rate", "500", "--duration", "1", "--no-progress"]


def read_secrets(credentials: Path) -> dict[str, str]:
    with (credentials / "secrets.csv").open(newline="") as handle:
        return {row["principal"]: row["password"] for row in csv.DictReader(handle)}


def write_secrets(credentials: Path, passwords: dict[str, str]) -> None:
    credentials.mkdir(parents=True, exist_ok=True)
    with (credentials / "secrets.csv").open("w", newline="") as handle:
        rows = csv.writer(handle, lineterminator="\n")
        rows.writerow(("principal", "role", "password"))
        rows.writerows((name, "device", password) for name, password in passwords.items())


class Subscriber:
    """Every message on ``{PREFIX}fire/#``, as ``firegrid`` (ingest's account) sees them."""

    def __init__(self, port: int, password: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(INGEST_ACCOUNT, password)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(TOPICS.readings_subscription, 1)
        self.client.on_subscribe = lambda c, u, m, r, p: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10), "subscription not confirmed"

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def received(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.messages)

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Deployment:
    world: Path
    registry: Registry
    credentials: Path
    passwords: dict[str, str]
    broker: Mosquitto
    subscriber: Subscriber

    @property
    def url(self) -> str:
        """The broker, without a user: each device signs in as itself."""
        return f"mqtt://127.0.0.1:{self.broker.port}"

    def own_topic(self, device_id: str) -> str:
        device = self.registry.device(device_id)
        assert device is not None
        return TOPICS.device(device.district, device.kind, device.device_id)

    def marker(self) -> list[tuple[str, bytes]]:
        """Publish a marker as a device on its own topic and return what arrived up to it."""
        device = next(iter(self.registry.slot_of))
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.username_pw_set(device, self.passwords[device])
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        try:
            body = b'{"marker": true}'
            client.publish(self.own_topic(device), body, qos=1).wait_for_publish(10)
            eventually(
                lambda: (self.own_topic(device), body) in self.subscriber.received(), 10, what="marker"
            )
        finally:
            client.disconnect()
            client.loop_stop()
        received = self.subscriber.received()
        return received[: received.index((self.own_topic(device), body))]

    def run(self, **options: object) -> RunSummary:
        defaults: dict[str, object] = {
            "registry": self.world,
            "url": self.url,
            "rate": 1000.0,
            "duration": 2.0,
            "qos": 1,
            "prefix": PREFIX,
            "progress": False,
            "credentials": self.credentials,
        }
        return run_traffic(RunOptions(**{**defaults, **options}))  # type: ignore[arg-type]


def deploy(root: Path, world: Path) -> Deployment:
    credentials = root / "credentials"
    make_credentials(world, credentials, topic_prefix=PREFIX)
    passwords = read_secrets(credentials)
    broker = Mosquitto(
        root / "broker",
        credentials=credentials,
        passwords={name: passwords[name] for name in SERVICE_ACCOUNTS},
    )
    broker.start()
    try:
        subscriber = Subscriber(broker.port, passwords[INGEST_ACCOUNT])
    except BaseException:
        broker.stop()
        raise
    return Deployment(world, Registry.load(world), credentials, passwords, broker, subscriber)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, scale=0.02, seed=5)  # 22 grids, ~190 devices
    return out


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, world: Path) -> Iterator[Deployment]:
    deployed = deploy(tmp_path_factory.mktemp("per-device"), world)
    yield deployed
    deployed.subscriber.close()
    deployed.broker.stop()


@pytest.fixture
def fresh(deployment: Deployment) -> Deployment:
    deployment.subscriber.clear()
    return deployment


@pytest.mark.parametrize("qos", [0, 1])
def test_every_device_publishes_its_own_topic_as_itself(fresh: Deployment, qos: int) -> None:
    summary = fresh.run(qos=qos)
    devices = len(fresh.registry.slot_of)
    assert summary.per_device and summary.devices_connected == devices > 100
    assert summary.device_failures == {} and summary.warnings == ()
    assert (summary.sent, summary.errors, summary.unacked, summary.refused) == (2000, 0, 0, 0)
    assert sum(summary.per_kind.values()) == 2000
    received = eventually(
        lambda: len(got := fresh.subscriber.received()) >= 2000 and got, 20, what="every message"
    )
    if qos:  # every publish was acknowledged, so the marker comes after all of them
        received = fresh.marker()
    assert len(received) == 2000
    senders: set[str] = set()
    for topic, payload in received:
        parts = TOPICS.parse_device(topic)
        assert parts is not None, topic
        assert topic == fresh.own_topic(parts.device_id)  # the registry row's topic
        assert orjson.loads(payload)["seq"] > 0
        senders.add(parts.device_id)
    assert len(senders) > 50  # spread over the devices, each through its own login


def test_hostile_topics_are_refused_by_the_broker_and_the_truth_says_so(
    fresh: Deployment, tmp_path: Path
) -> None:
    truth = tmp_path / "truth.jsonl"
    summary = fresh.run(scenario="hostile", rate=600.0, duration=4.0, qos=0, truth=truth)
    lines = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    rejects = [line for line in lines if "reject" in line]
    refused = [line for line in lines if "refused" in line]
    assert {line["case"] for line in refused} == TOPIC_CASES
    assert not TOPIC_CASES & {line["case"] for line in rejects}
    assert (summary.truth_rejects, summary.truth_refused) == (len(rejects), len(refused))
    # sent at QoS 1 whatever the run's QoS, so the broker's answer is known: 0x87 for each
    assert summary.refused == len(refused) and summary.refused_unexpected == 0
    assert summary.errors == summary.unacked == 0 and summary.device_failures == {}
    assert summary.warnings == ()
    assert "hostile" in summary.per_kind  # the hostile messages on their own topics count as sent
    for line in refused:
        assert line["refused"] == "not_authorized" and line["sender"] in fresh.registry.slot_of
    received = fresh.marker()
    assert len(received) == summary.sent
    topics = {topic for topic, _ in received}
    assert all(line["topic"] in topics for line in rejects)  # they reach ingest, which rejects them
    assert not topics & {line["topic"] for line in refused}  # these never reach ingest


def test_a_wrong_password_is_reported_with_its_fix(
    fresh: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = next(d for d in fresh.registry.slot_of if "-EM" in d)  # electrical: most of the traffic
    passwords = {d: fresh.passwords[d] for d in fresh.registry.slot_of}
    passwords[victim] = "not-" + passwords[victim]
    stale = tmp_path / "stale-credentials"
    write_secrets(stale, passwords)

    summary = fresh.run(credentials=stale)
    assert summary.devices_connected == len(passwords) - 1
    # mosquitto 2.0 answers a wrong password with 0x87 (not authorised), not 0x86
    (failure,) = summary.device_failures.items()
    assert failure == (victim, "the broker refused its login: Not authorized")
    assert 0 < summary.errors < 200  # the victim's share of the traffic, not sent
    assert summary.sent == 2000 and summary.unacked == 0  # the errors count as sent, as before
    (warning,) = summary.warnings
    assert f"({victim})" in warning and f"--rotate {victim}" in warning and "reload the broker" in warning
    received = fresh.marker()
    assert len(received) == summary.sent - summary.errors
    assert not any(topic == fresh.own_topic(victim) for topic, _ in received)

    monkeypatch.setenv("COLUMNS", "500")  # the summary table on one line per row
    code = cli_simulate.main(
        [
            *CLI,
            "--registry",
            str(fresh.world),
            "--url",
            fresh.url,
            "--per-device",
            "--credentials",
            str(stale),
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert f"could not publish ({victim}): the broker refused its login: Not authorized" in out
    command = f"firegrid credentials --registry {fresh.world} --out {stale} --topic-prefix {PREFIX}"
    assert f"{command} --rotate {victim}" in out


def test_a_device_missing_from_secrets_is_one_error_naming_it(
    fresh: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = sorted(fresh.registry.slot_of)[3]
    partial = tmp_path / "partial"
    write_secrets(partial, {d: fresh.passwords[d] for d in fresh.registry.slot_of if d != absent})
    with pytest.raises(MissingPasswordsError) as caught:
        fresh.run(credentials=partial)
    message = str(caught.value)
    assert f"no password for device {absent} of the registry" in message
    assert f"--rotate {absent}'" in message

    code = cli_simulate.main(
        [
            *CLI,
            "--registry",
            str(fresh.world),
            "--url",
            fresh.url,
            "--per-device",
            "--credentials",
            str(partial),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(
        f"firegrid simulate: error: {partial}/secrets.csv has no password for device {absent}"
    )
    assert fresh.subscriber.received() == []  # refused before connecting


def test_a_password_rotated_while_connected_is_reported(world: Path, tmp_path: Path) -> None:
    """Own broker, since the rotation changes its passwd: mosquitto drops the device on SIGHUP, and
    its reconnect with the old password is refused; the other devices carry on."""
    deployed = deploy(tmp_path, world)
    try:
        devices = sorted(d for d in deployed.registry.slot_of if "-EM" in d)[:3]
        victim, others = devices[0], devices[1:]
        connections = DeviceConnections(
            "127.0.0.1", deployed.broker.port, [(d, deployed.passwords[d]) for d in devices], qos=1
        )
        try:
            connections.open()
            assert connections.connected == 3 and connections.failures == {}
            make_credentials(world, deployed.credentials, rotate=[victim], topic_prefix=PREFIX)
            deployed.broker.reload()

            def victim_failed() -> bool:
                connections.service(0.05)
                return victim in connections.failures

            eventually(victim_failed, timeout=30, what=f"{victim}'s reconnect refused")
            assert connections.failures == {
                victim: "the broker refused its login when it reconnected: Not authorized"
            }
            assert not connections.publish(0, deployed.own_topic(victim), b"{}", "electrical")
            assert connections.unsent == {victim: 1}
            for i, device in enumerate(others, start=1):
                assert connections.publish(i, deployed.own_topic(device), b'{"seq": 1}', "electrical")
            assert connections.drain(10) == 0 and connections.refusals == []
        finally:
            connections.close()
        eventually(
            lambda: {t for t, _ in deployed.subscriber.received()} == {deployed.own_topic(d) for d in others},
            timeout=10,
            what="the other devices' messages",
        )
    finally:
        deployed.subscriber.close()
        deployed.broker.stop()
