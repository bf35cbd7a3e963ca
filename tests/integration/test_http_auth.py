"""`/events` behind HTTP Basic (CONTRACT §10) on a real `firegrid ingest`: who gets in, who sees
which event, rotation and registry reload without a restart, no credentials configured, bad
query parameters, and a port in use."""

from __future__ import annotations

import base64
import csv
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from access import (
    CONSOLE_ACCOUNT,
    INGEST_ACCOUNT,
    SECRETS,
    SIMULATOR_ACCOUNT,
    hash_password,
    make_credentials,
)
from devices import Topics
from firegrid._services import Influxd, Mosquitto
from tests.helpers import HTTP, eventually
from tests.integration.conftest import IngestProcess, service_env
from tests.mqtt import ProbeClient, TestClient

REALM = 'Basic realm="firegrid"'
UNKNOWN_ID = "01JF0000000000000000000000"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def read_secrets(credentials: Path) -> dict[str, str]:
    with (credentials / SECRETS).open(newline="") as handle:
        return {row["principal"]: row["password"] for row in csv.DictReader(handle)}


class Api:
    """ingest's HTTP API as the principals of one credentials directory."""

    def __init__(self, ingest: IngestProcess, credentials: Path) -> None:
        self.base = ingest.http
        self.credentials = credentials
        self.passwords = read_secrets(credentials)

    def get(self, path: str, user: str | None = None, **params: str) -> httpx.Response:
        auth = None if user is None else (user, self.passwords[user])
        return HTTP.get(f"{self.base}{path}", params=params, auth=auth, timeout=10)

    def events(self, user: str, **params: str) -> list[dict[str, Any]]:
        response = self.get("/events", user, **params)
        assert response.status_code == 200, (user, response.status_code, response.text)
        events: list[dict[str, Any]] = response.json()
        return events

    def ids(self, user: str, **params: str) -> set[str]:
        return {e["event_id"] for e in self.events(user, **params)}

    def secrets(self) -> set[str]:
        return set(read_secrets(self.credentials).values()) | set(self.passwords.values())


@pytest.fixture
def credentials(registry_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "credentials"
    make_credentials(registry_dir, out)
    return out


def start(env: dict[str, str], log: Path) -> IngestProcess:
    process = IngestProcess(env, log)
    process.start()
    return process


@pytest.fixture
def secured(ingest_env: dict[str, str], credentials: Path, tmp_path: Path) -> Iterator[Api]:
    process = start({**ingest_env, "FIREGRID_CREDENTIALS": str(credentials)}, tmp_path / "ingest.log")
    api = Api(process, credentials)
    yield api
    assert process.stop() == 0
    log = process.log()
    leaked = [secret for secret in api.secrets() if secret in log]
    assert not leaked, "a password is in ingest's log"


def grid_workers(registry_dir: Path) -> dict[str, set[str]]:
    grids = json.loads((registry_dir / "grids.geojson").read_text())["features"]
    return {f["properties"]["grid_id"]: set(f["properties"]["workers"]) for f in grids}


def raise_events(broker: Mosquitto, prefix: str, api: Api) -> list[dict[str, Any]]:
    """Critical, major and minor events in two grids (G00, G02) and for both stations; all of them,
    as a supervisor sees them."""
    sim = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    try:
        readings = (
            ("S0000", "smoke", {"alarm": True}),  # FIRE_ALARM, critical, G00
            ("S0001", "smoke", {"alarm": False, "tamper": True}),  # TAMPER, major, G00
            ("S0002", "smoke", {"alarm": True}),  # FIRE_ALARM, critical, G02 (and FIRE_CONFIRMED)
            ("W0000", "water", {"pressure_mpa": 0.3, "battery_pct": 5}),  # LOW_BATTERY, minor
            ("W0002", "water", {"pressure_mpa": 0.01}),  # PRESSURE_LOSS, critical
        )
        sim.publish_many(
            (f"{prefix}fire/D01/{kind}/{device}", orjson.dumps(payload)) for device, kind, payload in readings
        )
    finally:
        sim.close()
    wanted = {"FIRE_ALARM": 2, "TAMPER": 1, "LOW_BATTERY": 1, "PRESSURE_LOSS": 1, "FIRE_CONFIRMED": 1}

    def all_raised() -> list[dict[str, Any]] | None:
        events = api.events("SUP1")
        types = [e["type"] for e in events]
        assert all(types.count(t) == n for t, n in wanted.items()), sorted(types)
        return events

    return eventually(all_raised, timeout=20, what="the test's events raised")


def test_events_need_basic_auth_while_healthz_and_metrics_stay_open(secured: Api, credentials: Path) -> None:
    api = secured
    wrong = api.passwords["SUP1"] + "x"
    for headers in (
        {},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!"},
        {"Authorization": basic("SUP1", wrong)},
        {"Authorization": basic("nobody", api.passwords["SUP1"])},
        {"Authorization": basic("W0", api.passwords["W1"])},
        {"Authorization": "Basic " + "A" * 5000},
    ):
        for path in ("/events", f"/events/{UNKNOWN_ID}"):
            response = HTTP.get(f"{api.base}{path}", headers=headers, timeout=10)
            assert response.status_code == 401, (headers, path)
            assert response.headers["WWW-Authenticate"] == REALM
            assert response.json() == {"error": "wrong or missing credentials"}
            assert wrong not in response.text
        # /healthz and /metrics need nothing, and a bad Authorization header does not hurt them
        assert HTTP.get(f"{api.base}/healthz", headers=headers, timeout=10).json()["mqtt"] == "connected"
        assert "firegrid_" in HTTP.get(f"{api.base}/metrics", headers=headers, timeout=10).text

    # a device is a principal, but reads no events; nor does a user the registry does not know
    assert api.get("/events", "S0000").status_code == 403
    assert api.get(f"/events/{UNKNOWN_ID}", "E0001").json() == {"error": "E0001 may not read events"}
    with (credentials / "passwd").open("a") as handle:
        handle.write(f"ghost:{hash_password('boo-boo-boo')}\n")
    ghost = HTTP.get(f"{api.base}/events", auth=("ghost", "boo-boo-boo"), timeout=10)
    assert ghost.status_code == 403

    for user in ("SUP1", "W3", "D01-ST1", INGEST_ACCOUNT, CONSOLE_ACCOUNT, SIMULATOR_ACCOUNT):
        assert api.events(user) == [], user
        missing = api.get(f"/events/{UNKNOWN_ID}", user)
        assert (missing.status_code, missing.json()) == (404, {"error": f"no event {UNKNOWN_ID}"})


def test_each_principal_sees_only_its_events(
    secured: Api, broker: Mosquitto, topic_prefix: str, registry_dir: Path
) -> None:
    api = secured
    everything = raise_events(broker, topic_prefix, api)
    workers = grid_workers(registry_dir)
    ids = {e["event_id"] for e in everything}
    assert {e["grid_id"] for e in everything} >= {"D01-G00", "D01-G02"}
    stations = {e["station_id"] for e in everything if e["severity"] == "critical"}
    assert stations == {"D01-ST1", "D01-ST2"}  # both stations have critical events of their own

    for user in ("SUP1", INGEST_ACCOUNT, CONSOLE_ACCOUNT, SIMULATOR_ACCOUNT):
        assert api.ids(user) == ids, user
    for worker in ("W0", "W1", "W2", "W3"):
        mine = {e["event_id"] for e in everything if worker in workers[e["grid_id"]]}
        assert api.ids(worker) == mine, worker
        for event in everything:
            detail = api.get(f"/events/{event['event_id']}", worker)
            if event["event_id"] in mine:
                assert detail.status_code == 200 and detail.json()["history"], (worker, event)
            else:  # the same answer as an event that does not exist
                assert (detail.status_code, detail.json()) == (
                    404,
                    {"error": f"no event {event['event_id']}"},
                )
    for station in ("D01-ST1", "D01-ST2"):
        routed = {
            e["event_id"] for e in everything if e["severity"] == "critical" and e["station_id"] == station
        }
        assert routed and api.ids(station) == routed, station
        hidden = next(e for e in everything if e["event_id"] not in routed)
        assert api.get(f"/events/{hidden['event_id']}", station).status_code == 404

    # filters narrow within what one may see, never beyond it
    w0 = {e["event_id"] for e in everything if e["grid_id"] == "D01-G00"}
    assert api.ids("W0", grid="D01-G00") == w0
    assert api.ids("W0", grid="D01-G02") == set()
    assert api.ids("W0", type="TAMPER") == {e["event_id"] for e in everything if e["type"] == "TAMPER"}
    assert api.ids("D01-ST1", district="D02") == set()
    assert api.ids("D01-ST1", type="PRESSURE_LOSS") <= api.ids("D01-ST1")
    newest = api.events("SUP1", limit="2")
    assert [e["event_id"] for e in newest] == [e["event_id"] for e in everything[:2]]
    assert len(api.events("SUP1", grid="D01-G00", limit="1")) == 1
    merged = api.events("SUP1")  # the same order for a worker's merged grids
    assert [e["event_id"] for e in api.events("W0")] == [e["event_id"] for e in merged if e["event_id"] in w0]


def test_rotation_and_registry_reload_take_effect_without_a_restart(
    ingest_env: dict[str, str],
    credentials: Path,
    registry_dir: Path,
    broker: Mosquitto,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    process = start({**ingest_env, "FIREGRID_CREDENTIALS": str(credentials)}, tmp_path / "ingest.log")
    api = Api(process, credentials)
    everything = raise_events(broker, topic_prefix, api)
    in_g02 = {e["event_id"] for e in everything if e["grid_id"] == "D01-G02"}
    assert in_g02 and not api.ids("W0") & in_g02

    old = api.passwords["W0"]
    make_credentials(registry_dir, credentials, rotate=["W0"])
    new = read_secrets(credentials)["W0"]
    assert new != old
    eventually(
        lambda: HTTP.get(f"{api.base}/events", auth=("W0", new), timeout=10).status_code == 200,
        what="the rotated password accepted",
    )
    assert HTTP.get(f"{api.base}/events", auth=("W0", old), timeout=10).status_code == 401
    api.passwords["W0"] = new

    # W0 now also works grid G02: after SIGHUP it sees that grid's events
    grids = json.loads((registry_dir / "grids.geojson").read_text())
    for feature in grids["features"]:
        if feature["properties"]["grid_id"] == "D01-G02":
            feature["properties"]["workers"].append("W0")
    (registry_dir / "grids.geojson").write_text(json.dumps(grids))
    assert process.proc is not None
    process.proc.send_signal(signal.SIGHUP)
    eventually(lambda: api.ids("W0") >= in_g02, what="W0 sees G02's events after the reload")
    assert process.stop() == 0
    log = process.log()
    assert old not in log and new not in log


def test_without_credentials_events_answer_503_until_they_are_written(
    ingest_env: dict[str, str], registry_dir: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "not-yet"
    process = start({**ingest_env, "FIREGRID_CREDENTIALS": str(missing)}, tmp_path / "ingest.log")
    try:
        warnings = [line for line in process.log().splitlines() if "no HTTP credentials" in line]
        assert len(warnings) == 1 and str(missing / "passwd") in warnings[0]
        for auth in (None, ("SUP1", "whatever-it-is")):
            for path in ("/events", f"/events/{UNKNOWN_ID}"):
                response = HTTP.get(f"{process.http}{path}", auth=auth, timeout=10)
                assert (response.status_code, response.json()) == (
                    503,
                    {"error": "no credentials configured"},
                )
        assert HTTP.get(f"{process.http}/healthz", timeout=10).status_code == 200
        make_credentials(registry_dir, missing)  # no restart needed
        password = read_secrets(missing)["SUP1"]
        eventually(
            lambda: (
                HTTP.get(f"{process.http}/events", auth=("SUP1", password), timeout=10).status_code == 200
            ),
            what="/events open to SUP1",
        )
        assert HTTP.get(f"{process.http}/events", timeout=10).status_code == 401
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"state": "burning"}, "state must be one of open, acknowledged, resolved, closed, not 'burning'"),
        ({"since": "yesterday"}, "since must be Unix epoch milliseconds (digits only), not 'yesterday'"),
        ({"since": "9" * 40}, "since must be Unix epoch milliseconds (digits only), not '" + "9" * 40 + "'"),
        ({"since": "-1"}, "since must be Unix epoch milliseconds (digits only), not '-1'"),
        ({"limit": "0"}, "limit must be at least 1"),
        ({"limit": "ten"}, "limit must be a whole number from 1, not 'ten'"),
        ({"grid": "D01/G00"}, "grid must be letters, digits, _ . - (at most 64, starting with a letter"),
        ({"grid_id": "D01-G00"}, "unknown query parameter 'grid_id' (known: state, district, grid,"),
    ],
)
def test_bad_query_parameters_answer_400_with_a_clear_message(
    secured: Api, params: dict[str, str], message: str
) -> None:
    response = secured.get("/events", "SUP1", **params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_repeated_parameter_answers_400(secured: Api) -> None:
    response = HTTP.get(
        f"{secured.base}/events?grid=D01-G00&grid=D01-G02",
        auth=("SUP1", secured.passwords["SUP1"]),
        timeout=10,
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": "query parameter grid given more than once"},
    )


def test_http_port_in_use_stops_startup_with_one_line(ingest_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "firegrid", "ingest"],
            env={**ingest_env, "FIREGRID_HTTP": f"127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == f"firegrid: cannot serve HTTP on 127.0.0.1:{port}: Address already in use"


def test_a_workers_password_serves_broker_and_events_and_its_rotation_reaches_both(
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
    registry_dir: Path,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    """One credentials directory behind a broker of its own and `/events`: W0's password opens
    both; once rotated, `/events` refuses the old one at once, the broker after its SIGHUP."""
    credentials = tmp_path / "credentials"
    make_credentials(registry_dir, credentials, topic_prefix=topic_prefix)
    passwords = read_secrets(credentials)
    broker = Mosquitto(tmp_path / "broker", credentials=credentials, passwords=passwords)
    broker.start()
    topics = Topics(topic_prefix)
    probes: list[ProbeClient] = []

    def mqtt_login(password: str) -> ProbeClient:
        probes.append(ProbeClient(broker.port, "W0", password))
        return probes[-1]

    try:
        env = service_env(broker, influx, influx_db, topic_prefix, registry_dir, data_dir)
        process = start({**env, "FIREGRID_CREDENTIALS": str(credentials)}, tmp_path / "ingest.log")
        api = Api(process, credentials)
        old = passwords["W0"]
        worker = mqtt_login(old)
        assert worker.accepted
        worker.subscribe(topics.grid("D01", "D01-G00"))
        everything = raise_events(broker, topic_prefix, api)
        in_g00 = {e["event_id"] for e in everything if e["grid_id"] == "D01-G00"}
        assert api.ids("W0") == in_g00
        alerted = eventually(
            lambda: {orjson.loads(payload)["event_id"] for _, payload in worker.received()} >= in_g00,
            what="W0's alerts over MQTT",
        )
        assert alerted

        make_credentials(registry_dir, credentials, rotate=["W0"], topic_prefix=topic_prefix)
        new = read_secrets(credentials)["W0"]
        assert new != old
        assert HTTP.get(f"{api.base}/events", auth=("W0", old), timeout=10).status_code == 401
        assert HTTP.get(f"{api.base}/events", auth=("W0", new), timeout=10).status_code == 200
        # the broker has not reread its files: the old password still opens it, the new one not
        assert mqtt_login(old).accepted and not mqtt_login(new).accepted

        broker.reload()
        eventually(lambda: mqtt_login(new).accepted, timeout=10, what="the broker taking the new password")
        assert not mqtt_login(old).accepted
        assert process.stop() == 0
        assert old not in process.log() and new not in process.log()
    finally:
        for probe in probes:
            probe.close()
        broker.stop()
