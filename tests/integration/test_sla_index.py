"""`/sla` and `/index` (CONTRACT §12) on a real `firegrid ingest`: HTTP Basic and visibility like
`/events`; events raised through the real broker and acted on by workers over MQTT; the index's
properties on that data; `grid_index` and `grid_sla` points in InfluxDB.

The expected figures are computed here from `/events/{id}` histories, independently of
`safety._figures` (straightforward loops over the documented definitions)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from access import SIMULATOR_ACCOUNT, make_credentials
from firegrid._services import Influxd, Mosquitto
from tests.helpers import HTTP, eventually, influx_query
from tests.integration.conftest import IngestProcess
from tests.integration.test_http_auth import REALM, Api, raise_events
from tests.mqtt import TestClient

MIN = 60_000
HOUR = 3_600_000
DEADLINE = {"critical": 2 * MIN, "major": 30 * MIN, "minor": 8 * HOUR}
G02_MONITORED = ("S0002", "E0002", "W0002")


@pytest.fixture
def credentials(registry_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "credentials"
    make_credentials(registry_dir, out)
    return out


@pytest.fixture
def api(ingest_env: dict[str, str], credentials: Path, registry_dir: Path, tmp_path: Path) -> Iterator[Api]:
    """ingest with: G02's detectors on a 1 s heartbeat (offline 3 s after the start), grid_index
    every second and grid_sla every 2 s."""
    lines = (registry_dir / "devices.csv").read_text().splitlines()
    lines[0] += ",heartbeat_s"
    lines[1:] = [line + (",1" if line.split(",")[0] in G02_MONITORED else ",") for line in lines[1:]]
    (registry_dir / "devices.csv").write_text("\n".join(lines) + "\n")
    rules = tmp_path / "rules.toml"
    rules.write_text("[DEVICE_OFFLINE]\ngrace_s = 1\n")
    env = {
        **ingest_env,
        "FIREGRID_CREDENTIALS": str(credentials),
        "FIREGRID_RULES": str(rules),
        "FIREGRID_INDEX_INTERVAL_S": "1",
        "FIREGRID_SLA_PERIOD_S": "2",
    }
    process = IngestProcess(env, tmp_path / "ingest.log")
    process.start()
    yield Api(process, credentials)
    assert process.stop() == 0


def get(api: Api, path: str, user: str, **params: Any) -> dict[str, Any]:
    response = api.get(path, user, **{k: str(v) for k, v in params.items()})
    assert response.status_code == 200, (path, user, response.status_code, response.text)
    answer: dict[str, Any] = response.json()
    return answer


def test_sla_and_index_need_basic_auth_and_show_what_the_user_may_see(
    api: Api, broker: Mosquitto, topic_prefix: str
) -> None:
    for path in ("/sla", "/index"):
        for auth in (None, ("SUP1", "wrong"), ("nobody", "x")):
            response = HTTP.get(f"{api.base}{path}", auth=auth, timeout=10)
            assert response.status_code == 401 and response.headers["WWW-Authenticate"] == REALM
        assert api.get(path, "S0000").status_code == 403  # a device
        bad = api.get(path, "SUP1", grid="D01/G00")
        assert bad.status_code == 400 and bad.json()["error"].startswith("grid must be letters")
        assert api.get(path, "SUP1", at="now").json() == {
            "error": "at must be Unix epoch milliseconds (digits only), not 'now'"
        }
        assert api.get(path, "SUP1", limit="1").json()["error"].startswith("unknown query parameter 'limit'")

    everything = raise_events(broker, topic_prefix, api)
    grids = ["D01-G00", "D01-G01", "D01-G02", "D01-G03"]
    supervisor = get(api, "/sla", "SUP1")
    assert sorted(supervisor["grids"]) == grids
    assert supervisor["total"]["raised"] == len(everything)
    assert supervisor["grids"]["D01-G01"]["raised"] == 0  # raised: 0 where none
    assert sorted(get(api, "/index", "SUP1")["grids"]) == grids
    # W0 works G00 only: that grid, its events
    w0 = get(api, "/sla", "W0")
    assert list(w0["grids"]) == ["D01-G00"]
    assert w0["total"]["raised"] == sum(e["grid_id"] == "D01-G00" for e in everything)
    assert list(get(api, "/index", "W0")["grids"]) == ["D01-G00"]
    hidden = get(api, "/sla", "W0", grid="D01-G02")
    assert hidden["grids"] == {} and hidden["total"]["raised"] == 0
    # a station: the critical events routed to it, in its district's grids
    for station in ("D01-ST1", "D01-ST2"):
        mine = [e for e in everything if e["severity"] == "critical" and e["station_id"] == station]
        answer = get(api, "/sla", station)
        assert answer["total"]["raised"] == len(mine) > 0 and sorted(answer["grids"]) == grids
    assert get(api, "/sla", "SUP1", district="D02")["grids"] == {}


# -- figures computed independently from /events histories -------------------------------------


def nearest_rank(values: list[float], p: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


def pct(part: int, whole: int) -> float | None:
    if whole == 0:
        return None
    return float(int(1000 * part / whole + 0.5)) / 10 if whole else None


def expected_figures(histories: list[dict[str, Any]], at: int) -> dict[str, Any]:
    raised = on_time = handled = old = closed = 0
    acks: list[float] = []
    resolves: list[float] = []
    for event in histories:
        steps = [s for s in event["history"] if s["at_ms"] <= at]
        if not any(s["action"] == "raise" for s in steps):
            continue
        raised += 1
        first: dict[str, int] = {}
        for step in steps:
            first.setdefault(step["action"], step["at_ms"])
        start = event["raised_at"]
        if "ack" in first:
            acks.append((first["ack"] - start) / 1000)
            if first["ack"] < start + DEADLINE[event["severity"]]:
                on_time += 1
        if "resolve" in first:
            resolves.append((first["resolve"] - start) / 1000)
        if start <= at - 8 * HOUR:
            old += 1
            if "resolve" in first and first["resolve"] - start <= 8 * HOUR:
                handled += 1
        if "close" in first:
            closed += 1
    return {
        "raised": raised,
        "acked_on_time": on_time,
        "handled_8h": handled,
        "closed": closed,
        "ack_p50_s": nearest_rank(acks, 50),
        "ack_p90_s": nearest_rank(acks, 90),
        "resolve_p50_s": nearest_rank(resolves, 50),
        "resolve_p90_s": nearest_rank(resolves, 90),
        "handled_8h_pct": pct(handled, old),
        "closure_pct": pct(closed, raised),
    }


def act(worker: TestClient, api: Api, prefix: str, name: str, event: dict[str, Any], action: str) -> None:
    """``name`` acts on ``event`` over MQTT (actions/{name}); waits until /events shows it."""
    worker.publish(f"{prefix}actions/{name}", {"event_id": event["event_id"], "action": action})
    state = {"ack": "acknowledged", "resolve": "resolved", "close": "closed"}[action]
    eventually(
        lambda: get(api, f"/events/{event['event_id']}", "SUP1")["state"] == state,
        what=f"{name} {action} {event['type']}",
    )


def scan(sim: TestClient, prefix: str, checkpoint: str, worker: str) -> None:
    sim.publish(f"{prefix}fire/D01/patrol/{checkpoint}", {"worker_id": worker, "result": "hazard"})


def index_of(api: Api, at: int) -> dict[str, Any]:
    grids: dict[str, Any] = get(api, "/index", "SUP1", at=at)["grids"]
    return grids


def test_figures_and_index_on_real_data_and_their_points_in_influxdb(
    api: Api, broker: Mosquitto, influx: Influxd, influx_db: str, topic_prefix: str
) -> None:
    sim = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    try:
        # PATROL_HAZARD (major) in G01 (P0000) and G03 (P0002); W1 acknowledges G01's at once
        scan(sim, topic_prefix, "P0000", "W1")
        scan(sim, topic_prefix, "P0002", "W3")
        hazards = eventually(
            lambda: (
                (found := get(api, "/sla", "SUP1", type="PATROL_HAZARD"))["total"]["raised"] == 2 and found
            ),
            what="two patrol hazards",
        )
        assert hazards["grids"]["D01-G01"]["raised"] == 1
        events = {e["grid_id"]: e for e in api.events("SUP1", type="PATROL_HAZARD")}
        act(sim, api, topic_prefix, "W1", events["D01-G01"], "ack")

        # acknowledging on time scores higher on handling than an escalation (G03's, 30 min late)
        later = int(time.time() * 1000) + 40 * MIN
        grids = index_of(api, later)
        handling = {g: grids[g]["groups"]["handling"] for g in ("D01-G01", "D01-G03")}
        assert handling["D01-G01"]["indicators"]["acked_on_time"]["score"] == 100.0
        assert handling["D01-G03"]["indicators"]["acked_on_time"]["score"] == 0.0
        assert handling["D01-G01"]["score"] > handling["D01-G03"]["score"]

        # one more open critical event lowers G00's index; the index at a past `at` stays put
        before_at = int(time.time() * 1000)
        before = index_of(api, before_at)
        sim.publish(f"{topic_prefix}fire/D01/smoke/S0000", {"alarm": True})
        eventually(lambda: api.events("SUP1", type="FIRE_ALARM"), what="the fire alarm")
        after = index_of(api, int(time.time() * 1000))
        assert after["D01-G00"]["index"] < before["D01-G00"]["index"]
        critical = after["D01-G00"]["groups"]["hazards"]["indicators"]["critical"]
        assert critical["basis"] == {"unresolved": 1, "devices": 6}
        assert index_of(api, before_at) == before

        # G02's detectors are silent: all offline, the lowest devices score of all grids
        def all_offline() -> dict[str, Any] | None:
            grids = index_of(api, int(time.time() * 1000))
            online = grids["D01-G02"]["groups"]["devices"]["indicators"]["online"]["basis"]
            return grids if online == {"offline": 3, "monitored": 3} else None

        grids = eventually(all_offline, timeout=30, what="G02's detectors offline")
        devices = {g: grids[g]["groups"]["devices"]["score"] for g in grids}
        assert devices["D01-G02"] == 0.0 == min(v for v in devices.values() if v is not None)
        assert devices["D01-G00"] == 100.0

        # /sla against figures computed here from the histories, at a time in the past and now
        act(sim, api, topic_prefix, "W1", events["D01-G01"], "resolve")
        act(sim, api, topic_prefix, "SUP1", events["D01-G01"], "close")
        histories = [get(api, f"/events/{e['event_id']}", "SUP1") for e in api.events("SUP1")]
        since = min(e["raised_at"] for e in histories)
        for at in (before_at, int(time.time() * 1000), int(time.time() * 1000) + 9 * HOUR):
            answer = get(api, "/sla", "SUP1", since=since, at=at)
            assert answer["total"] == expected_figures(histories, at), at
            for grid, figures in answer["grids"].items():
                mine = [e for e in histories if e["grid_id"] == grid]
                assert figures == expected_figures(mine, at), (grid, at)

        # the points: grid_index every second (G02's devices_online 0), grid_sla per 2 s period
        def index_point() -> list[dict[str, Any]]:
            return influx_query(
                influx.url,
                influx_db,
                "SELECT * FROM grid_index WHERE grid = 'D01-G02' AND devices_online = 0",
            )

        [point, *_] = eventually(index_point, timeout=30, what="grid_index points of G02")
        assert point["district"] == "D01" and point["devices"] == 0.0 and 0 < point["index"] < 100
        assert point["time"] % 1000 == 0  # at its slot

        def sla_points() -> list[dict[str, Any]]:
            return influx_query(
                influx.url, influx_db, "SELECT * FROM grid_sla WHERE grid = 'D01-G01' AND raised > 0"
            )

        [sla, *_] = eventually(sla_points, timeout=30, what="a grid_sla point of G01 with its hazard")
        assert sla["time"] % 2000 == 0 and sla["raised"] == 1.0
        quiet = influx_query(influx.url, influx_db, "SELECT * FROM grid_sla WHERE grid = 'D01-G03' LIMIT 1")
        assert quiet and "closure_pct" in quiet[0]  # each grid gets its points (nulls not written)
    finally:
        sim.close()
