"""Every kind's valid message, alone and in a batch, becomes exactly the point of CONTRACT §6."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from access import SIMULATOR_ACCOUNT
from devices import KINDS, KindSpec
from firegrid._services import Influxd, Mosquitto
from tests.helpers import eventually, influx_query
from tests.integration.conftest import IngestProcess
from tests.mqtt import TestClient

DEVICE = {"smoke": "S0000", "electrical": "E0001", "water": "W0002", "patrol": "P0000"}
GRID = {"smoke": "D01-G00", "electrical": "D01-G00", "water": "D01-G02", "patrol": "D01-G01"}
SITE = {"smoke": "S0", "electrical": "S1", "water": "S0", "patrol": "S0"}

EXPECTED_FIELDS: dict[str, dict[str, Any]] = {
    "smoke": {
        "alarm": False,
        "obscuration_db_m": 0.02,
        "battery_pct": 87.0,
        "rssi_dbm": -71.0,
        "tamper": False,
    },
    "electrical": {
        "residual_ma": 42.0,
        "temp_c_max": 41.0,
        "temp_c_1": 38.5,
        "temp_c_2": 41.0,
        "temp_c_3": 39.2,
        "current_a_max": 12.1,
        "arc_count": 0.0,
    },
    "water": {"pressure_mpa": 0.32, "level_m": 2.4, "battery_pct": 64.0},
    "patrol": {
        "result": "hazard",
        "hazard_count": 2.0,
        "hazards": "blocked exit,extinguisher expired",
        "note": "stairwell B",
    },
}


@pytest.fixture
def client(broker: Mosquitto) -> Iterator[TestClient]:
    c = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    yield c
    c.close()


def _topic(prefix: str, kind: str) -> str:
    return f"{prefix}fire/D01/{kind}/{DEVICE[kind]}"


@pytest.mark.parametrize("spec", KINDS, ids=lambda s: s.name)
def test_single_and_batch_messages_become_exact_points(
    spec: KindSpec,
    ingest: IngestProcess,
    client: TestClient,
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
) -> None:
    now = int(time.time() * 1000) // 1000 * 1000
    sample = dict(spec.sample, worker_id="W1") if spec.name == "patrol" else dict(spec.sample)
    single = dict(sample, ts=now - 5000, seq=1)
    batch = [dict(sample, ts=now - 3000 + i, seq=2 + i) for i in range(3)]
    client.publish(_topic(topic_prefix, spec.name), single)
    client.publish(_topic(topic_prefix, spec.name), batch)

    rows = eventually(
        lambda: (
            (r := influx_query(influx.url, influx_db, f'SELECT * FROM "{spec.name}"')) and len(r) >= 4 and r
        ),
        what=f"4 {spec.name} points",
    )
    assert [row["time"] for row in rows] == [now - 5000, now - 3000, now - 2999, now - 2998]
    tags = {"district": "D01", "grid": GRID[spec.name], "site": SITE[spec.name], "device": DEVICE[spec.name]}
    if spec.name == "patrol":
        tags["worker"] = "W1"
    for row in rows:
        present = {k: v for k, v in row.items() if v is not None and k != "time"}
        assert present == {**EXPECTED_FIELDS[spec.name], **tags}


def test_field_types_are_fixed(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    """Integers sent by a device are stored as floats, so the field type never flips."""
    now = int(time.time() * 1000)
    client.publish(_topic(topic_prefix, "water"), {"ts": now - 20, "pressure_mpa": 1, "battery_pct": 50})
    client.publish(_topic(topic_prefix, "water"), {"ts": now - 10, "pressure_mpa": 0.5})
    eventually(lambda: len(influx_query(influx.url, influx_db, "SELECT pressure_mpa FROM water")) == 2)
    keys = influx_query(influx.url, influx_db, "SHOW FIELD KEYS FROM water")
    assert {row["fieldKey"]: row["fieldType"] for row in keys} == {
        "pressure_mpa": "float",
        "battery_pct": "float",
    }


def test_missing_ts_takes_time_of_receipt(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    before = int(time.time() * 1000)
    client.publish(_topic(topic_prefix, "smoke"), {"alarm": False})
    rows = eventually(lambda: influx_query(influx.url, influx_db, "SELECT alarm FROM smoke"))
    assert before <= rows[0]["time"] <= int(time.time() * 1000)


def test_same_device_and_seq_twice_give_one_point(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    now = int(time.time() * 1000)
    client.publish(_topic(topic_prefix, "water"), {"ts": now - 2000, "seq": 7, "pressure_mpa": 0.3})
    client.publish(_topic(topic_prefix, "water"), {"ts": now - 1000, "seq": 7, "pressure_mpa": 0.3})
    client.publish(_topic(topic_prefix, "water"), {"ts": now - 500, "seq": 8, "pressure_mpa": 0.4})
    rows = eventually(
        lambda: (
            (r := influx_query(influx.url, influx_db, "SELECT pressure_mpa FROM water"))
            and r[-1]["pressure_mpa"] == 0.4
            and r
        )
    )
    assert [row["time"] for row in rows] == [now - 2000, now - 500]
    eventually(lambda: "firegrid_duplicates_total 1.0" in ingest.metrics(), what="duplicate counted")
    eventually(
        lambda: "firegrid_commit_pending_lines 0.0" in ingest.metrics(),
        what="nothing left to write",
    )


def test_sighup_reloads_the_registry_keeping_state(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    import signal

    from tests.helpers import eventually as wait

    registry = ingest.env["FIREGRID_REGISTRY"]
    now = int(time.time() * 1000)
    client.publish(_topic(topic_prefix, "water"), {"ts": now - 900, "seq": 3, "pressure_mpa": 0.3})
    client.publish(f"{topic_prefix}fire/D01/water/NEW1", {"ts": now - 800, "pressure_mpa": 0.3})
    wait(lambda: influx_query(influx.url, influx_db, "SELECT * FROM rejects WHERE reason = 'unknown_device'"))
    with open(f"{registry}/devices.csv", "a") as handle:
        handle.write("NEW1,water,D01,S7,34.302,108.702,\n")
    assert ingest.proc is not None
    ingest.proc.send_signal(signal.SIGHUP)
    wait(lambda: "registry reloaded" in ingest.log(), what="reload logged")
    client.publish(f"{topic_prefix}fire/D01/water/NEW1", {"ts": now - 700, "pressure_mpa": 0.3})
    client.publish(
        _topic(topic_prefix, "water"), {"ts": now - 600, "seq": 3, "pressure_mpa": 0.3}
    )  # still a duplicate
    rows = wait(
        lambda: influx_query(influx.url, influx_db, "SELECT pressure_mpa FROM water WHERE device = 'NEW1'")
    )
    assert [r["time"] for r in rows] == [now - 700]
    wait(
        lambda: "firegrid_duplicates_total 1.0" in ingest.metrics(), what="dedup state kept across the reload"
    )


def test_service_writes_fleet_and_ingest_stats(
    ingest: IngestProcess, influx: Influxd, influx_db: str
) -> None:
    fleet = eventually(
        lambda: influx_query(influx.url, influx_db, "SELECT * FROM fleet"), what="fleet points"
    )
    assert {(r["district"], r["kind"], r["registered"]) for r in fleet} == {
        ("D01", "smoke", 3.0),
        ("D01", "electrical", 3.0),
        ("D01", "water", 3.0),
    }
    stats = eventually(
        lambda: influx_query(influx.url, influx_db, "SELECT * FROM ingest_stats"), what="stats"
    )
    assert {"received", "written", "rejected", "duplicates", "spooled", "spool_depth"} <= set(stats[0])
