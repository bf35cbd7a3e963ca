"""Running `firegrid ingest` as a real process against the session's broker and InfluxDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from access import INGEST_ACCOUNT
from firegrid._services import Influxd, Mosquitto, free_port
from tests.helpers import API_AUTH, HTTP, eventually, write_api_credentials, write_registry


class IngestProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = f"http://{env['FIREGRID_HTTP']}"

    def start(self, wait: bool = True) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firegrid", "ingest"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if wait:
            try:
                eventually(self.healthy, timeout=30, what=f"firegrid ingest healthy (log {self.log_path})")
            except AssertionError:  # never left running behind a failed test
                self.proc.kill()
                self.proc.wait(30)
                raise

    def health(self) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"firegrid ingest exited with {self.proc.returncode}: {self.log()[-2000:]}")
        try:
            response = HTTP.get(f"{self.http}/healthz", timeout=2)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def healthy(self) -> bool:
        health = self.health()
        return health is not None and health["mqtt"] == "connected"

    def metrics(self) -> str:
        return HTTP.get(f"{self.http}/metrics", timeout=5).text

    def events(self, **params: str) -> list[dict[str, Any]]:
        """``/events`` as the suite's API account (every event)."""
        response = HTTP.get(f"{self.http}/events", params=params, auth=API_AUTH, timeout=10)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()
        return events

    def event(self, event_id: str) -> dict[str, Any] | None:
        """``/events/{event_id}`` (with its history) as the suite's API account; None: 404."""
        response = HTTP.get(f"{self.http}/events/{event_id}", auth=API_AUTH, timeout=10)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        event: dict[str, Any] = response.json()
        return event

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "registry")


def service_env(
    broker: Mosquitto, influx: Influxd, influx_db: str, topic_prefix: str, registry_dir: Path, data_dir: Path
) -> dict[str, str]:
    """The environment of a `firegrid ingest` of its own: database, topic prefix, HTTP port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREGRID_")}
    env.update(
        FIREGRID_MQTT_URL=broker.url_as(INGEST_ACCOUNT),
        FIREGRID_INFLUX_URL=influx.url,
        FIREGRID_INFLUX_DB=influx_db,
        FIREGRID_REGISTRY=str(registry_dir),
        FIREGRID_DATA_DIR=str(data_dir),
        FIREGRID_HTTP=f"127.0.0.1:{free_port()}",
        FIREGRID_TOPIC_PREFIX=topic_prefix,
        FIREGRID_CLIENT_ID=f"firegrid-{topic_prefix.rstrip('/')}",
        FIREGRID_STATS_INTERVAL_S="1",
        FIREGRID_CREDENTIALS=str(write_api_credentials(data_dir.parent / "api-credentials")),
        # the fault and scenario tests stream hundreds of readings per device at once; the
        # limit itself is tested with the contract's default in test_rate_limit.py
        FIREGRID_DEVICE_RATE="0",
    )
    return env


@pytest.fixture
def ingest_env(
    broker: Mosquitto, influx: Influxd, influx_db: str, topic_prefix: str, registry_dir: Path, data_dir: Path
) -> dict[str, str]:
    return service_env(broker, influx, influx_db, topic_prefix, registry_dir, data_dir)


@pytest.fixture
def ingest(ingest_env: dict[str, str], tmp_path: Path) -> Iterator[IngestProcess]:
    process = IngestProcess(ingest_env, tmp_path / "ingest.log")
    try:
        process.start()
        yield process
    finally:  # also when it never became healthy: no ingest outlives its test
        if process.proc is not None and process.proc.poll() is None:
            process.proc.send_signal(signal.SIGKILL)
            process.proc.wait(30)
