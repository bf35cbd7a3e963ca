"""The event store over the real broker and InfluxDB: alerts reach subscribers, actions arrive
from the MQTT network thread, and the ``events`` points are accepted and countable."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from access import CONSOLE_ACCOUNT, INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from alerts import EventStore
from devices import Registry
from firegrid._services import Influxd, Mosquitto
from rules import Hit
from tests.helpers import HTTP, eventually, influx_query, write_registry
from tests.mqtt import TestClient


def _hit(registry: Registry, device_id: str, type: str, state: str, ts: int) -> Hit:
    slot = registry.slot_of[device_id]
    return Hit(
        type=type,
        severity="critical",
        kind=registry.kind_of(slot),
        slot=slot,
        device_id=device_id,
        site_id=registry.site_of(slot),
        grid_id=registry.grid_of(slot),
        district=registry.district_of(slot),
        key=("device", device_id, type),
        state="raise" if state == "raise" else "clear",
        value=1.0,
        threshold=None,
        ts=ts,
        message=f"{type} {state}",
    )


def _on(client: TestClient, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(p) for t, p in list(client.messages) if t == topic]


def test_alerts_and_actions_over_the_broker(
    broker: Mosquitto, influx: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> None:
    registry = Registry.load(write_registry(tmp_path / "registry"))
    # the service's own client (publishes alerts, receives actions), a console and a worker
    service = TestClient(broker.url_as(INGEST_ACCOUNT))
    watcher = TestClient(broker.url_as(CONSOLE_ACCOUNT))
    worker = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    store = EventStore(tmp_path / "events.sqlite", registry, service.client, topic_prefix=topic_prefix)
    lines: list[str] = []
    try:
        watcher.subscribe(f"{topic_prefix}alerts/#")
        worker.subscribe(f"{topic_prefix}actions/W0/result")

        def on_action(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            outcome = store.handle_message(message.topic, message.payload, int(time.time() * 1000))
            if outcome is not None:
                lines.extend(outcome.lines)

        def on_publish(client: mqtt.Client, userdata: Any, mid: int, *args: Any) -> None:
            store.on_published(mid)  # the PUBACK empties the outbox (CONTRACT §13)

        service.client.on_message = on_action
        service.client.on_publish = on_publish
        service.subscribe(store.topics.actions_subscription)
        eventually(service.client.is_connected, what="service client")

        now = int(time.time() * 1000)
        out = store.process([_hit(registry, "S0000", "FIRE_ALARM", "raise", now)], now)
        lines.extend(out.lines)
        event_id = out.events[0]["event_id"]
        grid_topic = f"{topic_prefix}alerts/D01/D01-G00"
        eventually(lambda: _on(watcher, grid_topic), what="alert on the grid topic")
        eventually(
            lambda: _on(watcher, f"{topic_prefix}alerts/station/D01-ST1"), what="alert on the station topic"
        )
        assert _on(watcher, grid_topic)[0]["event_id"] == event_id

        worker.publish(f"{topic_prefix}actions/W0", {"event_id": event_id, "action": "ack", "note": "going"})
        result_topic = f"{topic_prefix}actions/W0/result"
        [result] = eventually(lambda: _on(worker, result_topic), what="action result")
        assert result == {
            "event_id": event_id,
            "action": "ack",
            "ok": True,
            "error": None,
            "at": result["at"],
        }
        assert isinstance(result["at"], int) and result["at"] > 0
        eventually(lambda: len(_on(watcher, grid_topic)) == 2, what="acknowledged event republished")
        assert _on(watcher, grid_topic)[1]["state"] == "acknowledged"

        worker.publish(f"{topic_prefix}actions/W0", {"event_id": event_id, "action": "close"})
        eventually(lambda: len(_on(worker, result_topic)) == 2, what="refused close")
        assert "only a supervisor" in _on(worker, result_topic)[1]["error"]

        later = now + 1
        lines.extend(store.process([_hit(registry, "S0000", "FIRE_ALARM", "clear", later)], later).lines)
        eventually(lambda: len(_on(watcher, grid_topic)) == 3, what="cleared event republished")
        assert [e["rev"] for e in _on(watcher, grid_topic)] == [1, 2, 3]
        eventually(lambda: store.outbox_depth == 0, what="every alert acknowledged by the broker")
    finally:
        for client in (service, watcher, worker):
            client.close()
        store.close()

    HTTP.post(
        f"{influx.url}/query", data={"q": f'CREATE DATABASE "{influx_db}"'}, timeout=10
    ).raise_for_status()
    response = HTTP.post(
        f"{influx.url}/write",
        params={"db": influx_db, "precision": "ms"},
        content="\n".join(lines),
        timeout=10,
    )
    assert response.status_code == 204, response.text
    rows = influx_query(influx.url, influx_db, 'SELECT * FROM "events"')
    assert len(rows) == len(lines) == 3
    assert [r.get("change") for r in rows] == ["raised", "acknowledged", "cleared"]
    assert [r.get("state") for r in rows] == ["open", "acknowledged", None]
    opened = influx_query(
        influx.url,
        influx_db,
        """SELECT count(distinct("event_id")) AS "raised" FROM "events" WHERE "state" = 'open'""",
    )
    assert opened[0]["raised"] == 1
