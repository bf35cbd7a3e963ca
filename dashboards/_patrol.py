"""NFC patrol: scans per worker, missed checkpoints (PATROL_MISSED), hazards found."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dashboard_builder

from dashboards._influx import keys, per_interval, select
from dashboards._panels import (
    OPENED,
    RAISED,
    Layout,
    bar_chart,
    count_stat,
    grid_variables,
    new_dashboard,
    stacked_counts,
    table_panel,
    transformation,
)

UID = "firegrid-patrol"

_MISSED = "\"type\" = 'PATROL_MISSED'"


def _scans_total() -> stat.Panel:
    return count_stat("Checkpoint scans", select('count("result") AS "scans"', "patrol"), "green")


def _missed_total() -> stat.Panel:
    query = select(f'{RAISED} AS "missed"', "events", _MISSED, OPENED)
    return count_stat("Missed checkpoints", query, "orange")


def _hazards_total() -> stat.Panel:
    return count_stat("Hazards found", select('sum("hazard_count") AS "hazards"', "patrol"), "red")


def _per_worker() -> barchart.Panel:
    query = select(
        'count("result") AS "scans", sum("hazard_count") AS "hazards"', "patrol", group_by=keys("worker")
    )
    return bar_chart(
        "Scans per worker",
        "Checkpoint scans and hazards reported per grid worker in the range.",
        query,
        "worker",
    ).with_transformation(transformation("organize", {"excludeByName": {"time": True}}))


def _scans_over_time() -> timeseries.Panel:
    query = select('count("result")', "patrol", group_by=per_interval("worker", fill="0"))
    return stacked_counts("Scans over time per worker", query, "$tag_worker", interval="10m")


def _missed_over_time() -> timeseries.Panel:
    query = select(RAISED, "events", _MISSED, OPENED, group_by=per_interval("grid", fill="0"))
    return stacked_counts(
        "Missed checkpoints per grid",
        query,
        "$tag_grid",
        interval="10m",
        description=(
            "PATROL_MISSED events raised: checkpoints not scanned within 1.1 × their patrol interval."
        ),
    )


def _missed_table() -> table.Panel:
    columns = '"device" AS "checkpoint", "site", "grid", "change", "state", "message"'
    query = select(columns, "events", _MISSED, newest=200)
    return table_panel("Missed checkpoints (latest changes)", query)


def _hazards_table() -> table.Panel:
    columns = '"worker", "grid", "site", "device" AS "checkpoint", "hazard_count", "hazards"'
    return table_panel(
        "Hazard reports",
        select(columns, "patrol", "\"result\" = 'hazard'", newest=200),
        description="Scans with result = hazard, newest first; hazards as reported by the worker.",
    )


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(4, (8, _scans_total()), (8, _missed_total()), (8, _hazards_total()))
        .row(9, (10, _per_worker()), (14, _scans_over_time()))
        .row(8, (12, _missed_over_time()), (12, _missed_table()))
        .row(9, (24, _hazards_table()))
    )
    return new_dashboard(
        UID,
        "Patrol",
        "NFC checkpoint patrols: who scanned what, what was missed, hazards found.",
        layout,
        grid_variables(),
    )
