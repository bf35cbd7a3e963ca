"""Ingest health: message rates, rejects by reason, spool depth, InfluxDB write latency."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common

from dashboards._influx import influx
from dashboards._panels import (
    Layout,
    instance_variable,
    legend_table,
    new_dashboard,
    reduce,
    stack_normal,
    thresholds,
)

UID = "firegrid-ingest"

_INSTANCE = '"instance" =~ /^$instance$/'
_COUNTERS = ("received", "written", "rejected", "duplicates", "spooled")


def _rates() -> timeseries.Panel:
    fields = ", ".join(f'non_negative_derivative(max("{c}"), 1s) AS "{c}"' for c in _COUNTERS)
    query = (
        f'SELECT {fields} FROM "ingest_stats" WHERE $timeFilter AND {_INSTANCE} '
        'GROUP BY time($__interval), "instance" fill(null)'
    )
    return (
        timeseries.Panel()
        .title("Message rates")
        .description("Per-second rates from the cumulative ingest_stats counters (restarts do not dip).")
        .with_target(influx(query).alias("$col · $tag_instance"))
        .interval("30s")
        .unit("reqps")
        .min(0)
        .legend(legend_table("mean", "max", "lastNotNull"))
    )


def _counter_stat(title: str, counter: str, color: str) -> stat.Panel:
    query = (
        f'SELECT spread("{counter}") AS "{counter}" FROM "ingest_stats" '
        f'WHERE $timeFilter AND {_INSTANCE} GROUP BY "instance"'
    )
    return (
        stat.Panel()
        .title(title)
        .description(f"Increase of the {counter} counter over the range, per instance.")
        .with_target(influx(query).alias("$tag_instance"))
        .unit("short")
        .reduce_options(reduce("lastNotNull"))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .thresholds(thresholds("green", (1, color)))
        .no_value("0")
    )


def _rejects_by_reason() -> timeseries.Panel:
    query = (
        'SELECT count("error") FROM "rejects" WHERE $timeFilter GROUP BY time($__interval), "reason" fill(0)'
    )
    return (
        timeseries.Panel()
        .title("Rejects by reason")
        .with_target(influx(query).alias("$tag_reason"))
        .interval("1m")
        .unit("short")
        .min(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .stacking(stack_normal())
        .legend(legend_table("sum"))
    )


def _spool() -> timeseries.Panel:
    query = (
        f'SELECT max("spool_depth") FROM "ingest_stats" WHERE $timeFilter AND {_INSTANCE} '
        'GROUP BY time($__interval), "instance" fill(null)'
    )
    return (
        timeseries.Panel()
        .title("Spool depth")
        .description("Readings waiting in the local spool; non-zero while InfluxDB is slow or down.")
        .with_target(influx(query).alias("$tag_instance"))
        .interval("30s")
        .unit("short")
        .min(0)
        .thresholds(thresholds("green", (1, "orange"), (100_000, "red")))
        .legend(legend_table("max", "lastNotNull"))
    )


def _latency() -> timeseries.Panel:
    query = (
        'SELECT mean("write_latency_ms") AS "mean", max("write_latency_ms") AS "max" FROM "ingest_stats" '
        f'WHERE $timeFilter AND {_INSTANCE} GROUP BY time($__interval), "instance" fill(null)'
    )
    return (
        timeseries.Panel()
        .title("InfluxDB write latency")
        .with_target(influx(query).alias("$col · $tag_instance"))
        .interval("30s")
        .unit("ms")
        .min(0)
        .thresholds(thresholds("green", (250, "orange"), (1000, "red")))
        .legend(legend_table("mean", "max"))
    )


def _recent_rejects() -> table.Panel:
    query = (
        'SELECT "reason", "topic", "error", "payload" FROM "rejects" WHERE $timeFilter '
        "ORDER BY time DESC LIMIT 100"
    )
    return (
        table.Panel()
        .title("Latest rejects")
        .description("The last 100 rejected messages (payload cut at 1 KiB).")
        .with_target(influx(query).table())
        .cell_height(common.TableCellHeight.SM)
        .filterable(True)
    )


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(
            4,
            (6, _counter_stat("Received", "received", "green")),
            (6, _counter_stat("Rejected", "rejected", "orange")),
            (6, _counter_stat("Duplicates", "duplicates", "yellow")),
            (6, _counter_stat("Spooled", "spooled", "orange")),
        )
        .row(9, (24, _rates()))
        .row(8, (12, _rejects_by_reason()), (12, _spool()))
        .row(8, (12, _latency()), (12, _recent_rejects()))
    )
    board = new_dashboard(
        UID, "Ingest health", "The ingest service: rates, rejects, spool, write latency."
    ).with_variable(instance_variable())
    return layout.apply(board)
