"""Ingest health: message rates, rejects by reason, spool depth, InfluxDB write latency."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import stat, table, timeseries

from dashboards._influx import keys, per_interval, select
from dashboards._panels import (
    Layout,
    count_stat,
    instance_variable,
    new_dashboard,
    stacked_counts,
    table_panel,
    thresholds,
    time_series,
)

UID = "firegrid-ingest"

_INSTANCE = '"instance" =~ /^$instance$/'
_COUNTERS = ("received", "written", "rejected", "duplicates", "spooled")


def _stats(columns: str, group_by: str) -> str:
    """A query on ``ingest_stats`` of the selected instances."""
    return select(columns, "ingest_stats", variables=_INSTANCE, group_by=group_by)


def _rates() -> timeseries.Panel:
    fields = ", ".join(f'non_negative_derivative(max("{c}"), 1s) AS "{c}"' for c in _COUNTERS)
    return time_series(
        "Message rates",
        _stats(fields, per_interval("instance")),
        "$col · $tag_instance",
        interval="30s",
        unit="reqps",
        legend=("mean", "max", "lastNotNull"),
        description="Per-second rates from the cumulative ingest_stats counters (restarts do not dip).",
    )


def _counter_stat(title: str, counter: str, color: str) -> stat.Panel:
    return count_stat(
        title,
        _stats(f'spread("{counter}") AS "{counter}"', keys("instance")),
        color,
        alias="$tag_instance",
        description=f"Increase of the {counter} counter over the range, per instance.",
    ).unit("short")


def _rejects_by_reason() -> timeseries.Panel:
    query = select('count("error")', "rejects", variables=None, group_by=per_interval("reason", fill="0"))
    return stacked_counts("Rejects by reason", query, "$tag_reason", interval="1m")


def _spool() -> timeseries.Panel:
    return time_series(
        "Spool depth",
        _stats('max("spool_depth")', per_interval("instance")),
        "$tag_instance",
        interval="30s",
        unit="short",
        legend=("max", "lastNotNull"),
        description="Readings waiting in the local spool; non-zero while InfluxDB is slow or down.",
    ).thresholds(thresholds("green", (1, "orange"), (100_000, "red")))


def _latency() -> timeseries.Panel:
    return time_series(
        "InfluxDB write latency",
        _stats(
            'mean("write_latency_ms") AS "mean", max("write_latency_ms") AS "max"', per_interval("instance")
        ),
        "$col · $tag_instance",
        interval="30s",
        unit="ms",
        legend=("mean", "max"),
    ).thresholds(thresholds("green", (250, "orange"), (1000, "red")))


def _recent_rejects() -> table.Panel:
    return table_panel(
        "Latest rejects",
        select(keys("reason", "topic", "error", "payload"), "rejects", variables=None, newest=100),
        description="The last 100 rejected messages (payload cut at 1 KiB).",
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
    return new_dashboard(
        UID,
        "Ingest health",
        "The ingest service: rates, rejects, spool, write latency.",
        layout,
        [instance_variable()],
    )
