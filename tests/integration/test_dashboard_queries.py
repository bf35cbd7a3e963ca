"""Every query of every panel of every dashboard, run against a real InfluxDB holding firegrid data.

No Grafana can run here, so Grafana's part is reproduced: macros and template variables are
substituted (``dashboards.interpolate``), and the few transformations the dashboards use are
applied to the rows (:func:`apply_transformations`), so a panel that would show nothing fails.

The data comes from one fixture, :func:`firegrid_data`. It writes the schema of CONTRACT §6 plus
the service's extensions (``ingest_stats``, ``fleet``, ``lat``/``lon``/``message`` on events)
as line protocol. It is the one place to swap for a simulator scenario run through
``firegrid ingest`` once ``simulators`` can drive one (same return value: the time window
and the template-variable selections the data covers).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import dashboards
from firegrid._services import Influxd, Mosquitto
from tests.helpers import eventually, influx_query
from tests.integration.conftest import IngestProcess
from tests.scenario_run import (
    DASHBOARD_DURATION_S,
    DASHBOARD_TIME_SCALE,
    idle_start_ms,
    raised_keys,
    run_scenario,
    write_dashboard_scenario,
    write_dashboard_world,
)

MINUTE = 60_000
HOUR = 60 * MINUTE


@dataclass(frozen=True)
class Window:
    """What the data covers: a time window and the variable selections that must show data."""

    start_ms: int
    end_ms: int
    selections: Sequence[dict[str, Sequence[str] | None]] = field(default_factory=list)


# --- the data ---------------------------------------------------------------------------------


def _tags(**tags: str) -> str:
    return ",".join(f"{k}={v}" for k, v in tags.items())


def _fields(**values: float | bool | str) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            parts.append(f"{key}={'true' if value else 'false'}")
        elif isinstance(value, float | int):
            parts.append(f"{key}={float(value)!r}")
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{key}="{escaped}"')
    return ",".join(parts)


class LineWriter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def point(self, measurement: str, tags: dict[str, str], values: dict[str, Any], ts_ms: int) -> None:
        self.lines.append(f"{measurement},{_tags(**tags)} {_fields(**values)} {ts_ms}")

    def flush(self, url: str, db: str) -> None:
        httpx.post(f"{url}/query", data={"q": f'CREATE DATABASE "{db}"'}, timeout=30).raise_for_status()
        for i in range(0, len(self.lines), 5000):
            body = "\n".join(self.lines[i : i + 5000]).encode()
            response = httpx.post(
                f"{url}/write", params={"db": db, "precision": "ms"}, content=body, timeout=60
            )
            assert response.status_code == 204, response.text


SITES = {  # grid -> [(site, lat, lon)]
    "D01-G00": [("S0001", 34.3021, 108.7013), ("S0002", 34.3043, 108.7052)],
    "D01-G01": [("S0003", 34.3121, 108.7133)],
    "D02-G00": [("S0101", 34.4012, 108.8021)],
}
WORKERS = {"D01-G00": "W0", "D01-G01": "W1", "D02-G00": "W2"}


def _district(grid: str) -> str:
    return grid.split("-", maxsplit=1)[0]


def write_readings(out: LineWriter, start: int, end: int) -> None:
    """Two hours of readings of every kind, minute by minute, in three grids of two districts."""
    for grid, sites in SITES.items():
        district = _district(grid)
        for s, (site, _lat, _lon) in enumerate(sites):
            base = {"district": district, "grid": grid, "site": site}
            for ts in range(start, end, MINUTE):
                k = (ts - start) // MINUTE
                phase = math.sin(k / 9 + s)
                for d in range(2):
                    alarm = grid == "D01-G00" and s == 0 and 40 <= k < 44
                    if k % 5 == 0 or alarm:
                        out.point(
                            "smoke",
                            {**base, "device": f"SM{site[1:]}{d}"},
                            {
                                "alarm": alarm,
                                "obscuration_db_m": 0.02 + (0.9 if alarm else 0.0),
                                "battery_pct": 87.0 - k * 0.01,
                                "rssi_dbm": -71.0 - d,
                                "tamper": False,
                            },
                            ts + d * 1000,
                        )
                temps = [
                    38 + 6 * phase + i + (40 if grid == "D01-G00" and 60 <= k < 75 else 0) for i in range(4)
                ]
                out.point(
                    "electrical",
                    {**base, "device": f"EL{site[1:]}"},
                    {
                        "residual_ma": 120 + 60 * phase + (230 if 80 <= k < 90 else 0),
                        "temp_c_max": max(temps),
                        **{f"temp_c_{i + 1}": t for i, t in enumerate(temps)},
                        "current_a_max": 42 + 10 * phase,
                        "arc_count": float(k % 37 == 0),
                    },
                    ts + 2000,
                )
                pressure = 0.55 + 0.2 * phase - (0.5 if grid == "D01-G00" and 30 <= k < 50 else 0)
                out.point(
                    "water",
                    {**base, "device": f"WA{site[1:]}"},
                    {"pressure_mpa": round(pressure, 3), "level_m": 3.2 - k * 0.002, "battery_pct": 64.0},
                    ts + 3000,
                )
                if k % 10 == 0:
                    hazard = k % 30 == 0
                    scan = {"result": "hazard" if hazard else "ok", "hazard_count": 2.0 if hazard else 0.0}
                    if hazard:
                        scan["hazards"] = "blocked exit,extinguisher missing"
                    out.point(
                        "patrol",
                        {**base, "device": f"NFC{site[1:]}", "worker": WORKERS[grid]},
                        scan,
                        ts + 4000,
                    )


@dataclass
class Event:
    event_id: str
    type: str
    severity: str
    kind: str
    grid: str
    site: str
    device: str
    value: float
    states: list[tuple[int, str]]


def write_events(out: LineWriter, start: int) -> None:
    """Events through their lifecycle; some still active at the end of the window."""
    events = [
        Event(
            "01JFIRE0000000000000000001",
            "FIRE_ALARM",
            "critical",
            "smoke",
            "D01-G00",
            "S0001",
            "SM00010",
            1.0,
            [(40, "open"), (42, "acknowledged")],
        ),
        Event(
            "01JFIRE0000000000000000002",
            "FIRE_CONFIRMED",
            "critical",
            "smoke",
            "D01-G00",
            "S0001",
            "SM00011",
            2.0,
            [(41, "open")],
        ),
        Event(
            "01JELEC0000000000000000001",
            "CABLE_OVERHEAT",
            "major",
            "electrical",
            "D01-G00",
            "S0001",
            "EL0001",
            81.5,
            [(61, "open"), (70, "acknowledged"), (80, "resolved"), (95, "closed")],
        ),
        Event(
            "01JELEC0000000000000000002",
            "RESIDUAL_CURRENT_HIGH",
            "major",
            "electrical",
            "D01-G00",
            "S0002",
            "EL0002",
            342.0,
            [(81, "open")],
        ),
        Event(
            "01JWATR0000000000000000001",
            "LOW_PRESSURE",
            "major",
            "water",
            "D01-G00",
            "S0001",
            "WA0001",
            0.08,
            [(31, "open"), (35, "acknowledged")],
        ),
        Event(
            "01JWATR0000000000000000002",
            "PRESSURE_LOSS",
            "critical",
            "water",
            "D01-G00",
            "S0001",
            "WA0001",
            0.04,
            [(33, "open"), (55, "resolved")],
        ),
        Event(
            "01JPTRL0000000000000000001",
            "PATROL_MISSED",
            "minor",
            "patrol",
            "D01-G00",
            "S0002",
            "NFC0002",
            26.4,
            [(20, "open")],
        ),
        Event(
            "01JPTRL0000000000000000002",
            "PATROL_MISSED",
            "minor",
            "patrol",
            "D02-G00",
            "S0101",
            "NFC0101",
            27.0,
            [(25, "open"), (100, "resolved")],
        ),
        Event(
            "01JSMOK0000000000000000003",
            "LOW_BATTERY",
            "minor",
            "smoke",
            "D01-G01",
            "S0003",
            "SM00030",
            12.0,
            [(15, "open")],
        ),
        Event(
            "01JSMOK0000000000000000004",
            "DEVICE_OFFLINE",
            "minor",
            "smoke",
            "D02-G00",
            "S0101",
            "SM01011",
            0.0,
            [(50, "open")],
        ),
    ]
    sites = {site: (lat, lon) for grid_sites in SITES.values() for site, lat, lon in grid_sites}
    for n, event in enumerate(events):
        lat, lon = sites[event.site]
        for count, (minute, state) in enumerate(event.states, start=1):
            out.point(
                "events",
                {
                    "district": _district(event.grid),
                    "grid": event.grid,
                    "type": event.type,
                    "severity": event.severity,
                    "kind": event.kind,
                },
                {
                    "event_id": event.event_id,
                    "device": event.device,
                    "site": event.site,
                    "state": state,
                    "value": event.value,
                    "count": float(count),
                    "lat": lat + 0.0001 * n,
                    "lon": lon,
                    "message": f"{event.type} at {event.device}: {event.value:g}",
                },
                start + minute * MINUTE + n * 7,
            )


def write_service_stats(out: LineWriter, start: int, end: int) -> None:
    """``ingest_stats`` every 10 s, ``fleet`` every 60 s, and a few ``rejects``."""
    totals = dict.fromkeys(("received", "written", "rejected", "duplicates", "spooled"), 0.0)
    for i, ts in enumerate(range(start, end, 10_000)):
        totals["received"] += 400 + (i % 7) * 10
        totals["written"] += 395 + (i % 7) * 10
        totals["rejected"] += i % 3
        totals["duplicates"] += i % 2
        totals["spooled"] += 50 if 300 <= i < 320 else 0
        out.point(
            "ingest_stats",
            {"instance": "firegrid-1"},
            {**totals, "spool_depth": 200.0 if 300 <= i < 320 else 0.0, "write_latency_ms": 12.0 + (i % 11)},
            ts,
        )
    registered = {"smoke": 2861.0, "electrical": 2113.0, "water": 430.0, "patrol": 4064.0}
    for ts in range(start, end, MINUTE):
        for district in ("D01", "D02"):
            for kind, count in registered.items():
                online = count if kind == "patrol" else count - 3 - (ts // MINUTE) % 4
                out.point(
                    "fleet", {"district": district, "kind": kind}, {"registered": count, "online": online}, ts
                )
    for j, reason in enumerate(("invalid_json", "schema", "unknown_device", "ts_out_of_range")):
        for r in range(3):
            out.point(
                "rejects",
                {"reason": reason},
                {
                    "topic": f"fire/D01/smoke/SM9{j}{r}",
                    "error": f"{reason}: example",
                    "payload": '{"alarm": "yes"}',
                },
                start + (10 + 20 * j + r) * MINUTE,
            )


@pytest.fixture
def firegrid_data(
    influx: Influxd,
    influx_db: str,
    broker: Mosquitto,
    topic_prefix: str,
    ingest_env: dict[str, str],
    tmp_path: Path,
) -> Window:
    """Fill ``influx_db`` through `firegrid ingest` from a simulator scenario; the window and
    selections.

    A generated two-district world (grids renamed D01-G00, D01-G01, D02-G00, D02-G01) and a
    scenario putting a fire, a burst main, a leaking circuit, a flat battery, a patrol hazard and
    hostile messages in D01-G00 (:func:`tests.scenario_run.write_dashboard_scenario`), with
    background telemetry from every device. Everything in InfluxDB is written by the service:
    readings, ``rejects``, ``events`` (from the rules; PATROL_MISSED through a short per-device
    ``patrol_interval_h`` in the registry), ``fleet`` and ``ingest_stats`` (every second).
    """
    world = write_dashboard_world(tmp_path / "world")
    scenario = write_dashboard_scenario(world, tmp_path / "dashboards.yaml")
    env = {**ingest_env, "FIREGRID_REGISTRY": str(world.registry), "FIREGRID_INSTANCE": "firegrid-1"}
    service = IngestProcess(env, tmp_path / "ingest.log")
    begin = int(time.time() * 1000)
    service.start()
    try:
        start = idle_start_ms(world, int(time.time() * 1000))
        run = run_scenario(
            registry=world.registry,
            url=broker.url,
            prefix=topic_prefix,
            scenario=scenario,
            truth_path=tmp_path / "truth.jsonl",
            influx_url=influx.url,
            influx_db=influx_db,
            time_scale=DASHBOARD_TIME_SCALE,
            duration=DASHBOARD_DURATION_S,
            start_ms=start,
            seed=world.run_seed,
        )
        assert {(t, g) for t, g, _ in run.truth.events} >= {
            ("FIRE_CONFIRMED", "D01-G00"), ("CABLE_OVERHEAT", "D01-G00"), ("PRESSURE_LOSS", "D01-G00"),
            ("RESIDUAL_CURRENT_HIGH", "D01-G00"), ("PATROL_HAZARD", "D01-G00"),
        }, run.truth.events  # fmt: skip
        # the events the scenario causes, and a missed checkpoint (service clock), are stored
        eventually(lambda: run.truth.events <= raised_keys(service.http), timeout=20, what="every event")
        eventually(
            lambda: influx_query(
                influx.url, influx_db, """SELECT "state" FROM "events" WHERE "type" = 'PATROL_MISSED'"""
            ),
            timeout=20,
            what="a PATROL_MISSED event in InfluxDB",
        )
    finally:
        service.stop()
    end = int(time.time() * 1000)
    everything: dict[str, Sequence[str] | None] = {"district": None, "grid": None, "instance": None}
    one_grid: dict[str, Sequence[str] | None] = {
        "district": ["D01"],
        "grid": ["D01-G00"],
        "instance": ["firegrid-1"],
    }
    several: dict[str, Sequence[str] | None] = {
        "district": ["D01", "D02"],
        "grid": ["D01-G00", "D02-G00"],
        "instance": None,
    }
    return Window(min(start, begin), end, [everything, one_grid, several])


# --- Grafana's side ---------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": MINUTE, "h": HOUR, "d": 24 * HOUR}


def duration_ms(text: str) -> int:
    match = _DURATION.match(text)
    assert match, f"not a Grafana duration: {text!r}"
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def apply_transformations(rows: list[dict[str, Any]], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subset of Grafana transformations the dashboards use, on rows (dicts) in time order."""
    for step in steps:
        options = step["options"]
        if step["id"] == "groupBy":
            keys = [n for n, o in options["fields"].items() if o["operation"] == "groupby"]
            aggs = {
                n: o["aggregations"] for n, o in options["fields"].items() if o["operation"] == "aggregate"
            }
            groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
            for row in rows:
                groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
            out = []
            for key, members in groups.items():
                result = dict(zip(keys, key, strict=True))
                for name, calcs in aggs.items():
                    values = [m.get(name) for m in members]
                    for calc in calcs:
                        present = [v for v in values if v is not None]
                        result[f"{name} ({calc})"] = {
                            "lastNotNull": present[-1] if present else None,
                            "count": len(values),
                        }[calc]
                out.append(result)
            rows = out
        elif step["id"] == "organize":
            renames = options.get("renameByName", {})
            excluded = options.get("excludeByName", {})
            rows = [{renames.get(k, k): v for k, v in row.items() if not excluded.get(k)} for row in rows]
        elif step["id"] == "filterByValue":
            assert options["type"] == "include" and options["match"] == "any"
            kept = []
            for row in rows:
                for flt in options["filters"]:
                    assert flt["config"]["id"] == "regex"
                    if re.search(flt["config"]["options"]["value"], str(row.get(flt["fieldName"]))):
                        kept.append(row)
                        break
            rows = kept
        elif step["id"] == "groupingToMatrix":
            col, row_field, value = options["columnField"], options["rowField"], options["valueField"]
            matrix: dict[Any, dict[str, Any]] = {}
            for row in rows:
                matrix.setdefault(row[row_field], {f"{row_field}\\{col}": row[row_field]})[row[col]] = row[
                    value
                ]
            rows = list(matrix.values())
        else:
            raise AssertionError(f"transformation {step['id']} is not emulated here: add it")
    return rows


def _run(influx: Influxd, db: str, query: str) -> list[dict[str, Any]]:
    return influx_query(influx.url, db, query)


def _value_columns(influx: Influxd, db: str, query: str) -> set[str]:
    """The columns of a result that are values (not ``time``, not GROUP BY tags)."""
    response = httpx.get(f"{influx.url}/query", params={"db": db, "q": query, "epoch": "ms"}, timeout=30)
    columns = set()
    for result in response.json().get("results", []):
        for series in result.get("series", []):
            columns.update(c for c in series["columns"] if c != "time")
    return columns


def test_every_panel_query_returns_rows(influx: Influxd, influx_db: str, firegrid_data: Window) -> None:
    checked = 0
    failures = []
    for uid, data in dashboards.all_dashboards().items():
        default_range = data["time"]["from"]
        assert default_range.startswith("now-")
        for panel, target in dashboards.iter_targets(data):
            range_ms = duration_ms(panel.get("timeFrom") or default_range.removeprefix("now-"))
            interval_ms = max(duration_ms(panel.get("interval", "1s")), range_ms // 1000)
            for selection in firegrid_data.selections:
                query = dashboards.interpolate(
                    target["query"],
                    variables=selection,
                    time_from_ms=firegrid_data.end_ms - range_ms,
                    time_to_ms=firegrid_data.end_ms + MINUTE,
                    interval_ms=interval_ms,
                )
                assert "$" not in query.replace("$/", "/"), (
                    f"{uid} / {panel['title']}: unsubstituted: {query}"
                )
                try:
                    rows = _run(influx, influx_db, query)
                except httpx.HTTPStatusError as exc:
                    failures.append(
                        f"{uid} / {panel['title']} [{selection}]: {exc.response.text}\n    {query}"
                    )
                    continue
                except AssertionError as exc:
                    failures.append(f"{uid} / {panel['title']} [{selection}]: {exc}\n    {query}")
                    continue
                steps = panel.get("transformations", [])
                shown = apply_transformations(rows, steps)
                # Tags are always filled; a panel shows data only if a value column is (or, after
                # transformations, any column but time is).
                values = _value_columns(influx, influx_db, query) if not steps else None
                if not [
                    r
                    for r in shown
                    if any(
                        v is not None for k, v in r.items() if k != "time" and (values is None or k in values)
                    )
                ]:
                    failures.append(f"{uid} / {panel['title']} [{selection}]: no rows\n    {query}")
                checked += 1
    assert not failures, "\n".join(failures)
    assert checked >= 5 * 3


def test_template_variable_queries_return_values(
    influx: Influxd, influx_db: str, firegrid_data: Window
) -> None:
    for uid, data in dashboards.all_dashboards().items():
        for variable in data["templating"]["list"]:
            assert variable["datasource"]["uid"] == dashboards.DATASOURCE_UID
            for selection in firegrid_data.selections:
                query = dashboards.interpolate(
                    variable["query"],
                    variables=selection,
                    time_from_ms=firegrid_data.start_ms,
                    time_to_ms=firegrid_data.end_ms,
                    interval_ms=MINUTE,
                )
                values = {row["value"] for row in _run(influx, influx_db, query)}
                assert values, f"{uid}: variable {variable['name']} has no values: {query}"
                if variable["name"] == "grid" and selection["district"] == ["D01"]:
                    assert values == {"D01-G00", "D01-G01"}, values


def test_a_grid_selection_narrows_the_rows(influx: Influxd, influx_db: str, firegrid_data: Window) -> None:
    query = dashboards.interpolate(
        'SELECT count("pressure_mpa") FROM "water" WHERE $timeFilter AND "district" =~ /^$district$/ '
        'AND "grid" =~ /^$grid$/ GROUP BY "grid"',
        variables={"district": ["D01"], "grid": ["D01-G00"]},
        time_from_ms=firegrid_data.start_ms,
        time_to_ms=firegrid_data.end_ms,
        interval_ms=MINUTE,
    )
    assert {row["grid"] for row in _run(influx, influx_db, query)} == {"D01-G00"}
