"""Every query of every panel of every dashboard, run against a real InfluxDB holding firegrid data.

No Grafana can run here, so Grafana's part is reproduced: macros and template variables are
substituted (``dashboards.interpolate``), and the few transformations the dashboards use are
applied to the rows (:func:`apply_transformations`), so a panel that would show nothing fails.

The data comes from one fixture, :func:`firegrid_data`: a simulator scenario run through
`firegrid ingest`, so that everything in InfluxDB is what the service writes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import dashboards
from access import SIMULATOR_ACCOUNT
from devices import Registry
from firegrid._services import Influxd, Mosquitto
from tests.conftest import running
from tests.helpers import HTTP, eventually, influx_query
from tests.integration.conftest import IngestProcess, service_env
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
INSTANCE = "firegrid-1"
"""The ``instance`` tag of the service's ``ingest_stats``."""

Selection = dict[str, Sequence[str] | None]
"""Template variable → its selected values (None: "All")."""


@dataclass(frozen=True)
class Window:
    """What the data covers: a time window, the world's grids, and the variable selections that
    must show data."""

    start_ms: int
    end_ms: int
    grids: Mapping[str, Sequence[str]]
    """District → its grid ids, as the world the data comes from has them."""
    district: str
    grid: str
    """The district and grid the scenario plays in (every kind of data, every event)."""
    selections: Sequence[Selection]
    db: str
    """The InfluxDB database holding it."""


def _selections(grids: Mapping[str, Sequence[str]], district: str, grid: str) -> list[Selection]:
    """Everything; the scenario's grid alone; every district, with one grid of each."""
    others = [ids[0] for d, ids in sorted(grids.items()) if d != district]
    return [
        {"district": None, "grid": None, "instance": None},
        {"district": [district], "grid": [grid], "instance": [INSTANCE]},
        {"district": sorted(grids), "grid": [grid, *others], "instance": None},
    ]


# --- the data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def firegrid_data(
    influxd: Influxd, mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Window]:
    """Fill a database of its own through `firegrid ingest` from a simulator scenario; the window
    and selections. Built once for the module (~35 s): the tests only read it.

    A generated two-district world (:func:`tests.scenario_run.write_dashboard_world`) and a
    scenario putting a fire, a burst main, a leaking circuit, a flat battery, a patrol hazard and
    hostile messages in one grid (:func:`tests.scenario_run.write_dashboard_scenario`), with
    background telemetry from every device. Everything in InfluxDB is written by the service:
    readings, ``rejects``, ``events`` (from the rules; PATROL_MISSED through a short per-device
    ``patrol_interval_h`` in the registry), ``fleet`` and ``ingest_stats`` (every second).
    """
    influx, broker = running(influxd), running(mosquitto)
    tmp_path = tmp_path_factory.mktemp("dashboards")
    influx_db, topic_prefix = f"dashboards{os.getpid()}", f"dashboards{os.getpid()}/"
    data_dir = tmp_path / "data"
    world = write_dashboard_world(tmp_path / "world")
    water = Registry.load(world.registry).device(world.water)
    assert water is not None, world
    district, grid = water.district, water.grid_id  # the scenario's steps all target this grid
    scenario = write_dashboard_scenario(world, tmp_path / "dashboards.yaml")
    env = {
        **service_env(broker, influx, influx_db, topic_prefix, world.registry, data_dir),
        "FIREGRID_INSTANCE": INSTANCE,
        # grid_index and grid_sla points within the run (every 15 min and daily in service)
        "FIREGRID_INDEX_INTERVAL_S": "2",
        "FIREGRID_SLA_PERIOD_S": "5",
    }
    service = IngestProcess(env, tmp_path / "ingest.log")
    begin = int(time.time() * 1000)
    service.start()
    try:
        start = idle_start_ms(world, int(time.time() * 1000))
        run = run_scenario(
            registry=world.registry,
            url=broker.url_as(SIMULATOR_ACCOUNT),
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
        caused = (
            "FIRE_CONFIRMED",
            "CABLE_OVERHEAT",
            "PRESSURE_LOSS",
            "RESIDUAL_CURRENT_HIGH",
            "PATROL_HAZARD",
        )
        assert {(t, g) for t, g, _ in run.truth.events} >= {(t, grid) for t in caused}, run.truth.events
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
    selections = _selections(world.grids, district, grid)
    yield Window(min(start, begin), end, world.grids, district, grid, selections, influx_db)
    HTTP.post(f"{influx.url}/query", data={"q": f'DROP DATABASE "{influx_db}"'}, timeout=10)


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
        elif step["id"] == "renameByRegex":
            pattern, replacement = (
                re.compile(options["regex"]),
                re.sub(r"\$(\d+)", r"\\\1", options["renamePattern"]),
            )
            rows = [
                {pattern.sub(replacement, k) if pattern.fullmatch(k) else k: v for k, v in row.items()}
                for row in rows
            ]
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
    response = HTTP.get(f"{influx.url}/query", params={"db": db, "q": query, "epoch": "ms"}, timeout=30)
    columns: set[str] = set()
    for result in response.json().get("results", []):
        for series in result.get("series", []):
            columns.update(c for c in series["columns"] if c != "time")
    return columns


def test_every_panel_query_returns_rows(influx: Influxd, firegrid_data: Window) -> None:
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
                    rows = _run(influx, firegrid_data.db, query)
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
                values = _value_columns(influx, firegrid_data.db, query) if not steps else None
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


def test_template_variable_queries_return_values(influx: Influxd, firegrid_data: Window) -> None:
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
                values = {row["value"] for row in _run(influx, firegrid_data.db, query)}
                assert values, f"{uid}: variable {variable['name']} has no values: {query}"
                districts = selection["district"]
                if variable["name"] == "grid" and districts is not None:
                    wanted = {g for district in districts for g in firegrid_data.grids[district]}
                    assert values == wanted, (districts, values)


def test_a_grid_selection_narrows_the_rows(influx: Influxd, firegrid_data: Window) -> None:
    grid = firegrid_data.grid
    assert sum(len(grids) for grids in firegrid_data.grids.values()) > 1, firegrid_data.grids
    query = dashboards.interpolate(
        'SELECT count("pressure_mpa") FROM "water" WHERE $timeFilter AND "district" =~ /^$district$/ '
        'AND "grid" =~ /^$grid$/ GROUP BY "grid"',
        variables={"district": [firegrid_data.district], "grid": [grid]},
        time_from_ms=firegrid_data.start_ms,
        time_to_ms=firegrid_data.end_ms,
        interval_ms=MINUTE,
    )
    assert {row["grid"] for row in _run(influx, firegrid_data.db, query)} == {grid}


def test_every_event_log_row_says_what_changed(influx: Influxd, firegrid_data: Window) -> None:
    """``state`` is only on the points where it changes; ``change`` names every point's change,
    so repeat and clear rows are not blank."""
    (panel,) = [
        p
        for p in dashboards.iter_panels(dashboards.dashboard_json("firegrid-overview"))
        if p["title"] == "Event log"
    ]
    (target,) = panel["targets"]
    query = dashboards.interpolate(
        target["query"],
        variables={"district": None, "grid": None},
        time_from_ms=firegrid_data.start_ms,
        time_to_ms=firegrid_data.end_ms + MINUTE,
        interval_ms=MINUTE,
    )
    rows = _run(influx, firegrid_data.db, query)
    assert rows and all(row.get("change") for row in rows), rows
    assert {row["change"] for row in rows if row.get("state") == "open"} == {"raised"}, rows
    stateless = {row["change"] for row in rows if row.get("state") is None}
    assert stateless and stateless <= {"repeat", "cleared", "severity", "escalated", "rerouted"}, rows
