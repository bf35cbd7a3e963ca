"""Outages: InfluxDB down, firegrid killed, broker restarted — no acknowledged reading is lost."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import orjson
import pytest

from access import SIMULATOR_ACCOUNT
from firegrid._services import Influxd, Mosquitto
from tests.helpers import eventually, influx_query
from tests.integration.conftest import IngestProcess
from tests.mqtt import TestClient

DEVICES = ("W0000", "W0001", "W0002")


@pytest.fixture
def client(broker: Mosquitto) -> Iterator[TestClient]:
    c = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    yield c
    c.close()


def _stream(prefix: str, start: int, stop: int, base_ms: int) -> list[tuple[str, bytes]]:
    """Water readings whose seq is encoded in both ts and level_m, so each can be counted."""
    return [
        (
            f"{prefix}fire/D01/water/{device}",
            orjson.dumps({"seq": seq, "ts": base_ms + seq * 10, "pressure_mpa": 0.3, "level_m": float(seq)}),
        )
        for seq in range(start, stop)
        for device in DEVICES
    ]


def _seqs_by_device(influx: Influxd, db: str) -> dict[str, list[int]]:
    rows = influx_query(influx.url, db, "SELECT level_m FROM water GROUP BY device")
    found: dict[str, list[int]] = {d: [] for d in DEVICES}
    for row in rows:
        found[row["device"]].append(int(row["level_m"]))
    return found


def _all_arrived(influx: Influxd, db: str, count: int) -> bool:
    try:
        found = _seqs_by_device(influx, db)
    except Exception:
        return False
    return all(len(v) >= count for v in found.values())


def _assert_exactly_once(influx: Influxd, db: str, count: int) -> None:
    for device, seqs in _seqs_by_device(influx, db).items():
        assert seqs == list(range(count)), f"{device}: {len(seqs)} points"


def test_influxdb_outage_spools_and_drains_in_order(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    base = int(time.time() * 1000) - 600_000
    client.publish_many(_stream(topic_prefix, 0, 300, base))
    eventually(lambda: _all_arrived(influx, influx_db, 300), timeout=30, what="first part written")
    influx.stop()
    client.publish_many(_stream(topic_prefix, 300, 1000, base))
    health = eventually(
        lambda: (h := ingest.health()) and h["influx"] == "unavailable" and h["spool_depth"] > 0 and h,
        timeout=30,
        what="spool in use",
    )
    assert health["status"] == "degraded"
    influx.start()
    eventually(lambda: _all_arrived(influx, influx_db, 1000), timeout=60, what="spool drained into InfluxDB")
    _assert_exactly_once(influx, influx_db, 1000)
    eventually(lambda: (h := ingest.health()) and h["spool_depth"] == 0 and h["influx"] == "ok", timeout=30)


def test_kill_9_loses_no_acknowledged_reading(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    base = int(time.time() * 1000) - 600_000
    publisher = threading.Thread(target=client.publish_many, args=(_stream(topic_prefix, 0, 2000, base),))
    publisher.start()
    eventually(lambda: _seqs_by_device(influx, influx_db)["W0000"], timeout=30, what="stream under way")
    assert ingest.stop(signal.SIGKILL) == -signal.SIGKILL  # while the stream is still being published
    written_before = sum(len(v) for v in _seqs_by_device(influx, influx_db).values())
    publisher.join(60)
    assert written_before < 6000, "the kill came after the stream: make the stream longer"
    ingest.start()
    eventually(lambda: _all_arrived(influx, influx_db, 2000), timeout=60, what="every reading after restart")
    _assert_exactly_once(influx, influx_db, 2000)


def test_sigterm_drains_and_keeps_the_session(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    base = int(time.time() * 1000) - 600_000
    client.publish_many(_stream(topic_prefix, 0, 400, base))
    assert ingest.stop(signal.SIGTERM) == 0
    assert "stopped cleanly" in ingest.log()
    client.publish_many(_stream(topic_prefix, 400, 800, base))  # while it is away
    ingest.start()
    eventually(lambda: _all_arrived(influx, influx_db, 800), timeout=60, what="messages queued while stopped")
    _assert_exactly_once(influx, influx_db, 800)


def test_broker_restart_reconnects_and_loses_nothing(
    ingest: IngestProcess, broker: Mosquitto, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    base = int(time.time() * 1000) - 600_000
    first = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    first.publish_many(_stream(topic_prefix, 0, 300, base))
    first.close()
    broker.restart()
    eventually(ingest.healthy, timeout=30, what="ingest reconnected to the broker")
    second = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    second.publish_many(_stream(topic_prefix, 300, 600, base))
    second.close()
    eventually(
        lambda: _all_arrived(influx, influx_db, 600),
        timeout=60,
        what="readings from both sides of the restart",
    )
    _assert_exactly_once(influx, influx_db, 600)
