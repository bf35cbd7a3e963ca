"""A simulator scenario run through the real `firegrid ingest`: traffic, ground truth, and the
means to tell when the service has processed all of it.

Used by the end-to-end scenario tests and by the dashboard queries' data fixture.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators import RunOptions, RunSummary, parse_mqtt_url, run_traffic
from tests.helpers import eventually, influx_query

EventKey = tuple[str, str, str]
"""(type, grid_id, device_id — or site_id for FIRE_CONFIRMED), as the ground truth lists them."""

SYNC_DEVICE = "D01-ZZSYNC"
"""An unknown device: the sync message that marks the end of a run is rejected, never a reading."""


def event_key(event: dict[str, Any]) -> EventKey:
    """The ground truth's identity of an event (truth line or the service's §8 event JSON)."""
    if event["type"] == "FIRE_CONFIRMED":
        return (event["type"], event["grid_id"], event["site_id"])
    return (event["type"], event["grid_id"], event["device_id"])


@dataclass
class Truth:
    events: set[EventKey] = field(default_factory=set)
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(reason, topic) of every hostile message, as a multiset."""
    accepted: list[dict[str, Any]] = field(default_factory=list)
    """Valid but nasty messages that must be stored intact."""

    @classmethod
    def read(cls, path: Path) -> Truth:
        truth = cls()
        for raw in path.read_bytes().splitlines():
            line = orjson.loads(raw)
            if "type" in line:
                truth.events.add(event_key(line))
            elif "reject" in line:
                truth.rejects[(line["reject"], line["topic"])] += 1
            elif "accepted" in line:
                truth.accepted.append(line)
            else:
                raise AssertionError(f"unknown ground-truth line in {path}: {line}")
        return truth


@dataclass
class ScenarioRun:
    summary: RunSummary
    truth: Truth
    sync_topic: str
    """The topic of the sync message sent after the run (its reject is not the scenario's)."""


def list_events(http: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{http}/events", params={"limit": "100000"}, timeout=10)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def raised_keys(http: str) -> set[EventKey]:
    return {event_key(event) for event in list_events(http)}


def publish_sync(url: str, topic: str) -> None:
    """One QoS 1 message, acknowledged by the broker, published after the runner's last one."""
    host, port, username, password = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    client.connect(host, port)
    client.loop_start()
    try:
        client.publish(topic, b'{"sync": true}', qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def run_scenario(
    *,
    registry: Path,
    url: str,
    prefix: str,
    scenario: str,
    truth_path: Path,
    influx_url: str,
    influx_db: str,
    rate: float = 300.0,
    time_scale: float | None = None,
    duration: float | None = None,
    seed: int = 1,
) -> ScenarioRun:
    """Run ``scenario`` in-process against the broker, then wait until the service has
    processed every message of it.

    The runner drains its QoS 1 window before returning, so the broker holds every message; a
    sync message published afterwards reaches the service's (single, FIFO) subscription last.
    The pipeline handles batches one after the other and writes a batch's lines (the sync
    message's reject among them) only after the rules have seen its readings: once the sync
    reject is in InfluxDB, every reading of the run has been through the rules.
    """
    summary = run_traffic(
        RunOptions(
            registry=registry,
            url=url,
            prefix=prefix,
            scenario=scenario,
            truth=truth_path,
            progress=False,
            qos=1,
            rate=rate,
            time_scale=time_scale,
            duration=duration,
            seed=seed,
        )
    )
    assert summary.errors == 0 and summary.unacked == 0, summary
    assert "interrupted" not in " ".join(summary.warnings), summary.warnings
    sync_topic = f"{prefix}fire/D01/smoke/{SYNC_DEVICE}"
    publish_sync(url, sync_topic)
    eventually(
        lambda: influx_query(
            influx_url, influx_db, f'SELECT "topic" FROM "rejects" WHERE "topic" =~ /{SYNC_DEVICE}/'
        ),
        timeout=60,
        what=f"the sync message's reject in InfluxDB ({summary.sent} messages before it)",
    )
    return ScenarioRun(summary, Truth.read(truth_path), sync_topic)
