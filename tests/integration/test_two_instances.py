"""Two `firegrid ingest` instances against one broker and one InfluxDB (issue 17), each owning
one district (FIREGRID_DISTRICTS): every reading written once, by the instance that owns its
district; every event raised once, by its owner; worker actions answered once, by the owner;
each instance's /events lists only its districts' events. Both sign in as the ingest account
of the broker's ACL, with client ids of their own."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from access import SIMULATOR_ACCOUNT
from firegrid._services import Influxd, Mosquitto, free_port
from tests.helpers import eventually, influx_query, square
from tests.integration.conftest import IngestProcess, service_env
from tests.integration.test_alerts_e2e import Listener

DISTRICTS = ("D01", "D02")
READINGS = 40
"""Readings per device, seq 0..READINGS-1."""
ALARM_SEQ = 10


def _device(district: str, kind: str, i: int) -> str:
    return f"{district}{kind[0].upper()}{i}"


def write_two_districts(root: Path) -> Path:
    """Two districts of two grids each; worker W-D0x on both grids of its district, a supervisor
    on none (supervisors see and close everything)."""
    root.mkdir(parents=True, exist_ok=True)
    features = []
    for d, district in enumerate(DISTRICTS):
        for g in range(2):
            features.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": square(108.7 + g * 0.01, 34.3 + d * 0.1, 0.01),
                    },
                    "properties": {
                        "grid_id": f"{district}-G{g}",
                        "district": district,
                        "workers": [f"W-{district}"],
                    },
                }
            )
    (root / "grids.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with (root / "workers.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["worker_id", "name", "role"])
        for district in DISTRICTS:
            writer.writerow([f"W-{district}", f"Worker {district}", "worker"])
        writer.writerow(["SUP1", "Supervisor", "supervisor"])
    with (root / "stations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["station_id", "name", "district", "lat", "lon"])
        for d, district in enumerate(DISTRICTS):
            writer.writerow([f"{district}-ST1", "Station", district, 34.305 + d * 0.1, 108.705])
    with (root / "devices.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "kind", "district", "site_id", "lat", "lon", "grid_id"])
        for d, district in enumerate(DISTRICTS):
            for kind in ("smoke", "electrical", "water"):
                for i in range(2):
                    lat, lon = 34.302 + d * 0.1, 108.702 + 0.01 * i
                    writer.writerow(
                        [_device(district, kind, i), kind, district, f"{district}-S{i}", lat, lon, ""]
                    )
    return root


def _reading(kind: str, seq: int, ts: int, alarm: bool) -> dict[str, Any]:
    if kind == "smoke":
        return {"ts": ts, "seq": seq, "alarm": alarm, "battery_pct": 90.0}
    if kind == "electrical":
        return {"ts": ts, "seq": seq, "residual_ma": 20.0, "temp_c": [30.0]}
    return {"ts": ts, "seq": seq, "pressure_mpa": 0.4}


@pytest.fixture
def two(
    broker: Mosquitto, influx: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> Iterator[dict[str, IngestProcess]]:
    registry = write_two_districts(tmp_path / "registry")
    processes: dict[str, IngestProcess] = {}
    for district in DISTRICTS:
        data_dir = tmp_path / f"data-{district}"
        data_dir.mkdir()
        env = service_env(broker, influx, influx_db, topic_prefix, registry, data_dir)
        env["FIREGRID_DISTRICTS"] = district
        processes[district] = IngestProcess(env, tmp_path / f"ingest-{district}.log")
    for process in processes.values():
        process.start()
    yield processes
    for process in processes.values():
        if process.proc is not None and process.proc.poll() is None:
            process.proc.send_signal(signal.SIGKILL)
            process.proc.wait(30)


def _metric(process: IngestProcess, name: str) -> float:
    for line in process.metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_two_instances_share_the_work(
    two: dict[str, IngestProcess], broker: Mosquitto, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    listener = Listener(broker.url_as(SIMULATOR_ACCOUNT), topic_prefix)
    try:
        _run(two, listener, influx, influx_db)
    finally:
        listener.client.disconnect()
        listener.client.loop_stop()
    for district, process in two.items():
        health = process.health()
        assert health is not None and health["districts"] == [district]
        assert process.stop() == 0, process.log()[-2000:]
        log = process.log()
        assert f"as firegrid-{topic_prefix.rstrip('/')}-{district}," in log  # its own client id
        assert "Traceback" not in log


def _run(two: dict[str, IngestProcess], listener: Listener, influx: Influxd, influx_db: str) -> None:
    base = int(time.time() * 1000) - READINGS * 1000
    for seq in range(READINGS):
        batch = []
        for district in DISTRICTS:
            for kind in ("smoke", "electrical", "water"):
                for i in range(2):
                    alarm = kind == "smoke" and i == 0 and seq >= ALARM_SEQ
                    topic = f"fire/{district}/{kind}/{_device(district, kind, i)}"
                    batch.append((topic, _reading(kind, seq, base + seq * 1000, alarm)))
        for topic, payload in batch:
            listener.publish(topic, payload)

    # every reading written: per series, one point per seq
    def counted() -> dict[str, int] | None:
        counts: dict[str, int] = {}
        for measurement, field in (
            ("smoke", "alarm"),
            ("electrical", "residual_ma"),
            ("water", "pressure_mpa"),
        ):
            rows = influx_query(
                influx.url, influx_db, f'SELECT count("{field}") FROM {measurement} GROUP BY device'
            )
            counts.update({row["device"]: row["count"] for row in rows})
        return counts if len(counts) == 12 and set(counts.values()) == {READINGS} else None

    counts = eventually(counted, timeout=60, what="every reading in InfluxDB")
    assert all(device[:3] in DISTRICTS for device in counts)
    # ... and received and written by the instance owning the district only
    for process in two.values():
        assert _metric(process, "firegrid_messages_received_total") == 6 * READINGS
        assert _metric(process, "firegrid_rejects_total") == 0

    # one FIRE_ALARM per district, raised once, by its owner
    def alarms() -> dict[str, list[dict[str, Any]]] | None:
        found = {d: [e for e in p.events() if e["type"] == "FIRE_ALARM"] for d, p in two.items()}
        return found if all(len(v) == 1 for v in found.values()) else None

    found = eventually(alarms, timeout=30, what="a FIRE_ALARM on each instance")
    for district, process in two.items():
        events = process.events()
        assert events and {e["district"] for e in events} == {district}, events  # only its own
        assert found[district][0]["district"] == district
        event_id = found[district][0]["event_id"]
        other = two[DISTRICTS[1 - DISTRICTS.index(district)]]
        assert all(e["event_id"] != event_id for e in other.events())
    raised = [
        (topic, body["event_id"])
        for topic, body, _ in list(listener.received)
        if topic.startswith("alerts/D0")
        and body.get("type") == "FIRE_ALARM"
        and body.get("rev") == 1
        and not topic.endswith("/escalations")
    ]
    assert sorted(raised) == sorted({*raised}) and len(raised) == 2, raised  # one alert each, no repeat
    points = influx_query(
        influx.url,
        influx_db,
        "SELECT count(event_id) FROM events WHERE type = 'FIRE_ALARM' GROUP BY district",
    )
    assert {row["district"]: row["count"] for row in points} == {"D01": 1, "D02": 1}

    # worker actions reach the owner and only the owner answers
    e1, e2 = found["D01"][0]["event_id"], found["D02"][0]["event_id"]
    steps = [
        ("W-D01", e1, "ack"),
        ("W-D02", e2, "ack"),
        ("W-D01", e1, "resolve"),
        ("W-D02", e2, "resolve"),
        ("SUP1", e1, "close"),
        ("SUP1", e2, "close"),
        ("W-D01", "01NOSUCHEVENT000000000000", "ack"),  # unknown: refused once (by W-D01's instance)
    ]

    def result_of(worker: str, event_id: str, action: str) -> list[dict[str, Any]]:
        return [
            body
            for topic, body, _ in list(listener.received)
            if topic == f"actions/{worker}/result"
            and body.get("event_id") == event_id
            and body.get("action") == action
        ]

    for worker, event_id, action in steps:
        listener.publish(f"actions/{worker}", {"event_id": event_id, "action": action, "note": "t"})
        eventually(
            lambda: result_of(worker, event_id, action),  # noqa: B023 (called at once)
            timeout=15,
            what=f"result of {worker} {action}",
        )
    # a last comment answered by each instance: what either published before has arrived by then
    for worker, event_id in (("W-D01", e1), ("W-D02", e2)):
        listener.publish(f"actions/{worker}", {"event_id": event_id, "action": "comment", "note": "marker"})
    eventually(
        lambda: sum(1 for t, b, _ in list(listener.received) if b.get("action") == "comment") == 2,
        timeout=15,
        what="both markers answered",
    )
    results = [(t, b) for t, b, _ in list(listener.received) if t.endswith("/result")]
    assert len(results) == len(steps) + 2, results  # exactly one answer per action
    for _topic, body in results:
        if body["event_id"].startswith("01NOSUCH"):
            assert not body["ok"] and "unknown event" in body["error"], body
        elif body["action"] == "comment":  # on a closed event: refused, by its owner alone
            assert not body["ok"] and body["error"] == "event is closed", body
        else:
            assert body["ok"], body
    for district, event_id in (("D01", e1), ("D02", e2)):
        history = two[district].event(event_id)
        assert history is not None and history["state"] == "closed"
        assert [h["action"] for h in history["history"]][-3:] == ["ack", "resolve", "close"]


def _ingest_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firegrid", "ingest"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unknown_district_and_shared_data_dir_are_refused(
    two: dict[str, IngestProcess], tmp_path: Path
) -> None:
    env = dict(two["D01"].env, FIREGRID_DISTRICTS="D01,D09", FIREGRID_HTTP=f"127.0.0.1:{free_port()}")
    done = _ingest_once(env)
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("firegrid: invalid setting FIREGRID_DISTRICTS: unknown district D09")
    ), done.stderr
    assert "Traceback" not in done.stderr
    # a second instance on a running instance's data dir
    env = dict(two["D01"].env, FIREGRID_DISTRICTS="D02", FIREGRID_HTTP=f"127.0.0.1:{free_port()}")
    done = _ingest_once(env)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "is in use by another running firegrid ingest" in last, done.stderr
    # ... and, once it has stopped, one of other districts
    assert two["D01"].stop() == 0
    done = _ingest_once(env)
    assert done.returncode == 2, done.stderr
    assert "belongs to an instance of districts D01" in done.stderr.strip().splitlines()[-1], done.stderr


def test_reload_keeps_each_instance_to_its_districts(
    two: dict[str, IngestProcess], broker: Mosquitto, topic_prefix: str, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    with (registry / "devices.csv").open("a", newline="") as handle:
        writer = csv.writer(handle)
        for d, district in enumerate(DISTRICTS):
            writer.writerow(
                [f"{district}S9", "smoke", district, f"{district}-S9", 34.303 + d * 0.1, 108.703, ""]
            )
    for process in two.values():
        assert process.proc is not None
        process.proc.send_signal(signal.SIGHUP)

    def reloaded(process: IngestProcess) -> bool:
        return "registry reloaded" in process.log()

    def new_alarms(process: IngestProcess) -> list[dict[str, Any]]:
        return [e for e in process.events() if e["device_id"].endswith("S9")]

    for process in two.values():
        eventually(lambda: reloaded(process), timeout=20, what="reloaded")  # noqa: B023 (called at once)
    listener = Listener(broker.url_as(SIMULATOR_ACCOUNT), topic_prefix)
    try:
        now = int(time.time() * 1000)
        for district in DISTRICTS:
            listener.publish(f"fire/{district}/smoke/{district}S9", {"ts": now, "seq": 1, "alarm": True})
        for district, process in two.items():
            found = eventually(
                lambda: new_alarms(process),  # noqa: B023 (called at once)
                timeout=20,
                what=f"the new device's alarm on {district}",
            )
            assert [e["device_id"] for e in found] == [f"{district}S9"]
    finally:
        listener.client.disconnect()
        listener.client.loop_stop()
    # a registry without D02: its instance refuses the reload (keeps the loaded one), D01's takes it
    rows = (registry / "devices.csv").read_text().splitlines()
    (registry / "devices.csv").write_text("\n".join(r for r in rows if ",D02," not in r) + "\n")
    grids = json.loads((registry / "grids.geojson").read_text())
    grids["features"] = [f for f in grids["features"] if f["properties"]["district"] != "D02"]
    (registry / "grids.geojson").write_text(json.dumps(grids))
    for process in two.values():
        assert process.proc is not None
        process.proc.send_signal(signal.SIGHUP)
    eventually(
        lambda: "registry reload refused" in two["D02"].log() and "unknown district D02" in two["D02"].log(),
        timeout=20,
        what="D02's instance refusing the reload",
    )
    eventually(lambda: two["D01"].log().count("registry reloaded") == 2, timeout=20, what="D01 reloaded")
    assert two["D02"].healthy() and two["D01"].healthy()
