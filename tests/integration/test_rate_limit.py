"""The per-device rate limit end to end (CONTRACT §10): one device floods at 100 msg/s for 15 s
while ~1,000 others publish normally. The flooder's excess is counted (``/metrics``), recorded
in ``rejects`` (reason ``rate_limited``, one point per minute with its ``count``) and raises
DEVICE_FLOODING on its grid topic (cleared once it is quiet; ``quiet_s`` shortened to 5 s by a
rules file); no reading of the other devices is lost. Default limit: 5/s, bursts of 300."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest

from access import SIMULATOR_ACCOUNT
from devices import Registry
from firegrid._services import Influxd, Mosquitto
from tests.helpers import eventually, influx_query, write_registry
from tests.integration.conftest import IngestProcess, service_env
from tests.mqtt import TestClient

PER_KIND = 334
FLOODER = "S0000"
FLOOD_RATE = 100  # messages a second: the burst of 300 is spent after ~3 s, then 5 a second pass
FLOOD_S = 15
FLOOD_TOTAL = FLOOD_RATE * FLOOD_S
NORMAL_EVERY_S = 5  # each other device: one message every 5 s
QUIET_S = 5


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    """1,336 devices: the flooder, 1,001 others of smoke, electrical and water (and idle patrol tags)."""
    return write_registry(tmp_path / "registry", devices_per_kind=PER_KIND)


@pytest.fixture
def ingest_env(
    broker: Mosquitto,
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
    registry_dir: Path,
    data_dir: Path,
    tmp_path: Path,
) -> dict[str, str]:
    rules = tmp_path / "rules.toml"
    rules.write_text(f"[DEVICE_FLOODING]\nquiet_s = {QUIET_S}\n")
    env = service_env(broker, influx, influx_db, topic_prefix, registry_dir, data_dir)
    env.pop("FIREGRID_DEVICE_RATE", None)  # the contract's default, 5/300
    env["FIREGRID_RULES"] = str(rules)
    return env


@pytest.fixture
def alerts(broker: Mosquitto, topic_prefix: str) -> Iterator[TestClient]:
    client = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    client.subscribe(f"{topic_prefix}alerts/#")
    yield client
    client.close()


def _others() -> list[tuple[str, str]]:
    return [
        (kind, f"{kind[0].upper()}{i:04d}")
        for kind in ("smoke", "electrical", "water")
        for i in range(PER_KIND)
        if f"{kind[0].upper()}{i:04d}" != FLOODER
    ]


NORMAL: dict[str, dict[str, Any]] = {
    "smoke": {"alarm": False},
    "electrical": {"residual_ma": 12.5},
    "water": {"pressure_mpa": 0.3},
}
FIELD = {"smoke": "alarm", "electrical": "residual_ma", "water": "pressure_mpa"}


def _flood(client: TestClient, prefix: str, base_ms: int) -> None:
    """FLOOD_RATE messages a second, paced on the clock (this is the load, not a wait)."""
    topic = f"{prefix}fire/D01/smoke/{FLOODER}"
    infos: list[mqtt.MQTTMessageInfo] = []
    start = time.monotonic()
    for i in range(FLOOD_TOTAL):
        delay = start + i / FLOOD_RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        payload = orjson.dumps({"seq": i, "ts": base_ms + i * 1000 // FLOOD_RATE, "alarm": False})
        infos.append(client.client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)


def _normal(client: TestClient, prefix: str, base_ms: int) -> int:
    """Every other device once every NORMAL_EVERY_S, spread evenly over the flood."""
    devices = _others()
    rounds = FLOOD_S // NORMAL_EVERY_S
    step = NORMAL_EVERY_S / len(devices)
    infos: list[mqtt.MQTTMessageInfo] = []
    start = time.monotonic()
    for r in range(rounds):
        for i, (kind, device) in enumerate(devices):
            delay = start + r * NORMAL_EVERY_S + i * step - time.monotonic()
            if delay > 0.005:
                time.sleep(delay)
            payload = orjson.dumps({"seq": r, "ts": base_ms + r * NORMAL_EVERY_S * 1000, **NORMAL[kind]})
            infos.append(client.client.publish(f"{prefix}fire/D01/{kind}/{device}", payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    return len(infos)


def _metric(ingest: IngestProcess, name: str) -> float:
    for line in ingest.metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _stored(influx: Influxd, db: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, field in FIELD.items():
        for row in influx_query(influx.url, db, f'SELECT count("{field}") FROM "{kind}" GROUP BY "device"'):
            counts[row["device"]] = int(row["count"])
    return counts


def _flooding_alerts(alerts: TestClient, topic: str) -> list[dict[str, Any]]:
    with alerts._lock:
        bodies = [json.loads(payload) for t, payload in alerts.messages if t == topic]
    return [b for b in bodies if b.get("type") == "DEVICE_FLOODING"]


def test_a_flooding_device_is_limited_recorded_and_alerted_and_the_others_lose_nothing(
    ingest: IngestProcess,
    alerts: TestClient,
    broker: Mosquitto,
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
    registry_dir: Path,
) -> None:
    registry = Registry.load(registry_dir)
    flooder = registry.device(FLOODER)
    assert flooder is not None
    grid_topic = f"{topic_prefix}alerts/D01/{flooder.grid_id}"
    base = int(time.time() * 1000) - 120_000
    flood_client = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    normal_client = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    sent: list[int] = []
    flood = threading.Thread(target=_flood, args=(flood_client, topic_prefix, base))
    normal = threading.Thread(target=lambda: sent.append(_normal(normal_client, topic_prefix, base)))
    flood.start()
    normal.start()
    try:
        # raised while the flood goes on, once
        raised = eventually(
            lambda: _flooding_alerts(alerts, grid_topic), timeout=20, what="DEVICE_FLOODING raised"
        )[0]
        assert (raised["device_id"], raised["severity"], raised["state"], raised["kind"]) == (
            FLOODER,
            "minor",
            "open",
            "smoke",
        )
        assert raised["threshold"] == 5.0 and raised["value"] >= 1 and raised["count"] == 1
    finally:
        flood.join(FLOOD_S + 60)
        normal.join(FLOOD_S + 60)
        normal_client.close()
        flood_client.close()
    others = _others()
    assert sent == [len(others) * (FLOOD_S // NORMAL_EVERY_S)]

    # every message is received; the flooder's excess is counted, the rest stored
    received = len(others) * (FLOOD_S // NORMAL_EVERY_S) + FLOOD_TOTAL
    eventually(
        lambda: _metric(ingest, "firegrid_messages_received_total") >= received,
        timeout=60,
        what="every message received",
    )
    dropped = _metric(ingest, "firegrid_rate_limited_total")
    passed = FLOOD_TOTAL - dropped
    # the burst, then 5 a second (the flood's pace on the wire is not exact: a margin)
    assert 300 + 5 * FLOOD_S - 40 <= passed <= 300 + 5 * FLOOD_S + 40, dropped
    assert _metric(ingest, 'firegrid_rejects_total{reason="rate_limited"}') == dropped

    each = FLOOD_S // NORMAL_EVERY_S

    def all_stored() -> dict[str, int] | None:
        counts = _stored(influx, influx_db)
        done = counts.get(FLOODER, 0) == passed and all(counts.get(d, 0) == each for _, d in others)
        return counts if done else None

    counts = eventually(all_stored, timeout=60, what="the flooder's admitted and every other reading stored")
    assert sum(counts[d] for _, d in others) == len(others) * (FLOOD_S // NORMAL_EVERY_S)  # none lost

    # cleared after QUIET_S without a drop; still one event (count 1)
    cleared = eventually(
        lambda: [a for a in _flooding_alerts(alerts, grid_topic) if a["cleared"]],
        timeout=30,
        what="DEVICE_FLOODING cleared",
    )
    assert cleared[0]["event_id"] == raised["event_id"] and cleared[0]["count"] == 1
    assert {a["event_id"] for a in _flooding_alerts(alerts, grid_topic)} == {raised["event_id"]}
    assert not [
        a for t, p in alerts.messages if t.startswith(f"{topic_prefix}alerts/") for a in [json.loads(p)]
        if a.get("type") == "DEVICE_FLOODING" and a["device_id"] != FLOODER
    ]  # fmt: skip

    # a clean stop writes the minute still open: one rejects point per minute, with the count
    assert ingest.stop(signal.SIGTERM) == 0
    rows = influx_query(influx.url, influx_db, "SELECT * FROM rejects WHERE \"reason\" = 'rate_limited'")
    assert rows, "no rate_limited rejects"
    assert {row["topic"] for row in rows} == {f"{topic_prefix}fire/D01/smoke/{FLOODER}"}
    minutes = [row["time"] // 60_000 for row in rows]
    assert len(minutes) == len(set(minutes)) <= 2, rows  # a 15 s flood spans at most two minutes
    assert sum(row["count"] for row in rows) == dropped
    assert all(row["count"] >= 1 for row in rows)
    types = influx_query(influx.url, influx_db, "SHOW FIELD KEYS FROM rejects")
    assert {row["fieldKey"]: row["fieldType"] for row in types}["count"] == "float"
    assert all("over the device rate limit (5/s, bursts of 300)" in row["error"] for row in rows)
    assert orjson.loads(rows[0]["payload"])["alarm"] is False
