"""The alarm lane (issue 17, ingest/_lanes.py): a smoke alarm queued behind a backlog of readings
is alerted before the backlog is processed, and stored exactly once though both lanes carry it;
an alarm and a worker's action during the drain are answered before it ends."""

from __future__ import annotations

import signal
import time

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from firegrid._service import IngestService
from firegrid._services import Influxd, Mosquitto
from firegrid._settings import load_settings
from tests.faults import metric
from tests.helpers import eventually, influx_query
from tests.integration.conftest import IngestProcess
from tests.mqtt import TestClient

BACKLOG_SEQS = 10_000
DEVICES = ("W0000", "W0001", "W0002")


def _backlog(prefix: str, base_ms: int) -> list[tuple[str, bytes]]:
    return [
        (
            f"{prefix}fire/D01/water/{device}",
            orjson.dumps({"seq": seq, "ts": base_ms + seq * 10, "pressure_mpa": 0.3, "level_m": float(seq)}),
        )
        for seq in range(BACKLOG_SEQS)
        for device in DEVICES
    ]


def _count(influx: Influxd, db: str, query: str) -> int:
    try:
        rows = influx_query(influx.url, db, query)
    except Exception:
        return -1
    return int(rows[0]["count"]) if rows else 0


def _received(ingest: IngestProcess) -> float:
    try:
        return metric(ingest, "firegrid_messages_received_total")
    except Exception:  # not serving yet
        return 0.0


def test_an_alarm_queued_behind_a_backlog_is_alerted_first_and_stored_once(
    ingest: IngestProcess, broker: Mosquitto, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    health = ingest.health()
    assert health is not None and health["alarm_lane"] == "connected"
    assert ingest.stop(signal.SIGTERM) == 0  # both sessions stay and queue
    watcher = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    watcher.subscribe(f"{topic_prefix}alerts/#")
    watcher.subscribe(f"{topic_prefix}actions/+/result")
    backlog = _backlog(topic_prefix, int(time.time() * 1000) - 600_000)
    watcher.publish_many(backlog)
    alarm = {"seq": 1, "ts": int(time.time() * 1000), "alarm": True, "obscuration_db_m": 0.4}
    watcher.publish(f"{topic_prefix}fire/D01/smoke/S0000", alarm)  # the last message queued

    ingest.start(wait=False)

    def fire_alarm(device: str) -> bool:
        return any(
            (body := orjson.loads(payload)).get("type") == "FIRE_ALARM" and body.get("device_id") == device
            for _, payload in list(watcher.messages)
        )

    eventually(lambda: fire_alarm("S0000"), timeout=60, what="the FIRE_ALARM alert")
    received = metric(ingest, "firegrid_messages_received_total")
    assert received < len(backlog), f"the alarm waited for the backlog: {received:.0f} messages before it"
    # an alarm during the drain: its alert must not wait behind the readings' PUBACKs either
    eventually(lambda: _received(ingest) >= len(backlog) // 5, timeout=60, what="the drain under way")
    watcher.publish(f"{topic_prefix}fire/D01/smoke/S0001", alarm)
    [event_id] = {
        body["event_id"]
        for _, payload in list(watcher.messages)
        if (body := orjson.loads(payload)).get("type") == "FIRE_ALARM" and body.get("device_id") == "S0000"
    }
    watcher.publish(f"{topic_prefix}actions/W0", {"event_id": event_id, "action": "ack"})  # and a worker acts
    eventually(lambda: fire_alarm("S0001"), timeout=60, what="the second FIRE_ALARM alert")
    received = metric(ingest, "firegrid_messages_received_total")
    assert received < len(backlog), "the alarm during the drain waited for the backlog"
    eventually(
        lambda: any(topic == f"{topic_prefix}actions/W0/result" for topic, _ in list(watcher.messages)),
        timeout=60,
        what="the worker's action answered",
    )
    received = metric(ingest, "firegrid_messages_received_total")
    assert received < len(backlog), "the worker's action waited for the backlog"

    water = "SELECT count(level_m) FROM water WHERE device =~ /^W000[0-2]$/"
    eventually(
        lambda: _count(influx, influx_db, water) == len(backlog), timeout=120, what="the backlog written"
    )
    eventually(lambda: metric(ingest, "firegrid_lane_twins_total") == 2, timeout=30, what="the alarms' twins")
    assert _count(influx, influx_db, "SELECT count(obscuration_db_m) FROM smoke") == 2
    assert metric(ingest, "firegrid_duplicates_total") == 0
    watcher.close()


def test_after_an_upgrade_an_action_is_answered_once(
    ingest: IngestProcess, broker: Mosquitto, topic_prefix: str
) -> None:
    """The readings session of a version without the alarm lane subscribed to actions/+; with the
    lane, actions come on it, and the readings session drops that subscription: one answer."""
    assert ingest.stop(signal.SIGTERM) == 0
    ingest.env["FIREGRID_ALARM_KINDS"] = ""  # as before the lane: actions on the readings session
    ingest.start()
    assert ingest.stop(signal.SIGTERM) == 0
    del ingest.env["FIREGRID_ALARM_KINDS"]
    ingest.start()
    watcher = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    watcher.subscribe(f"{topic_prefix}actions/+/result")
    watcher.publish(f"{topic_prefix}actions/W0", {"event_id": "01JF0000000000000000000000", "action": "ack"})
    watcher.publish(f"{topic_prefix}actions/W0", {"event_id": "01JF0000000000000000000001", "action": "ack"})
    results = f"{topic_prefix}actions/W0/result"
    eventually(lambda: sum(t == results for t, _ in list(watcher.messages)) >= 2, what="the answers")
    answered = [orjson.loads(p)["event_id"] for t, p in list(watcher.messages) if t == results]
    assert sorted(answered) == ["01JF0000000000000000000000", "01JF0000000000000000000001"]
    watcher.close()


def test_with_one_connection_down_alerts_go_out_on_the_other_and_devices_are_heard_as_they_are(
    ingest_env: dict[str, str], broker: Mosquitto, topic_prefix: str
) -> None:
    """Alerts leave on the alarm lane's connection, but never wait for its reconnect while the
    readings connection is up (firegrid/_alert_link.py); the offline timers stand still only while
    the readings connection, the one that hears every device, is down. In-process, to hold one
    connection down for as long as the test needs."""
    service = IngestService(load_settings(environ=ingest_env))
    alarm_lane, readings = service.alarm_consumer, service.consumer
    assert alarm_lane is not None
    watcher = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    service.start()
    try:
        eventually(lambda: alarm_lane.connected and readings.connected, timeout=30, what="both connections")
        watcher.subscribe(f"{topic_prefix}alerts/#")
        alarm_lane.stop()  # down, and no reconnect
        eventually(lambda: not alarm_lane.connected, timeout=10, what="the alarm lane down")
        alarm = {"seq": 1, "ts": int(time.time() * 1000), "alarm": True, "obscuration_db_m": 0.4}
        watcher.publish(f"{topic_prefix}fire/D01/smoke/S0000", alarm)  # heard on the readings lane

        def alerted() -> bool:
            return any(
                (body := orjson.loads(payload)).get("type") == "FIRE_ALARM"
                and body.get("device_id") == "S0000"
                for _, payload in list(watcher.messages)
            )

        eventually(alerted, timeout=10, what="the FIRE_ALARM alert on the readings connection")
        assert not service.hazards.engine.suspended, "the devices are heard: their offline timers run"

        readings.stop()  # now firegrid hears no device: their offline timers stand still
        eventually(lambda: service.hazards.engine.suspended, timeout=10, what="the offline timers suspended")
    finally:
        watcher.close()
        service.stop()


def _session_present(broker: Mosquitto, client_id: str) -> bool:
    """Whether the broker holds a session of ``client_id`` (resumed once, then ended)."""
    flags: list[bool] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(INGEST_ACCOUNT, broker.passwords[INGEST_ACCOUNT])
    client.on_connect = lambda c, u, f, reason, p: flags.append(f.session_present)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        eventually(lambda: bool(flags), timeout=10, what=f"the CONNACK of {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()
    return flags[0]


def test_turning_the_lane_off_ends_its_session(ingest: IngestProcess, broker: Mosquitto) -> None:
    """With ``FIREGRID_ALARM_KINDS=`` the alarm lane's session of an earlier start would queue
    every smoke message at the broker for a week (its expiry): ingest ends it."""
    assert ingest.stop(signal.SIGTERM) == 0  # the lane's session stays at the broker
    ingest.env["FIREGRID_ALARM_KINDS"] = ""
    ingest.start()
    eventually(
        lambda: "ended its MQTT session" in ingest.log(), timeout=30, what="the alarm lane's session ended"
    )
    assert ingest.stop(signal.SIGTERM) == 0
    assert not _session_present(broker, ingest.env["FIREGRID_CLIENT_ID"] + "-alarms")
    assert _session_present(broker, ingest.env["FIREGRID_CLIENT_ID"])  # the readings session stays
