"""firegrid as an MQTT client (CONTRACT §9, §10): `mqtts://` verified against FIREGRID_MQTT_CA (or
the system's CAs) with host names checked, and a refused login stopping ingest with exit 3 and one
line, while a broker that is merely down is retried.

The CA and server certificates are made here, into the test's temporary directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT, make_credentials
from firegrid._services import Mosquitto, free_port
from tests.helpers import HTTP, eventually
from tests.integration.conftest import IngestProcess
from tests.integration.test_http_auth import read_secrets
from tests.mqtt import TestClient

EXIT_FATAL = 3


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


@dataclass(frozen=True)
class Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path

    @classmethod
    def make(cls, directory: Path, name: str) -> Ca:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.crt"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert, key, path)

    def server(self, directory: Path, names: list[str]) -> tuple[Path, Path]:
        """A server certificate (and its key) for ``names`` (DNS names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "server.crt", directory / "server.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path


class TlsMosquitto(Mosquitto):
    """The suite's broker configuration (credentials, no anonymous clients), plus a TLS listener."""

    def __init__(self, workdir: Path, ca: Ca, cert: Path, key: Path) -> None:
        super().__init__(workdir)
        self.tls_port = free_port()
        with self.config_path.open("a") as config:
            config.write(
                f"\nlistener {self.tls_port} 127.0.0.1\n"
                f"cafile {ca.path}\ncertfile {cert}\nkeyfile {key}\ntls_version tlsv1.2\n"
            )

    def tls_url_as(self, user: str, host: str = "127.0.0.1") -> str:
        return (
            self.url_as(user)
            .replace("mqtt://", "mqtts://")
            .replace(f"@127.0.0.1:{self.port}", f"@{host}:{self.tls_port}")
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ca, Path, Path, Ca]:
    root = tmp_path_factory.mktemp("pki")
    ca = Ca.make(root / "ca", "firegrid-test-ca")
    cert, key = ca.server(root / "server", ["localhost"])
    stranger = Ca.make(root / "stranger", "some-other-ca")
    return ca, cert, key, stranger


@pytest.fixture(scope="module")
def tls_broker(
    tmp_path_factory: pytest.TempPathFactory, pki: tuple[Ca, Path, Path, Ca]
) -> Iterator[TlsMosquitto]:
    ca, cert, key, _ = pki
    broker = TlsMosquitto(tmp_path_factory.mktemp("tls-broker"), ca, cert, key)
    broker.start()
    yield broker
    broker.stop()


def run_to_exit(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firegrid", "ingest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line or " WARNING ingest._consumer" in line]


def test_mqtts_verified_against_the_ca_carries_readings_and_alerts(
    tls_broker: TlsMosquitto,
    pki: tuple[Ca, Path, Path, Ca],
    ingest_env: dict[str, str],
    registry_dir: Path,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    ca = pki[0]
    credentials = tmp_path / "credentials"
    make_credentials(registry_dir, credentials)
    env = {
        **ingest_env,
        "FIREGRID_MQTT_URL": tls_broker.tls_url_as(INGEST_ACCOUNT, host="localhost"),
        "FIREGRID_MQTT_CA": str(ca.path),
        "FIREGRID_CREDENTIALS": str(credentials),
    }
    ingest = IngestProcess(env, tmp_path / "ingest.log")
    ingest.start()
    try:
        # a device on the plain listener, ingest on the TLS one: the alarm goes through ingest
        sim = TestClient(tls_broker.url_as(SIMULATOR_ACCOUNT))
        try:
            sim.publish_many([(f"{topic_prefix}fire/D01/smoke/S0000", orjson.dumps({"alarm": True}))])
        finally:
            sim.close()
        auth = ("SUP1", read_secrets(credentials)["SUP1"])

        def fire_alarm() -> bool:
            events = HTTP.get(f"{ingest.http}/events", auth=auth, timeout=10).json()
            return any(e["type"] == "FIRE_ALARM" and e["device_id"] == "S0000" for e in events)

        eventually(fire_alarm, what="FIRE_ALARM raised by ingest over TLS")
        assert f"connected to MQTT broker localhost:{tls_broker.tls_port}" in ingest.log()
        assert ingest.stop() == 0
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.proc.send_signal(signal.SIGKILL)
            ingest.proc.wait(30)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("stranger-ca", "certificate"),  # OpenSSL's words: "self-signed certificate in certificate chain"
        ("system-store", "certificate"),
        ("wrong-host", "IP address mismatch"),
    ],
)
def test_an_untrusted_broker_certificate_stops_ingest(
    tls_broker: TlsMosquitto,
    pki: tuple[Ca, Path, Path, Ca],
    ingest_env: dict[str, str],
    tmp_path: Path,
    case: str,
    expected: str,
) -> None:
    ca, _, _, stranger = pki
    env = {**ingest_env, "FIREGRID_MQTT_URL": tls_broker.tls_url_as(INGEST_ACCOUNT)}
    if case == "stranger-ca":
        env["FIREGRID_MQTT_CA"] = str(stranger.path)
        trusting = f"trusting the CA of {stranger.path}"
    elif case == "system-store":  # our test CA is in no system store
        env.pop("FIREGRID_MQTT_CA", None)
        trusting = "trusting the system's CAs"
    else:  # the certificate names localhost, not 127.0.0.1
        env["FIREGRID_MQTT_CA"] = str(ca.path)
        env["FIREGRID_MQTT_URL"] = tls_broker.tls_url_as(INGEST_ACCOUNT, host="127.0.0.1")
        trusting = f"trusting the CA of {ca.path}"
    result = run_to_exit(env)
    assert result.returncode == EXIT_FATAL, result.stderr
    address = env["FIREGRID_MQTT_URL"].rsplit("@", 1)[1]
    (line,) = problems(result.stderr)  # one line says it all; no retries were logged
    assert f"stopped: MQTT broker {address}: TLS certificate refused (" in line
    assert expected in line
    assert trusting in line
    assert tls_broker.passwords[INGEST_ACCOUNT] not in result.stderr


def test_a_ca_file_that_is_not_one_stops_startup(ingest_env: dict[str, str], tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    for url, ca, message in (
        ("mqtts://127.0.0.1:8883", str(bogus), f"cannot load CA certificates from {bogus}"),
        ("mqtts://127.0.0.1:8883", str(tmp_path / "none.pem"), "No such file or directory"),
        ("mqtt://127.0.0.1:1883", str(bogus), "FIREGRID_MQTT_URL is not mqtts://"),
    ):
        result = run_to_exit({**ingest_env, "FIREGRID_MQTT_URL": url, "FIREGRID_MQTT_CA": ca})
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("firegrid: invalid setting FIREGRID_MQTT_CA: ") and message in line


@pytest.mark.parametrize("login", ["wrong-password", "unknown-user", "anonymous"])
def test_a_refused_login_stops_ingest_with_exit_3_and_one_line(
    broker: Mosquitto, ingest_env: dict[str, str], login: str
) -> None:
    password = broker.passwords[INGEST_ACCOUNT]
    url = {
        "wrong-password": f"mqtt://{INGEST_ACCOUNT}:{password}x@127.0.0.1:{broker.port}",
        "unknown-user": f"mqtt://intruder:{password}@127.0.0.1:{broker.port}",
        "anonymous": f"mqtt://127.0.0.1:{broker.port}",
    }[login]
    result = run_to_exit({**ingest_env, "FIREGRID_MQTT_URL": url})
    assert result.returncode == EXIT_FATAL, result.stderr
    (line,) = problems(result.stderr)
    who = {"wrong-password": "user firegrid", "unknown-user": "user intruder", "anonymous": "an anonymous"}
    assert f"stopped: MQTT broker 127.0.0.1:{broker.port} refused " in line
    assert who[login] in line and "Not authorized" in line
    assert password not in result.stderr


def test_a_broker_that_is_down_is_retried_until_it_is_up(ingest_env: dict[str, str], tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "late-broker")  # its port and passwords, not started yet
    env = {**ingest_env, "FIREGRID_MQTT_URL": broker.url_as(INGEST_ACCOUNT)}
    ingest = IngestProcess(env, tmp_path / "ingest.log")
    ingest.start(wait=False)
    try:
        eventually(lambda: "retrying in the background" in ingest.log(), what="ingest retrying")
        assert ingest.proc is not None and ingest.proc.poll() is None
        broker.start()
        eventually(ingest.healthy, timeout=30, what="ingest connected once the broker is up")
        assert ingest.stop() == 0
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.proc.send_signal(signal.SIGKILL)
            ingest.proc.wait(30)
        broker.stop()
