"""A real mosquitto running the passwd and acl of `firegrid credentials` (CONTRACT §10): the
suite's broker (``firegrid._services.Mosquitto``) given a credentials directory of its own.

"Nothing delivered" is proven with a marker: after the forbidden messages, an allowed one is
published on the same connection; once it has arrived, anything earlier would have too.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from access import PasswordFile, hash_password, write_credentials
from devices import Registry, Topics
from firegrid._services import Mosquitto
from tests.helpers import eventually, write_registry
from tests.mqtt import ProbeClient
from tests.unit.access.test_hashing import mosquitto_passwd

PREFIX = "acl-t/"
T = Topics(PREFIX)
NOT_AUTHORIZED = 0x87


class Deployment:
    """The small test registry, its credentials under PREFIX, and a broker that uses them."""

    def __init__(self, root: Path) -> None:
        self.registry = Registry.load(write_registry(root / "registry"))
        self.credentials = root / "credentials"
        write_credentials(self.registry, self.credentials, topic_prefix=PREFIX)
        self.passwords = read_secrets(self.credentials)
        self.broker = Mosquitto(root / "broker", credentials=self.credentials, passwords=self.passwords)
        self.broker.start()
        self.clients: list[ProbeClient] = []

    def connect(self, user: str | None, password: str | None = None) -> ProbeClient:
        client = ProbeClient(self.broker.port, user, password)
        self.clients.append(client)
        return client

    def login(self, user: str) -> ProbeClient:
        client = self.connect(user, self.passwords[user])
        assert client.accepted, (user, client.connack)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.broker.stop()


def read_secrets(credentials: Path) -> dict[str, str]:
    with (credentials / "secrets.csv").open(newline="") as handle:
        return {row["principal"]: row["password"] for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployed = Deployment(tmp_path_factory.mktemp("broker-acl"))
    yield deployed
    deployed.close()


def test_every_principal_signs_in_with_its_generated_password(deployment: Deployment) -> None:
    assert len(deployment.passwords) == 22
    for user, password in deployment.passwords.items():
        client = ProbeClient(deployment.broker.port, user, password)
        try:
            assert client.accepted, (user, client.connack)
        finally:
            client.close()


def test_anonymous_wrong_password_and_strangers_are_refused(deployment: Deployment) -> None:
    good = deployment.passwords["W1"]
    for user, password in ((None, None), ("W1", good + "x"), ("W1", ""), ("W2", good), ("nobody", good)):
        client = deployment.connect(user, password)
        assert client.connack is not None and client.connack.is_failure, (user, client.connack)


def test_devices_publish_only_on_their_own_registry_topic(deployment: Deployment) -> None:
    ingest = deployment.login("firegrid")
    ingest.subscribe(T.readings_subscription)
    device = deployment.login("S0000")
    own = T.device("D01", "smoke", "S0000")
    forbidden = (
        T.device("D01", "smoke", "S0001"),  # another device's topic
        T.device("D02", "smoke", "S0000"),  # another district
        T.device("D01", "water", "S0000"),  # another kind
        "fire/D01/smoke/S0000",  # without the deployment's prefix
        T.grid("D01", "D01-G00"),  # an alert
        T.actions("W0"),
    )
    for topic in forbidden:
        assert device.publish(topic, b"forged") == NOT_AUTHORIZED, topic
    assert device.publish(own, b"reading") == 0
    assert device.publish(own, b"marker") == 0
    assert ingest.wait_for(own, b"marker") == [(own, b"reading"), (own, b"marker")]


def test_devices_and_stations_read_nothing_else(deployment: Deployment) -> None:
    device = deployment.login("E0001")
    device.subscribe("#", T.alerts_subscription, T.readings_subscription)
    station = deployment.login("D01-ST1")
    station.subscribe("#", T.alerts_subscription)
    witness = deployment.login("firegrid-sim")  # reads alerts/#; the marker reaches it last
    witness.subscribe(T.alerts_subscription)
    ingest = deployment.login("firegrid")
    for topic in (T.grid("D01", "D01-G00"), T.station("D01-ST2"), T.escalations("D01")):
        assert ingest.publish(topic, b"alert") == 0
    deployment.login("S0002").publish(T.device("D01", "smoke", "S0002"), b"reading")
    assert ingest.publish(T.station("D01-ST1"), b"marker") == 0
    # once per matching subscription ('#' and alerts/#): mosquitto does not merge overlapping ones
    assert set(station.wait_for(T.station("D01-ST1"), b"marker")) == {(T.station("D01-ST1"), b"marker")}
    witness.wait_for(T.station("D01-ST1"), b"marker")
    assert device.received() == []


def test_workers_read_their_own_grids_only(deployment: Deployment) -> None:
    worker = deployment.login("W1")  # listed in D01-G01 only
    worker.subscribe(T.grid("D01", "D01-G00"), T.alerts_subscription)
    ingest = deployment.login("firegrid")
    for topic in (
        T.grid("D01", "D01-G00"),
        T.grid("D01", "D01-G03"),
        T.station("D01-ST1"),
        T.escalations("D01"),
    ):
        assert ingest.publish(topic, b"not yours") == 0
    assert ingest.publish(T.action_result("W2"), b"not yours") == 0
    assert ingest.publish(T.grid("D01", "D01-G01"), b"yours") == 0
    received = worker.wait_for(T.grid("D01", "D01-G01"), b"yours")
    assert received == [(T.grid("D01", "D01-G01"), b"yours")]


def test_workers_act_only_as_themselves(deployment: Deployment) -> None:
    ingest = deployment.login("firegrid")
    ingest.subscribe(T.actions_subscription)
    worker = deployment.login("W1")
    worker.subscribe(T.action_result("W1"))
    for topic in (T.actions("W2"), T.actions("SUP1"), T.grid("D01", "D01-G01"), T.action_result("W1")):
        assert worker.publish(topic, b"forged") == NOT_AUTHORIZED, topic
    assert worker.publish(T.actions("W1"), b"ack") == 0
    assert ingest.wait_for(T.actions("W1"), b"ack") == [(T.actions("W1"), b"ack")]
    assert ingest.publish(T.action_result("W1"), b"ok") == 0
    assert worker.wait_for(T.action_result("W1"), b"ok") == [(T.action_result("W1"), b"ok")]


def test_supervisors_read_every_alert(deployment: Deployment) -> None:
    supervisor = deployment.login("SUP1")  # listed in G00 and G02
    supervisor.subscribe(T.alerts_subscription)
    ingest = deployment.login("firegrid")
    topics = [
        T.grid("D01", "D01-G01"),
        T.grid("D01", "D01-G03"),
        T.station("D01-ST2"),
        T.escalations("D01"),
        T.grid("D02", "D02-G00"),
    ]
    for topic in topics:
        assert ingest.publish(topic, b"alert") == 0
    assert ingest.publish(T.grid("D01", "D01-G00"), b"marker") == 0
    received = supervisor.wait_for(T.grid("D01", "D01-G00"), b"marker")
    assert received == [(topic, b"alert") for topic in topics] + [(T.grid("D01", "D01-G00"), b"marker")]


def test_rotation_takes_effect_on_sighup(tmp_path: Path) -> None:
    deployed = Deployment(tmp_path)
    try:
        old = deployed.passwords["W1"]
        assert deployed.connect("W1", old).accepted
        write_credentials(deployed.registry, deployed.credentials, rotate=["W1"], topic_prefix=PREFIX)
        new = read_secrets(deployed.credentials)["W1"]
        deployed.broker.reload()
        eventually(lambda: deployed.connect("W1", new).accepted, timeout=10, what="rotated password accepted")
        assert not deployed.connect("W1", old).accepted
        assert deployed.connect("W2", deployed.passwords["W2"]).accepted  # the others are kept
    finally:
        deployed.close()


def test_password_file_reads_passwd_as_mosquitto_does(tmp_path: Path) -> None:
    """mosquitto_passwd's $7$ and $6$ lines, ours, a comment, CRLF, a user listed twice: the broker
    and PasswordFile accept exactly the same (user, password) pairs."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "acl").write_text("")  # no rule: only signing in is checked here
    passwd = credentials / "passwd"
    subprocess.run([mosquitto_passwd(), "-c", "-b", str(passwd), "tool7", "pw-7"], check=True)
    subprocess.run([mosquitto_passwd(), "-H", "sha512", "-b", str(passwd), "tool6", "pw-6"], check=True)
    with passwd.open("ab") as handle:
        handle.write(f"# ours:{hash_password('pw-c')}\n".encode())
        handle.write(f"ours:{hash_password('pw-o')}\r\n".encode())
        handle.write(f"twice:{hash_password('pw-1')}\ntwice:{hash_password('pw-2')}\n".encode())
    broker = Mosquitto(tmp_path / "broker", credentials=credentials)
    broker.start()
    candidates = [
        ("tool7", "pw-7"),
        ("tool6", "pw-6"),
        ("ours", "pw-o"),
        ("twice", "pw-1"),
        ("twice", "pw-2"),
        ("tool7", "pw-6"),
        ("# ours", "pw-c"),
        ("ours", "pw-o\r"),
    ]
    try:
        with PasswordFile(passwd) as passwords:
            for user, password in candidates:
                client = ProbeClient(broker.port, user, password)
                client.close()
                assert passwords.check(user, password) == client.accepted, (user, client.connack)
            accepted: Callable[[str, str], bool] = passwords.check
            assert [pair for pair in candidates if accepted(*pair)] == [
                ("tool7", "pw-7"),
                ("tool6", "pw-6"),
                ("ours", "pw-o"),
                ("twice", "pw-2"),
            ]
    finally:
        broker.stop()
