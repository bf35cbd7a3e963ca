"""A simulator scenario run through the real `firegrid ingest`: traffic, ground truth, and the
means to tell when the service has processed all of it.

Used by the end-to-end scenario tests and by the dashboard queries' data fixture.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry
from simulators import Fleet, RunOptions, RunSummary, parse_mqtt_url, run_traffic, write_world
from tests.helpers import API_AUTH, HTTP, eventually, influx_query

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
    response = HTTP.get(f"{http}/events", params={"limit": "100000"}, auth=API_AUTH, timeout=10)
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
    scenario: str | Path,
    truth_path: Path,
    influx_url: str,
    influx_db: str,
    rate: float = 300.0,
    time_scale: float | None = None,
    duration: float | None = None,
    seed: int = 1,
    start_ms: int | None = None,
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
            start_ms=start_ms,
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


LOCAL_OFFSET_MS = 8 * 3_600_000
"""The simulator's daily cycles (patrol rounds, loads) follow China Standard Time."""


def local_start_ms(before_ms: int, hour: float) -> int:
    """The latest instant at or before ``before_ms`` at ``hour`` o'clock local time (e.g. 10.5:
    10:30). Runs of a scenario started there differ from day to day only by the ± 20 min the
    workers' rounds move by, so what one run picks, the next one picks too (mostly)."""
    day = 86_400_000
    local = before_ms + LOCAL_OFFSET_MS
    start = local - local % day + round(hour * 3_600_000)
    if start > local:
        start -= day
    return start - LOCAL_OFFSET_MS


# --- a world and a scenario for the dashboards -------------------------------------------------

DASHBOARD_WORLD_SEED = 19
"""At scale 0.002 with two districts, this seed gives each district two grids, and one grid of
D01 holding every kind: a building with two detectors and an electrical monitor, another
electrical monitor, a water monitor with a tank, and the first checkpoint of its worker's round."""

PATROL_INTERVAL_H = 0.002
"""``patrol_interval_h`` (a per-device override in devices.csv, §7) of D01-G00's checkpoints:
7.2 s × 1.1, so that the service raises PATROL_MISSED during the run (on its own clock)."""

DASHBOARD_TIME_SCALE = 20.0
DASHBOARD_DURATION_S = 32.0
"""Long enough for the scenario's steps, and for `ingest_stats` (every second) to fill two
consecutive 30 s buckets (the rate panels' derivative needs two)."""
HAZARD_AT_S = 90


@dataclass(frozen=True)
class DashboardWorld:
    registry: Path
    grids: dict[str, list[str]]
    """District → its grid ids (renamed D01-G00, D01-G01, ...)."""
    fire_site: str
    water: str
    leaking: str
    worker: str
    run_seed: int
    """The simulator's seed: the first that gives D01-G00's water monitor a tank (level_m)."""


def write_dashboard_world(out: Path) -> DashboardWorld:
    """A generated two-district world whose grids are renamed ``{district}-G00``, ``-G01``, ...
    (the names the dashboard tests select), with D01-G00's checkpoints on a short patrol
    interval. Fails loudly if the generator no longer gives the layout relied on."""
    write_world(out, scale=0.002, seed=DASHBOARD_WORLD_SEED, districts=2)
    geo = orjson.loads((out / "grids.geojson").read_bytes())
    by_district: dict[str, list[str]] = {}
    for feature in geo["features"]:
        props = feature["properties"]
        by_district.setdefault(props["district"], []).append(props["grid_id"])
    rename = {
        old: f"{district}-G{i:02d}"
        for district, grids in by_district.items()
        for i, old in enumerate(sorted(grids))
    }
    workers: dict[str, list[str]] = {}
    for feature in geo["features"]:
        props = feature["properties"]
        props["grid_id"] = rename[props["grid_id"]]
        workers[props["grid_id"]] = list(props["workers"])
    (out / "grids.geojson").write_bytes(orjson.dumps(geo))
    with (out / "devices.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["grid_id"] = rename[row["grid_id"]]
        short = row["grid_id"] == "D01-G00" and row["kind"] == "patrol"
        row["patrol_interval_h"] = repr(PATROL_INTERVAL_H) if short else ""
    with (out / "devices.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    g00 = [row for row in rows if row["grid_id"] == "D01-G00"]
    sites: dict[str, Counter[str]] = {}
    for row in g00:
        sites.setdefault(row["site_id"], Counter())[row["kind"]] += 1
    fire = sorted(s for s, kinds in sites.items() if kinds["smoke"] >= 2 and kinds["electrical"] >= 1)
    water = [row["device_id"] for row in g00 if row["kind"] == "water"]
    leaking = [
        row["device_id"] for row in g00 if row["kind"] == "electrical" and row["site_id"] not in fire[:1]
    ]
    layout = f"world seed {DASHBOARD_WORLD_SEED}: grids {by_district}, D01-G00 sites {sites}"
    assert len(by_district["D01"]) == 2 and fire and water and leaking and workers["D01-G00"], layout
    registry = Registry.load(out)
    run_seed = next(
        seed
        for seed in range(1, 100)
        if (bank := Fleet(registry, seed=seed).water).has_tank[bank.device_ids.index(water[0])]
    )
    return DashboardWorld(
        out,
        {d: sorted(rename[g] for g in grids) for d, grids in by_district.items()},
        fire[0],
        water[0],
        leaking[0],
        workers["D01-G00"][0],
        run_seed,
    )


def write_dashboard_scenario(world: DashboardWorld, path: Path) -> Path:
    """Every kind of data a panel shows, in grid D01-G00: a fire (alarms, FIRE_CONFIRMED, cable
    overheat), a burst main, a leaking circuit, a flat battery, a hazard found on patrol and a
    few hostile messages."""
    cases = ["bad_json", "not_utf8", "wrong_type", "unknown_device", "kind_mismatch", "oversize",
             "ts_future", "ts_too_old", "unknown_worker"]  # fmt: skip
    steps: list[dict[str, Any]] = [
        {"action": "pressure", "at": "20s", "target": {"devices": [world.water]}, "to": 0.02,
         "ramp": "5s", "hold": "3m"},
        {"action": "fire", "at": "30s", "site": world.fire_site, "spread_every": "20s", "burn": "5m",
         "cable": {"rise_c_per_min": 10, "peak_c": 95}},
        {"action": "leakage", "at": "40s", "target": {"devices": [world.leaking]}, "residual_ma": 480,
         "hold": "2m"},
        {"action": "battery", "at": "50s", "target": {"kind": "smoke", "count": 1}, "to": 8},
        {"action": "patrol_hazard", "at": f"{HAZARD_AT_S}s", "worker": world.worker,
         "hazards": ["blocked fire exit", "extinguisher expired"], "note": "stairwell B"},
        {"action": "hostile", "at": "100s", "cases": cases, "every": "1s"},
    ]  # fmt: skip
    scenario = {"name": "dashboards", "description": write_dashboard_scenario.__doc__,
                "time_scale": DASHBOARD_TIME_SCALE, "steps": steps}  # fmt: skip
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def idle_start_ms(world: DashboardWorld, now_ms: int) -> int:
    """The latest simulated start (the run then ends at or before now, within the last 5.5 h)
    at which the worker is off duty at the hazard step, as the simulator requires: a round
    within 2 h of it would make the scan a jump across the district. Deterministic for a given
    ``now_ms``, whatever the time of day."""
    sim_ms = round(DASHBOARD_DURATION_S * DASHBOARD_TIME_SCALE * 1000)
    margin = 2 * 3_600_000 + 300_000
    fleet = Fleet(Registry.load(world.registry), seed=world.run_seed, start_ms=now_ms - 6 * 3_600_000)
    worker = fleet.patrol.workers.index(world.worker)
    rounds = [
        s.t_ms
        for s in fleet.patrol.scans(now_ms - 9 * 3_600_000, now_ms + 3 * 3_600_000)
        if s.worker == worker
    ]
    for back in range(0, 5 * 3_600_000, 300_000):
        start = now_ms - back - sim_ms
        hazard = start + HAZARD_AT_S * 1000
        if not any(abs(t - hazard) < margin for t in rounds):
            return start
    raise AssertionError(f"{world.worker} is never off duty in the last 5 h: rounds at {rounds}")
