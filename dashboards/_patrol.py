"""NFC patrol: scans per worker, missed checkpoints (PATROL_MISSED), hazards found."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common

from dashboards._influx import influx, scope
from dashboards._panels import (
    Layout,
    district_variable,
    grid_variable,
    legend_list,
    legend_table,
    new_dashboard,
    reduce,
    stack_normal,
    thresholds,
    transformation,
)

UID = "firegrid-patrol"

_MISSED = "\"type\" = 'PATROL_MISSED'"


def _total(title: str, query: str, color: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .with_target(influx(query))
        .reduce_options(reduce("lastNotNull"))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .thresholds(thresholds("green", (1, color)))
        .no_value("0")
    )


def _scans_total() -> stat.Panel:
    query = f'SELECT count("result") AS "scans" FROM "patrol" WHERE $timeFilter AND {scope()}'
    return _total("Checkpoint scans", query, "green")


def _missed_total() -> stat.Panel:
    query = (
        'SELECT count(distinct("event_id")) AS "missed" FROM "events" '
        f"WHERE {_MISSED} AND \"state\" = 'open' AND $timeFilter AND {scope()}"
    )
    return _total("Missed checkpoints", query, "orange")


def _hazards_total() -> stat.Panel:
    query = f'SELECT sum("hazard_count") AS "hazards" FROM "patrol" WHERE $timeFilter AND {scope()}'
    return _total("Hazards found", query, "red")


def _per_worker() -> barchart.Panel:
    query = (
        'SELECT count("result") AS "scans", sum("hazard_count") AS "hazards" FROM "patrol" '
        f'WHERE $timeFilter AND {scope()} GROUP BY "worker"'
    )
    return (
        barchart.Panel()
        .title("Scans per worker")
        .description("Checkpoint scans and hazards reported per grid worker in the range.")
        .with_target(influx(query).table())
        .x_field("worker")
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_value(common.VisibilityMode.AUTO)
        .legend(legend_list())
        .with_transformation(transformation("organize", {"excludeByName": {"time": True}}))
    )


def _scans_over_time() -> timeseries.Panel:
    query = (
        f'SELECT count("result") FROM "patrol" WHERE $timeFilter AND {scope()} '
        'GROUP BY time($__interval), "worker" fill(0)'
    )
    return (
        timeseries.Panel()
        .title("Scans over time per worker")
        .with_target(influx(query).alias("$tag_worker"))
        .interval("10m")
        .unit("short")
        .min(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .stacking(stack_normal())
        .legend(legend_table("sum"))
    )


def _missed_over_time() -> timeseries.Panel:
    query = (
        'SELECT count(distinct("event_id")) FROM "events" '
        f"WHERE {_MISSED} AND \"state\" = 'open' AND $timeFilter AND {scope()} "
        'GROUP BY time($__interval), "grid" fill(0)'
    )
    return (
        timeseries.Panel()
        .title("Missed checkpoints per grid")
        .description(
            "PATROL_MISSED events raised: checkpoints not scanned within 1.1 × their patrol interval."
        )
        .with_target(influx(query).alias("$tag_grid"))
        .interval("10m")
        .unit("short")
        .min(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .stacking(stack_normal())
        .legend(legend_table("sum"))
    )


def _missed_table() -> table.Panel:
    query = (
        'SELECT "device" AS "checkpoint", "site", "grid", "state", "message" FROM "events" '
        f"WHERE {_MISSED} AND $timeFilter AND {scope()} ORDER BY time DESC LIMIT 200"
    )
    return (
        table.Panel()
        .title("Missed checkpoints (latest changes)")
        .with_target(influx(query).table())
        .cell_height(common.TableCellHeight.SM)
        .filterable(True)
    )


def _hazards_table() -> table.Panel:
    query = (
        'SELECT "worker", "grid", "site", "device" AS "checkpoint", "hazard_count", "hazards" FROM "patrol" '
        f"WHERE \"result\" = 'hazard' AND $timeFilter AND {scope()} ORDER BY time DESC LIMIT 200"
    )
    return (
        table.Panel()
        .title("Hazard reports")
        .description("Scans with result = hazard, newest first; hazards as reported by the worker.")
        .with_target(influx(query).table())
        .cell_height(common.TableCellHeight.SM)
        .filterable(True)
    )


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(4, (8, _scans_total()), (8, _missed_total()), (8, _hazards_total()))
        .row(9, (10, _per_worker()), (14, _scans_over_time()))
        .row(8, (12, _missed_over_time()), (12, _missed_table()))
        .row(9, (24, _hazards_table()))
    )
    board = (
        new_dashboard(
            UID, "Patrol", "NFC checkpoint patrols: who scanned what, what was missed, hazards found."
        )
        .with_variable(district_variable())
        .with_variable(grid_variable())
    )
    return layout.apply(board)
