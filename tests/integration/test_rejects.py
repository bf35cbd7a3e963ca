"""Every reject reason of CONTRACT §4 ends in `rejects`, never in a reading; the service stays up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from access import SIMULATOR_ACCOUNT
from firegrid._services import Influxd, Mosquitto
from tests.helpers import eventually, influx_query
from tests.integration.conftest import IngestProcess
from tests.mqtt import TestClient

NOW = int(time.time() * 1000)

CASES: list[tuple[str, str, bytes | str]] = [
    ("invalid_json", "fire/D01/smoke/S0000", b'{"alarm": tru'),
    ("invalid_json", "fire/D01/water/W0000", b'{"pressure_mpa": NaN}'),
    ("schema", "fire/D01/smoke/S0000", b'{"alarm": "yes"}'),
    ("schema", "fire/D01/smoke/S0000", b'{"obscuration_db_m": 0.1}'),
    ("schema", "fire/D01/electrical/E0000", b'{"residual_ma": -1}'),
    ("schema", "fire/D01/electrical/E0000", b'{"residual_ma": 1, "temp_c": [1,2,3,4,5,6,7,8,9]}'),
    ("invalid_json", "fire/D01/water/W0000", b'{"pressure_mpa": 1e999}'),
    ("schema", "fire/D01/smoke/S0000", b"[]"),
    ("schema", "fire/D01/smoke/S0000", b'{"alarm": false, "battery_pct": 101}'),
    ("unknown_device", "fire/D01/smoke/NOPE1", b'{"alarm": false}'),
    ("district_mismatch", "fire/D02/smoke/S0000", b'{"alarm": false}'),
    ("kind_mismatch", "fire/D01/water/S0000", b'{"pressure_mpa": 0.3}'),
    ("bad_topic", "fire/D01/laser/S0000", b'{"alarm": false}'),
    ("bad_topic", "fire/D01/smoke", b'{"alarm": false}'),
    ("ts_future", "fire/D01/smoke/S0000", '{"alarm": false, "ts": FUTURE}'),  # times filled in at publish
    ("ts_too_old", "fire/D01/smoke/S0000", '{"alarm": false, "ts": OLD}'),
    ("unknown_worker", "fire/D01/patrol/P0000", b'{"worker_id": "GHOST", "result": "ok"}'),
    ("too_large", "fire/D01/smoke/S0000", b'{"alarm": false, "pad": "' + b"x" * (256 * 1024) + b'"}'),
]


@pytest.fixture
def client(broker: Mosquitto) -> Iterator[TestClient]:
    c = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    yield c
    c.close()


def test_every_reject_reason_is_recorded_and_nothing_else_is_lost(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    now = int(time.time() * 1000)
    times = {"FUTURE": str(now + 6 * 60_000), "OLD": str(now - 31 * 86_400_000)}
    for _, topic, template in CASES:
        payload = template
        if isinstance(payload, str):
            for token, value in times.items():
                payload = payload.replace(token, value)
        client.publish(topic_prefix + topic, payload)
    # a good message after all the bad ones still gets through
    client.publish(f"{topic_prefix}fire/D01/smoke/S0001", {"alarm": True, "ts": NOW})
    rows = eventually(
        lambda: (
            (r := influx_query(influx.url, influx_db, "SELECT * FROM rejects")) and len(r) >= len(CASES) and r
        ),
        what="every reject recorded",
    )
    assert sorted(row["reason"] for row in rows) == sorted(reason for reason, _, _ in CASES)
    for row in rows:
        assert row["topic"].startswith(topic_prefix + "fire/")
        assert row["error"]
        assert 0 < len(row["payload"].encode()) <= 1100  # the first KiB (escaped bytes may grow a little)
    smoke = eventually(lambda: influx_query(influx.url, influx_db, "SELECT alarm, device FROM smoke"))
    assert [(r["device"], r["alarm"]) for r in smoke] == [("S0001", True)]
    for table in ("water", "electrical", "patrol"):
        assert influx_query(influx.url, influx_db, f"SELECT * FROM {table}") == []
    assert ingest.healthy()
    metrics = ingest.metrics()
    assert 'firegrid_rejects_total{reason="schema"} 6.0' in metrics


def test_bad_elements_of_a_batch_are_rejected_and_the_rest_kept(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    batch = [
        {"ts": NOW - 3000, "pressure_mpa": 0.3},
        {"ts": NOW - 2000, "pressure_mpa": "high"},
        {"ts": NOW + 3_600_000, "pressure_mpa": 0.3},
        {"ts": NOW - 1000, "pressure_mpa": 0.31},
    ]
    client.publish(f"{topic_prefix}fire/D01/water/W0001", batch)
    rows = eventually(
        lambda: (r := influx_query(influx.url, influx_db, "SELECT * FROM rejects")) and len(r) == 2 and r
    )
    assert sorted(r["reason"] for r in rows) == ["schema", "ts_future"]
    assert "element 1" in next(r["error"] for r in rows if r["reason"] == "schema")
    water = eventually(
        lambda: (
            (r := influx_query(influx.url, influx_db, "SELECT pressure_mpa FROM water")) and len(r) == 2 and r
        )
    )
    assert [r["pressure_mpa"] for r in water] == [0.3, 0.31]


def test_hostile_identifiers_cannot_inject_line_protocol(
    ingest: IngestProcess, client: TestClient, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    hostile = ["a,b=c d", "x\ny", 'q"uote', "sp ace", "eq=al", "back\\", 'W1 result="ok" 1']
    for text in hostile:
        client.publish(f"{topic_prefix}fire/D01/patrol/P0001", {"worker_id": text, "result": "ok"})
        if "\n" not in text:  # mosquitto drops a client that publishes control characters in a topic
            client.publish(f"{topic_prefix}fire/D01/smoke/{text}", {"alarm": False})
    note = 'ok" 1\nsmoke,device=EVIL alarm=true 1\n'
    client.publish(
        f"{topic_prefix}fire/D01/patrol/P0001",
        {"worker_id": "W1", "result": "hazard", "hazards": ["a,b", 'c="d"'], "note": note, "ts": NOW},
    )
    patrol = eventually(lambda: influx_query(influx.url, influx_db, "SELECT * FROM patrol"))
    assert len(patrol) == 1
    assert patrol[0]["note"] == 'ok" 1\\nsmoke,device=EVIL alarm=true 1\\n'
    assert patrol[0]["hazards"] == 'a,b,c="d"', patrol
    rejects = eventually(
        lambda: (
            (r := influx_query(influx.url, influx_db, "SELECT * FROM rejects"))
            and len(r) >= 2 * len(hostile) - 1
            and r
        )
    )
    assert {r["reason"] for r in rejects} <= {"schema", "bad_topic"}
    assert influx_query(influx.url, influx_db, "SELECT * FROM smoke") == []
    measurements = influx_query(influx.url, influx_db, "SHOW MEASUREMENTS")
    service = {"patrol", "rejects", "ingest_stats", "events", "fleet", "grid_index", "grid_sla"}
    assert {m["name"] for m in measurements} <= service
