"""deploy/mosquitto.conf on a real mosquitto, with the files docker-compose.yml gives it.

The compose services' own scripts run here: `tls` (openssl: a private CA and the broker's
certificate) and `credentials` (`firegrid credentials`, the service accounts' rows carried,
ownership), on temporary directories standing in for their volumes. mosquitto then runs a copy
of deploy/mosquitto.conf whose container paths are mapped through the compose file's mounts of
the mosquitto service, on free ports. Run as root (as the image's entrypoint is), mosquitto
drops to the local ``mosquitto`` user, which plays uid 1883: ``chown`` is mapped onto it, so the
ownership the scripts give is what lets the broker read its files. Otherwise the scripts'
``chown`` calls are only recorded.
"""

from __future__ import annotations

import csv
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from firegrid._services import free_port
from tests.helpers import eventually, write_registry
from tests.unit.test_deploy import (
    ROOT,
    compose_healthcheck_command,
    compose_script,
    firegrid_uid,
    load_compose,
    volume_mounts,
)

MOSQUITTO_BIN = "/usr/sbin/mosquitto"
NOT_AUTHORISED = 5  # MQTT 3.1.1 CONNACK return code
DEADLINE_S = 20.0


def _mosquitto_user() -> tuple[int, int] | None:
    """uid and gid of the local ``mosquitto`` user when this test runs as root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("mosquitto")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


BROKER_USER = _mosquitto_user()


@dataclass
class Deployment:
    """Stand-ins for the `registry`, `credentials` and ./deploy/tls volumes, and the scripts."""

    root: Path
    ownership_log: Path = field(init=False)
    bin: Path = field(init=False)

    def __post_init__(self) -> None:
        self.registry = write_registry(self.root / "registry")
        self.credentials = self.root / "credentials"
        self.tls = self.root / "tls"
        self.data = self.root / "data"
        for directory in (self.credentials, self.tls, self.data):
            directory.mkdir()
        self.ownership_log = self.root / "chown.log"
        self.bin = self.root / "bin"
        self.bin.mkdir()
        mapped = f"{BROKER_USER[0]}:{BROKER_USER[1]}" if BROKER_USER else ""
        stub = self.bin / "chown"
        stub.write_text(
            f"#!{sys.executable}\n"
            "import os, sys\n"
            f"with open({str(self.ownership_log)!r}, 'a') as log:\n"
            "    log.write(' '.join(sys.argv[1:]) + '\\n')\n"
            f"mapped = {mapped!r}\n"
            "if mapped:\n"
            "    owner, group = mapped.split(':')\n"
            "    spec = sys.argv[1].replace('1883:1883', mapped).replace(':1883', ':' + group)\n"
            "    os.execv('/bin/chown', ['chown', spec, *sys.argv[2:]])\n"
        )
        stub.chmod(0o755)
        if BROKER_USER:
            os.chown(self.data, *BROKER_USER)

    def _run(self, service: str, paths: dict[str, Path], args: tuple[str, ...], env: dict[str, str]) -> str:
        script = compose_script(service)
        for container, local in paths.items():
            script = re.sub(rf"(?<![\w/.-]){re.escape(container)}(?![\w.-])", str(local), script)
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FIREGRID_")},
            **env,
            "PATH": f"{self.bin}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        done = subprocess.run(
            ["sh", "-c", script, service, *args],
            check=False,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise ScriptFailed(done.returncode, done.stdout + done.stderr)
        return done.stdout + done.stderr

    def make_tls(self, san: str | None = None) -> str:
        """The `tls` service, with its default subjectAltName unless ``san``."""
        return self._run("tls", {"/tls": self.tls}, (), {"MQTT_TLS_SAN": san or default_san()})

    def make_credentials(self, *args: str) -> str:
        """The `credentials` service, with extra arguments of `firegrid credentials`."""
        return self._run(
            "credentials", {"/registry": self.registry, "/credentials": self.credentials}, args, {}
        )

    def secrets(self) -> dict[str, str]:
        with (self.credentials / "secrets.csv").open(newline="") as handle:
            return {row["principal"]: row["password"] for row in csv.DictReader(handle)}

    def ownership(self) -> list[str]:
        return self.ownership_log.read_text().splitlines() if self.ownership_log.exists() else []


class PortTaken(Exception):
    pass


class ScriptFailed(Exception):
    def __init__(self, code: int, output: str) -> None:
        super().__init__(f"exit {code}: {output}")
        self.code = code
        self.output = output


def default_san() -> str:
    value = load_compose()["services"]["tls"]["environment"]["MQTT_TLS_SAN"]
    match = re.fullmatch(r"\$\{MQTT_TLS_SAN:-(.+)\}", value)
    assert match, value
    return match[1]


class Broker:
    """mosquitto on a copy of deploy/mosquitto.conf: container paths mapped through compose's
    mounts of the mosquitto service, the listeners on free local ports."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        # a log file, not stdout: mosquitto flushes it line by line (stdout to a file is buffered)
        self.log_path = deployment.root / "mosquitto.log"
        self.config = deployment.root / "mosquitto.conf"
        self.output_path = deployment.root / "mosquitto.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.plain_port = self.tls_port = 0

    def _configure(self) -> None:
        """The shipped conf with this run's paths and two free ports."""
        self.plain_port, self.tls_port = free_port(), free_port()
        mounts = volume_mounts("mosquitto")
        local = {"credentials": self.deployment.credentials, "./deploy/tls": self.deployment.tls}
        lines = []
        for shipped in (ROOT / "deploy/mosquitto.conf").read_text().splitlines():
            words = shipped.split()
            line = shipped
            if words[:2] == ["listener", "1883"]:
                line = f"listener {self.plain_port} 127.0.0.1"
            elif words[:2] == ["listener", "8883"]:
                line = f"listener {self.tls_port} 127.0.0.1"
            elif len(words) == 2 and words[1].startswith("/"):
                target = next(t for t in mounts if words[1].startswith(t + "/"))
                line = f"{words[0]} {local[mounts[target]]}{words[1][len(target) :]}"
            lines.append(line)
        self.log_path.write_text("")
        if BROKER_USER:
            os.chown(self.log_path, *BROKER_USER)
        lines += [f"persistence_location {self.deployment.data}/", f"log_dest file {self.log_path}"]
        if BROKER_USER is None and os.geteuid() == 0:
            lines.append("user root")  # no mosquitto user here to play uid 1883
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, attempts: int = 3) -> None:
        """Start, and wait (with a deadline) for mosquitto's own "running" line. A port taken
        between free_port() and mosquitto's bind (other suites run alongside) means new ports."""
        assert Path(MOSQUITTO_BIN).is_file(), "mosquitto is missing: run 'make setup'"
        for attempt in range(attempts):
            self._configure()
            with self.output_path.open("wb") as output:
                self.proc = subprocess.Popen(
                    [MOSQUITTO_BIN, "-c", str(self.config)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                eventually(self._running, timeout=DEADLINE_S, what="mosquitto running")
                return
            except PortTaken:
                if attempt == attempts - 1:
                    raise

    def _running(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            said = self.output_path.read_text(errors="replace") + self.log()
            if "Address already in use" in said:
                raise PortTaken(said)
            raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {said}")
        return " running" in self.log()

    def hup(self) -> None:
        """SIGHUP, then wait until mosquitto logs the reload (with a deadline). It logs before
        rereading the files, in the same step of its single-threaded loop, so a connection made
        after the line is handled with the new files."""
        assert self.proc is not None
        before = self.log().count("Reloading config")
        self.proc.send_signal(signal.SIGHUP)
        eventually(
            lambda: self.log().count("Reloading config") > before,
            timeout=DEADLINE_S,
            what="mosquitto reloaded its config",
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    if BROKER_USER is None:
        yield Deployment(tmp_path)
        return
    # the broker's user must reach the files: a directory outside root's private tmp_path
    root = Path(tempfile.mkdtemp(prefix="firegrid-deploy-"))
    root.chmod(0o755)
    try:
        yield Deployment(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker(deployment: Deployment) -> Iterator[Broker]:
    deployment.make_tls()
    deployment.make_credentials()
    server = Broker(deployment)
    server.start()
    yield server
    server.stop()


# --- clients ----------------------------------------------------------------------------------


def tls_context(ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def raw_connack(port: int, context: ssl.SSLContext | None = None) -> int:
    """The CONNACK return code for an anonymous MQTT 3.1.1 CONNECT (what the compose health
    check's mosquitto_sub sends)."""
    connect = bytes([0x10, 12, 0, 4, *b"MQTT", 4, 0x02, 0, 60, 0, 0])  # clean session, empty id
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as plain:
        sock = context.wrap_socket(plain, server_hostname="localhost") if context else plain
        sock.sendall(connect)
        answer = b""
        while len(answer) < 4:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                break
            answer += chunk
    assert answer[:2] == b"\x20\x02", answer
    return answer[3]


class Client:
    """A paho client (MQTT 5) that waits for its CONNACK and records messages."""

    def __init__(
        self,
        port: int,
        user: str,
        password: str,
        *,
        ca: Path | None = None,
        tls: bool = False,
        host: str = "localhost",
    ) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set_context(tls_context(ca))
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.arrived = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.connected.wait(DEADLINE_S), f"no CONNACK for {user}"

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self.connack = reason
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.arrived:
            self.messages.append((message.topic, bytes(message.payload)))
            self.arrived.notify_all()

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(DEADLINE_S), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(DEADLINE_S)

    def wait_for(self, topic: str, payload: bytes) -> None:
        with self.arrived:
            ok = self.arrived.wait_for(lambda: (topic, payload) in self.messages, timeout=DEADLINE_S)
        assert ok, f"{topic} did not arrive; got {self.messages}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_topic(registry: Path, device_id: str) -> str:
    with (registry / "devices.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["device_id"] == device_id)
    return f"fire/{row['district']}/{row['kind']}/{device_id}"


def reading() -> bytes:
    return f'{{"ts": {int(time.time() * 1000)}, "alarm": false}}'.encode()


# --- the tls service's script -----------------------------------------------------------------


def _openssl(*args: str) -> str:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is missing (apt-get install openssl)"
    return subprocess.run([openssl, *args], capture_output=True, text=True, check=True, timeout=60).stdout


def test_tls_service_makes_a_private_ca_and_server_certificate_once(deployment: Deployment) -> None:
    tls = deployment.tls
    deployment.make_tls()
    assert {p.name for p in tls.iterdir()} == {"ca.crt", "ca.key", "server.crt", "server.key"}
    assert "OK" in _openssl("verify", "-CAfile", str(tls / "ca.crt"), str(tls / "server.crt"))
    names = _openssl("x509", "-in", str(tls / "server.crt"), "-noout", "-ext", "subjectAltName")
    assert "DNS:mosquitto" in names and "DNS:localhost" in names and "IP Address:127.0.0.1" in names
    assert (tls / "server.key").stat().st_mode & 0o777 == 0o600
    assert (tls / "ca.key").stat().st_mode & 0o777 == 0o600
    assert deployment.ownership()[-1] == "1883:1883 server.key"

    before = {p.name: p.read_bytes() for p in tls.iterdir()}
    assert "keeping" in deployment.make_tls()
    assert {p.name: p.read_bytes() for p in tls.iterdir()} == before

    # renewal: without server.*, a new server certificate from the same CA, with new names
    (tls / "server.crt").unlink()
    (tls / "server.key").unlink()
    deployment.make_tls("DNS:mqtt.example.org")
    assert (tls / "ca.crt").read_bytes() == before["ca.crt"]
    assert (tls / "server.crt").read_bytes() != before["server.crt"]
    assert "OK" in _openssl("verify", "-CAfile", str(tls / "ca.crt"), str(tls / "server.crt"))
    names = _openssl("x509", "-in", str(tls / "server.crt"), "-noout", "-ext", "subjectAltName")
    assert "DNS:mqtt.example.org" in names

    # half a set is refused rather than overwritten
    (tls / "server.key").unlink()
    with pytest.raises(ScriptFailed, match=r"needs all of ca\.crt, server\.crt, server\.key"):
        deployment.make_tls()
    assert (tls / "server.crt").exists()


# --- the credentials service's script ---------------------------------------------------------


def test_credentials_service_keeps_the_service_accounts_passwords(deployment: Deployment) -> None:
    services = ("firegrid", "firegrid-console", "firegrid-sim")
    deployment.make_credentials()
    first = deployment.secrets()
    assert set(services) < set(first) and "W0" in first and "S0000" in first
    passwd = (deployment.credentials / "passwd").read_bytes()
    assert (deployment.credentials / "secrets.csv").stat().st_mode & 0o777 == 0o600
    creds = deployment.credentials
    assert deployment.ownership() == [
        f"root:1883 {creds}",
        f"1883:1883 {creds / 'passwd'} {creds / 'acl'}",
        f"10001:1883 {creds / 'secrets.csv'}",
    ]
    for name in ("passwd", "acl"):
        assert (creds / name).stat().st_mode & 0o777 == 0o640
    assert creds.stat().st_mode & 0o777 == 0o750

    # the next run (every `docker compose up`): nothing new, nothing renewed; the service
    # accounts' rows carried, the devices' and workers' gone (handed out by now)
    output = deployment.make_credentials()
    assert "0 added, 22 kept, 0 dropped, 0 renewed" in output
    assert "credentials: renewed" not in output
    assert deployment.secrets() == {name: first[name] for name in services}
    assert (creds / "passwd").read_bytes() == passwd
    assert not list(creds.glob(".*"))

    # arguments reach `firegrid credentials`: a worker rotated, the services kept
    deployment.make_credentials("--rotate", "W0")
    secrets = deployment.secrets()
    assert set(secrets) == {*services, "W0"} and secrets["W0"] != first["W0"]
    assert all(secrets[name] == first[name] for name in services)

    # secrets.csv gone (or a service row lost): those accounts are renewed, and say so
    (creds / "secrets.csv").unlink()
    output = deployment.make_credentials()
    assert "renewed firegrid firegrid-console firegrid-sim" in output
    assert set(deployment.secrets()) == set(services)
    assert all(deployment.secrets()[name] != first[name] for name in services)


# --- mosquitto on deploy/mosquitto.conf -------------------------------------------------------


def test_shipped_conf_refuses_anonymous_clients_on_both_listeners(broker: Broker) -> None:
    ca = broker.deployment.tls / "ca.crt"
    assert raw_connack(broker.plain_port) == NOT_AUTHORISED
    assert raw_connack(broker.tls_port, tls_context(ca)) == NOT_AUTHORISED


def test_shipped_conf_serves_tls_with_passwords_and_the_acl(broker: Broker) -> None:
    deployment = broker.deployment
    ca = deployment.tls / "ca.crt"
    secrets = deployment.secrets()
    ingest = Client(broker.plain_port, INGEST_ACCOUNT, secrets[INGEST_ACCOUNT])
    assert ingest.accepted
    ingest.subscribe("fire/#")

    simulator = Client(broker.tls_port, SIMULATOR_ACCOUNT, secrets[SIMULATOR_ACCOUNT], ca=ca, tls=True)
    assert simulator.accepted
    device = Client(broker.tls_port, "S0001", secrets["S0001"], ca=ca, tls=True)
    assert device.accepted
    cipher = device.client.socket().cipher()  # type: ignore[union-attr]
    assert cipher is not None and cipher[1] in ("TLSv1.2", "TLSv1.3")
    topic = device_topic(deployment.registry, "S0001")
    payload = reading()
    device.publish(topic, payload)
    ingest.wait_for(topic, payload)
    simulator.publish(device_topic(deployment.registry, "S0000"), payload)
    ingest.wait_for(device_topic(deployment.registry, "S0000"), payload)

    wrong = Client(broker.tls_port, "S0001", secrets["S0002"], ca=ca, tls=True)
    assert not wrong.accepted and wrong.connack is not None and wrong.connack.value in (0x86, 0x87)
    for client in (ingest, simulator, device, wrong):
        client.close()


def test_tls_listener_is_verified_against_the_ca(broker: Broker) -> None:
    ca = broker.deployment.tls / "ca.crt"
    # not the private CA: the system store does not know it
    with pytest.raises(ssl.SSLCertVerificationError):
        raw_connack(broker.tls_port, tls_context(None))
    # the right CA, a name the certificate does not carry
    context = tls_context(ca)
    with (
        socket.create_connection(("127.0.0.1", broker.tls_port), timeout=DEADLINE_S) as plain,
        pytest.raises(ssl.SSLCertVerificationError, match=r"[Hh]ostname mismatch"),
    ):
        context.wrap_socket(plain, server_hostname="broker.invalid")
    # TLS 1.3 is taken too (tls_version tlsv1.2 is the minimum)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with (
        socket.create_connection(("127.0.0.1", broker.tls_port), timeout=DEADLINE_S) as plain,
        context.wrap_socket(plain, server_hostname="localhost") as sock,
    ):
        assert sock.version() == "TLSv1.3"


def test_compose_health_check_passes_against_the_broker(broker: Broker) -> None:
    command = compose_healthcheck_command("mosquitto")
    assert shutil.which("mosquitto_sub"), "no mosquitto_sub: run `make setup`"
    local = command.replace("-p 1883", f"-p {broker.plain_port}")
    assert subprocess.run(["sh", "-c", local], check=False, timeout=30).returncode == 0
    # and it fails when nothing answers
    closed = command.replace("-p 1883", f"-p {free_port()}")
    assert subprocess.run(["sh", "-c", closed], check=False, timeout=30).returncode != 0


def test_adding_a_device_without_a_restart(broker: Broker) -> None:
    """docs/DEPLOY.md, "Adding a device without a restart": registry row, `credentials`, SIGHUP."""
    deployment = broker.deployment
    ca = deployment.tls / "ca.crt"
    secrets = deployment.secrets()
    ingest = Client(broker.plain_port, INGEST_ACCOUNT, secrets[INGEST_ACCOUNT])
    ingest.subscribe("fire/#")
    with (deployment.registry / "devices.csv").open("a", newline="") as handle:
        handle.write("S0999,smoke,D01,S999,34.302,108.703,\n")

    deployment.make_credentials()
    new = deployment.secrets()
    assert set(new) == {"firegrid", "firegrid-console", "firegrid-sim", "S0999"}
    assert new[INGEST_ACCOUNT] == secrets[INGEST_ACCOUNT]
    before_hup = Client(broker.tls_port, "S0999", new["S0999"], ca=ca, tls=True)
    assert not before_hup.accepted  # the running broker does not know it yet
    before_hup.close()

    broker.hup()
    device = Client(broker.tls_port, "S0999", new["S0999"], ca=ca, tls=True)
    assert device.accepted
    topic = device_topic(deployment.registry, "S0999")
    payload = reading()
    device.publish(topic, payload)
    ingest.wait_for(topic, payload)  # the ingest connection made before the reload still delivers
    assert not ingest.disconnected.is_set()
    old_device = Client(broker.tls_port, "S0001", secrets["S0001"], ca=ca, tls=True)
    assert old_device.accepted  # everyone else kept their password
    for client in (ingest, device, old_device):
        client.close()


def test_rotating_a_password_takes_effect_at_the_sighup(broker: Broker) -> None:
    """docs/DEPLOY.md, "Rotation": the rotated device is disconnected by the reload, its old
    password refused and the new one taken; a service account connected meanwhile stays."""
    deployment = broker.deployment
    ca = deployment.tls / "ca.crt"
    old = deployment.secrets()
    ingest = Client(broker.plain_port, INGEST_ACCOUNT, old[INGEST_ACCOUNT])
    device = Client(broker.tls_port, "S0001", old["S0001"], ca=ca, tls=True)
    assert device.accepted
    deployment.make_credentials("--rotate", "S0001")
    new = deployment.secrets()
    assert new["S0001"] != old["S0001"] and new[INGEST_ACCOUNT] == old[INGEST_ACCOUNT]
    assert not device.disconnected.is_set()  # nothing changes before the reload
    broker.hup()
    assert device.disconnected.wait(DEADLINE_S), "the rotated client is disconnected"
    device.close()
    stale = Client(broker.tls_port, "S0001", old["S0001"], ca=ca, tls=True)
    assert not stale.accepted
    fresh = Client(broker.tls_port, "S0001", new["S0001"], ca=ca, tls=True)
    assert fresh.accepted
    assert not ingest.disconnected.is_set()
    for client in (ingest, stale, fresh):
        client.close()


def test_sighup_serves_a_renewed_server_certificate(broker: Broker) -> None:
    tls = broker.deployment.tls
    old = (tls / "server.crt").read_bytes()
    (tls / "server.crt").unlink()
    (tls / "server.key").unlink()
    broker.deployment.make_tls()
    assert (tls / "server.crt").read_bytes() != old
    broker.hup()
    with (
        socket.create_connection(("127.0.0.1", broker.tls_port), timeout=DEADLINE_S) as plain,
        tls_context(tls / "ca.crt").wrap_socket(plain, server_hostname="localhost") as sock,
    ):
        served = sock.getpeercert(binary_form=True)
    assert served is not None
    assert ssl.DER_cert_to_PEM_cert(served).split() == (tls / "server.crt").read_text().split()


def test_ownership_gives_each_service_only_its_files(broker: Broker) -> None:
    """The broker (above) read passwd, acl and server.key as its own user; here: firegrid's
    uid 10001 with group 1883 reads passwd and secrets.csv, without the group it reaches
    nothing, and the broker's user cannot read secrets.csv."""
    assert BROKER_USER is not None
    creds = broker.deployment.credentials
    uid, gid = BROKER_USER

    def can_read(path: Path, user: int, group: int, extra: list[int]) -> bool:
        done = subprocess.run(
            ["cat", str(path)],
            check=False,
            user=user,
            group=group,
            extra_groups=extra,
            capture_output=True,
            timeout=10,
        )
        return done.returncode == 0

    firegrid = firegrid_uid()
    as_firegrid = (firegrid, firegrid, [gid])  # group_add: ["1883"]
    assert can_read(creds / "passwd", *as_firegrid)
    assert can_read(creds / "secrets.csv", *as_firegrid)
    assert not can_read(creds / "passwd", firegrid, firegrid, [])
    assert not can_read(creds / "secrets.csv", uid, gid, [])
    assert can_read(creds / "passwd", uid, gid, [])
    assert not can_read(broker.deployment.tls / "server.key", *as_firegrid)
