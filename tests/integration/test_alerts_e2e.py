"""End to end over the real broker: readings in, alerts out on the grid (and station) topics,
`events` points in InfluxDB, worker actions, `/events`, and a kill -9 restart."""

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
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from access import SIMULATOR_ACCOUNT
from devices import Registry
from firegrid._services import Influxd, Mosquitto
from simulators import parse_mqtt_url
from tests.helpers import API_AUTH, HTTP, eventually, influx_query
from tests.integration.conftest import IngestProcess

EVENT_FIELDS = {
    "event_id", "type", "severity", "state", "cleared", "escalated", "district", "grid_id", "site_id",
    "device_id", "kind", "lat", "lon", "station_id", "value", "threshold", "count", "raised_at",
    "updated_at", "message", "rev",
}  # fmt: skip


class Listener:
    """Subscribes to everything under the test's prefix and keeps what arrives."""

    def __init__(self, url: str, prefix: str) -> None:
        host, port, user, password = parse_mqtt_url(url)
        self.prefix = prefix
        self.received: list[tuple[str, dict[str, Any], float]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe([(f"{prefix}alerts/#", 1), (f"{prefix}actions/+/result", 1)])
        self.client.loop_start()
        eventually(self.client.is_connected, timeout=10)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append(
                (message.topic[len(self.prefix) :], json.loads(message.payload), time.time())
            )

    def publish(self, topic: str, payload: dict[str, Any] | list[dict[str, Any]]) -> float:
        sent = time.time()
        self.client.publish(self.prefix + topic, orjson.dumps(payload), qos=1).wait_for_publish(10)
        return sent

    def wait(self, topic: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            with self._lock:
                for got_topic, body, _ in self.received:
                    if got_topic == topic and all(body.get(k) == v for k, v in match.items()):
                        return body
            return None

        return eventually(find, timeout=timeout, what=f"message on {topic} with {match}")

    def on(self, topic: str, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [
                b for t, b, _ in self.received if t == topic and all(b.get(k) == v for k, v in match.items())
            ]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def registry(registry_dir: Path) -> Registry:
    return Registry.load(registry_dir)


@pytest.fixture
def listen(broker: Mosquitto, topic_prefix: str) -> Iterator[Listener]:
    listener = Listener(broker.url_as(SIMULATOR_ACCOUNT), topic_prefix)
    yield listener
    listener.close()


def _grid(registry: Registry, device: str) -> str:
    found = registry.device(device)
    assert found is not None
    return found.grid_id


def _nearest_station(registry: Registry, device: str) -> str:
    from alerts import nearest_station

    found = registry.device(device)
    assert found is not None
    station = nearest_station(registry.stations_of("D01"), found.lat, found.lon)
    assert station is not None
    return station


NOW = int(time.time() * 1000)
S = 1000

# type → (device, readings as (ts offset ms, payload)), severity
SCENARIOS: dict[str, tuple[str, list[tuple[int, dict[str, Any]]], str]] = {
    "FIRE_ALARM": ("S0001", [(0, {"alarm": True})], "critical"),
    "TAMPER": ("S0001", [(0, {"alarm": False, "tamper": True})], "major"),
    "LOW_BATTERY": ("S0001", [(0, {"alarm": False, "battery_pct": 10})], "minor"),
    "DEVICE_FAULT": ("W0001", [(0, {"pressure_mpa": 0.3, "fault": "sensor drift"})], "major"),
    "RESIDUAL_CURRENT_HIGH": ("E0001", [(0, {"residual_ma": 350}), (10 * S, {"residual_ma": 360})], "major"),
    "CABLE_OVERHEAT": ("E0001", [(0, {"residual_ma": 5, "temp_c": [75]}), (10 * S, {"residual_ma": 5, "temp_c": [76]})],  # noqa: E501
                       "major"),
    "TEMP_RISE_FAST": ("E0001", [(i * 20 * S, {"residual_ma": 5, "temp_c": [30 + i * 4.0]}) for i in range(5)], "major"),  # noqa: E501
    "LOW_PRESSURE": ("W0001", [(0, {"pressure_mpa": 0.08}), (60 * S, {"pressure_mpa": 0.08})], "major"),
    "PRESSURE_LOSS": ("W0001", [(0, {"pressure_mpa": 0.03})], "critical"),
    "HIGH_PRESSURE": ("W0001", [(0, {"pressure_mpa": 1.3}), (60 * S, {"pressure_mpa": 1.31})], "minor"),
    "PATROL_HAZARD": ("P0001", [(0, {"worker_id": "W1", "result": "hazard", "hazards": ["blocked exit"]})], "major"),  # noqa: E501
}  # fmt: skip
KIND = {"S": "smoke", "E": "electrical", "W": "water", "P": "patrol"}


@pytest.mark.parametrize("event_type", sorted(SCENARIOS))
def test_each_rule_raises_an_alert_on_the_grid_topic(
    event_type: str,
    ingest: IngestProcess,
    listen: Listener,
    registry: Registry,
    influx: Influxd,
    influx_db: str,
) -> None:
    device, readings, severity = SCENARIOS[event_type]
    base = NOW - 120 * S
    for offset, payload in readings:
        listen.publish(f"fire/D01/{KIND[device[0]]}/{device}", {"ts": base + offset, **payload})
    grid = _grid(registry, device)
    event = listen.wait(f"alerts/D01/{grid}", type=event_type, device_id=device)
    assert set(event) == EVENT_FIELDS
    assert (event["severity"], event["state"], event["count"], event["grid_id"]) == (
        severity,
        "open",
        1,
        grid,
    )
    assert event["kind"] == KIND[device[0]]
    if severity == "critical":
        station = _nearest_station(registry, device)
        assert event["station_id"] == station
        listen.wait(f"alerts/station/{station}", type=event_type, device_id=device)
    else:
        assert event["station_id"] is None
    rows = eventually(
        lambda: influx_query(influx.url, influx_db, f"SELECT * FROM events WHERE \"type\" = '{event_type}'"),
        what="events point",
    )
    assert rows[0]["event_id"] == event["event_id"]
    assert (rows[0]["grid"], rows[0]["severity"], rows[0]["state"]) == (grid, severity, "open")


def test_fire_confirmed_by_two_detectors_of_one_site(
    ingest: IngestProcess, listen: Listener, registry: Registry
) -> None:
    # S0000 and S0002 are both in site S0
    listen.publish("fire/D01/smoke/S0000", {"ts": NOW - 30 * S, "alarm": True})
    listen.publish("fire/D01/smoke/S0002", {"ts": NOW - 10 * S, "alarm": True})
    event = listen.wait(f"alerts/D01/{_grid(registry, 'S0002')}", type="FIRE_CONFIRMED")
    assert (event["site_id"], event["severity"]) == ("S0", "critical")
    assert event["station_id"] is not None


def test_patrol_too_fast(ingest: IngestProcess, listen: Listener, registry: Registry) -> None:
    listen.publish("fire/D01/patrol/P0000", {"ts": NOW - 10 * S, "worker_id": "W1", "result": "ok"})
    listen.publish(
        "fire/D01/patrol/P0002", {"ts": NOW - 9 * S, "worker_id": "W1", "result": "ok"}
    )  # ~1.1 km in 1 s
    event = listen.wait(f"alerts/D01/{_grid(registry, 'P0002')}", type="PATROL_TOO_FAST")
    assert event["severity"] == "minor"


def test_device_offline_on_the_service_clock(
    ingest_env: dict[str, str], tmp_path: Path, listen: Listener, registry: Registry
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[DEVICE_OFFLINE]\ngrace_s = 1\nheartbeat_s = { smoke = 1, electrical = 1, water = 1 }\n"
    )
    process = IngestProcess({**ingest_env, "FIREGRID_RULES": str(rules)}, tmp_path / "ingest.log")
    process.start()
    try:
        listen.publish("fire/D01/water/W0001", {"pressure_mpa": 0.3})
        event = listen.wait(
            f"alerts/D01/{_grid(registry, 'W0001')}", timeout=30, type="DEVICE_OFFLINE", device_id="W0001"
        )
        assert event["severity"] == "minor"
        listen.publish("fire/D01/water/W0001", {"pressure_mpa": 0.3})  # the next message clears it
        listen.wait(
            f"alerts/D01/{_grid(registry, 'W0001')}", type="DEVICE_OFFLINE", device_id="W0001", cleared=True
        )
    finally:
        process.stop()


def test_patrol_missed_on_the_checkpoint_schedule(
    ingest_env: dict[str, str], registry_dir: Path, tmp_path: Path, listen: Listener, registry: Registry
) -> None:
    lines = (registry_dir / "devices.csv").read_text().splitlines()
    lines[0] += ",patrol_interval_h"
    lines[1:] = [line + (",0.0005" if line.startswith("P0001,") else ",") for line in lines[1:]]  # 1.8 s
    (registry_dir / "devices.csv").write_text("\n".join(lines) + "\n")
    process = IngestProcess(ingest_env, tmp_path / "ingest.log")
    process.start()
    try:
        topic = f"alerts/D01/{_grid(registry, 'P0001')}"
        listen.publish("fire/D01/patrol/P0001", {"worker_id": "W1", "result": "ok"})
        event = listen.wait(topic, timeout=30, type="PATROL_MISSED", device_id="P0001")
        assert event["severity"] == "minor"
        listen.publish(
            "fire/D01/patrol/P0001", {"worker_id": "W1", "result": "ok"}
        )  # the next scan clears it
        listen.wait(topic, type="PATROL_MISSED", device_id="P0001", cleared=True)
    finally:
        process.stop()


def test_alert_arrives_within_a_second(ingest: IngestProcess, listen: Listener, registry: Registry) -> None:
    sent = listen.publish("fire/D01/smoke/S0001", {"alarm": True})
    listen.wait(f"alerts/D01/{_grid(registry, 'S0001')}", type="FIRE_ALARM")
    arrived = next(t for topic, body, t in listen.received if body.get("type") == "FIRE_ALARM")
    assert arrived - sent < 1.0


def test_repeat_counts_and_clear_marks_cleared(
    ingest: IngestProcess, listen: Listener, registry: Registry
) -> None:
    topic = f"alerts/D01/{_grid(registry, 'S0001')}"
    listen.publish("fire/D01/smoke/S0001", {"ts": NOW - 30 * S, "alarm": False, "tamper": True})
    first = listen.wait(topic, type="TAMPER")
    listen.publish("fire/D01/smoke/S0001", {"ts": NOW - 20 * S, "alarm": False, "tamper": False})
    cleared = listen.wait(topic, type="TAMPER", cleared=True)
    listen.publish("fire/D01/smoke/S0001", {"ts": NOW - 10 * S, "alarm": False, "tamper": True})
    again = listen.wait(topic, type="TAMPER", count=2)
    assert first["event_id"] == cleared["event_id"] == again["event_id"]
    assert cleared["state"] == "open"


def test_lifecycle_by_the_right_and_the_wrong_workers(
    ingest: IngestProcess, listen: Listener, registry: Registry, influx: Influxd, influx_db: str
) -> None:
    device = "S0001"
    grid = _grid(registry, device)
    workers = registry.grids[grid].workers
    outsider = next(w for w in ("W0", "W1", "W2", "W3") if w not in workers)
    insider = next(w for w in workers if not registry.workers[w].is_supervisor)
    listen.publish(f"fire/D01/smoke/{device}", {"alarm": True})
    event = listen.wait(f"alerts/D01/{grid}", type="FIRE_ALARM")
    event_id = event["event_id"]

    def act(worker: str, action: str, note: str = "") -> dict[str, Any]:
        before = len(listen.on(f"actions/{worker}/result"))
        listen.publish(f"actions/{worker}", {"event_id": event_id, "action": action, "note": note})
        eventually(
            lambda: len(listen.on(f"actions/{worker}/result")) > before, what=f"{worker} {action} result"
        )
        return listen.on(f"actions/{worker}/result")[-1]

    assert act(outsider, "ack")["ok"] is False
    assert act(insider, "resolve")["ok"] is False  # not acknowledged yet
    acked = act(insider, "ack", "on my way")
    assert acked == {"event_id": event_id, "action": "ack", "ok": True, "error": None, "at": acked["at"]}
    acknowledged = listen.wait(f"alerts/D01/{grid}", event_id=event_id, state="acknowledged")
    assert acked["at"] == acknowledged["updated_at"]  # when the change took effect
    assert act(insider, "comment", "smoke from cooking")["ok"] is True
    assert act(insider, "resolve", "ventilated")["ok"] is True
    assert act(insider, "close")["ok"] is False  # only a supervisor verifies
    assert act("SUP1", "close", "verified on site")["ok"] is True
    listen.wait(f"alerts/D01/{grid}", event_id=event_id, state="closed")
    bad = act(insider, "dance")
    assert bad["ok"] is False and bad["error"]

    http = ingest.http
    detail = HTTP.get(f"{http}/events/{event_id}", auth=API_AUTH, timeout=5).json()
    assert detail["state"] == "closed"
    history = [(h["to_state"], h["worker_id"], h["note"]) for h in detail["history"]]
    assert ("acknowledged", insider, "on my way") in history
    assert ("resolved", insider, "ventilated") in history
    assert ("closed", "SUP1", "verified on site") in history
    assert any(h["note"] == "smoke from cooking" for h in detail["history"])
    listed = HTTP.get(
        f"{http}/events", params={"state": "closed", "grid": grid}, auth=API_AUTH, timeout=5
    ).json()
    assert [e["event_id"] for e in listed] == [event_id]
    assert (
        HTTP.get(
            f"{http}/events", params={"state": "open", "type": "FIRE_ALARM"}, auth=API_AUTH, timeout=5
        ).json()
        == []
    )
    assert HTTP.get(f"{http}/events/NOPE", auth=API_AUTH, timeout=5).status_code == 404
    states = eventually(
        lambda: (
            (
                r := influx_query(
                    influx.url, influx_db, f"SELECT state FROM events WHERE event_id = '{event_id}'"
                )
            )
            and {x["state"] for x in r} >= {"open", "acknowledged", "resolved", "closed"}
            and r
        ),
        what="every transition in InfluxDB",
    )
    assert len(states) >= 4


def test_kill_9_restart_updates_the_same_event(
    ingest: IngestProcess, listen: Listener, registry: Registry
) -> None:
    topic = f"alerts/D01/{_grid(registry, 'S0001')}"
    listen.publish("fire/D01/smoke/S0001", {"ts": NOW - 20 * S, "alarm": True})
    first = listen.wait(topic, type="FIRE_ALARM")
    listen.publish("fire/D01/smoke/S0001", {"ts": NOW - 15 * S, "alarm": False})
    listen.wait(topic, type="FIRE_ALARM", cleared=True)
    assert ingest.stop(signal.SIGKILL) == -signal.SIGKILL
    ingest.start()
    listen.publish("fire/D01/smoke/S0001", {"ts": NOW - 5 * S, "alarm": True})
    again = listen.wait(topic, type="FIRE_ALARM", count=2)
    assert again["event_id"] == first["event_id"]
    assert len({b["event_id"] for b in listen.on(topic, type="FIRE_ALARM")}) == 1


def test_coalesced_repeats_arrive_within_a_second_and_kill_9_loses_only_their_counts(
    ingest: IngestProcess, listen: Listener, registry: Registry
) -> None:
    """A burst of repeats of one event goes out as a few alerts within a second, the last one
    with the full count (issue 17); a ``kill -9`` while repeats are counted in memory loses at
    most those counts: the event, its ``cleared`` and the revisions seen survive."""
    device = "P0001"
    topic = f"alerts/D01/{_grid(registry, device)}"
    scan = {"worker_id": "W1", "result": "hazard", "hazards": ["blocked exit"]}
    base = NOW - 200 * S

    def burst(first: int, n: int) -> float:
        payloads = [{"ts": base + (first + i) * 100, **scan} for i in range(n)]
        sent = 0.0
        for payload in payloads:
            sent = listen.publish(f"fire/D01/patrol/{device}", payload)
        return sent

    listen.publish(f"fire/D01/patrol/{device}", {"ts": base, **scan})
    first = listen.wait(topic, type="PATROL_HAZARD", count=1)
    last_sent = burst(1, 30)
    listen.wait(topic, type="PATROL_HAZARD", count=31)
    arrived = next(t for _, body, t in listen.received if body.get("count") == 31)
    assert arrived - last_sent < 1.0
    alerts = listen.on(topic, type="PATROL_HAZARD")
    assert len(alerts) < 31  # coalesced: 31 changes, fewer publications
    assert [a["rev"] for a in alerts] == list(range(1, len(alerts) + 1))

    burst(31, 10)  # then die while (some of) them are counted in memory only
    eventually(lambda: ingest.events(type="PATROL_HAZARD")[0]["count"] == 41, what="the count in memory")
    assert ingest.stop(signal.SIGKILL) == -signal.SIGKILL
    seen = listen.on(topic, type="PATROL_HAZARD")
    ingest.start()
    [event] = ingest.events(type="PATROL_HAZARD")
    assert event["event_id"] == first["event_id"] and event["state"] == "open"
    # what was published is never lost (messages not yet acknowledged come again and may count
    # again: the broker redelivers them to the restarted session)
    assert event["count"] >= max(b["count"] for b in seen) >= 31
    assert event["rev"] >= max(b["rev"] for b in seen)
    # the next change continues the revisions: no subscriber drops it as a repeat. (Repeats the
    # broker redelivers may be counted between the read above and this scan: its alert is then
    # not necessarily rev + 1, but a later one.)
    listen.publish(f"fire/D01/patrol/{device}", {"ts": base + 60 * S, **scan})

    def counted_on() -> dict[str, Any] | None:
        return next((b for b in listen.on(topic, type="PATROL_HAZARD") if b["count"] > event["count"]), None)

    after = eventually(counted_on, what="the next change's alert")
    assert after["event_id"] == first["event_id"] and after["rev"] > event["rev"]
    by_rev: dict[int, int] = {}
    for body in listen.on(topic, type="PATROL_HAZARD"):  # a rev is never reused for another count
        assert by_rev.setdefault(body["rev"], body["count"]) == body["count"], (body, by_rev)
