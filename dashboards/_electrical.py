"""Electrical-fire monitoring: residual current, cable temperatures, load and arcs, per site."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common

from dashboards._influx import keys, per_interval, select
from dashboards._panels import (
    RESIDUAL_MA_LIMIT,
    TEMP_CRITICAL_C,
    TEMP_LIMIT_C,
    Layout,
    bar_gauge,
    events_raised,
    grid_variables,
    new_dashboard,
    threshold_lines,
    thresholds,
    time_series,
)

UID = "firegrid-electrical"


def _per_site(
    title: str, field: str, unit: str, *legend: str, min_value: float | None = 0
) -> timeseries.Panel:
    """The highest ``field`` of each site's units, per interval of at least a minute."""
    query = select(f'max("{field}")', "electrical", group_by=per_interval("site"))
    return time_series(
        title, query, "$tag_site", interval="1m", unit=unit, legend=legend, min_value=min_value
    )


def _residual() -> timeseries.Panel:
    panel = _per_site("Residual current per site (max)", "residual_ma", "mA", "max", "lastNotNull")
    steps = thresholds("green", (RESIDUAL_MA_LIMIT * 0.9, "yellow"), (RESIDUAL_MA_LIMIT, "red"))
    return (
        threshold_lines(panel, steps)
        .description(
            f"Highest residual (leakage) current of the site's units; "
            f"the line is the {RESIDUAL_MA_LIMIT:g} mA limit."
        )
        .axis_soft_max(RESIDUAL_MA_LIMIT * 1.2)
        .span_nulls(True)
    )


def _temperature() -> timeseries.Panel:
    panel = _per_site(
        "Cable temperature per site (max)", "temp_c_max", "celsius", "max", "lastNotNull", min_value=None
    )
    steps = thresholds("green", (TEMP_LIMIT_C, "orange"), (TEMP_CRITICAL_C, "red"))
    return (
        threshold_lines(panel, steps)
        .description(
            f"Hottest cable sensor of the site's units; lines at {TEMP_LIMIT_C:g} °C (major) and "
            f"{TEMP_CRITICAL_C:g} °C (critical)."
        )
        .axis_soft_min(20)
        .axis_soft_max(TEMP_CRITICAL_C)
        .span_nulls(True)
    )


def _current() -> timeseries.Panel:
    return _per_site("Load current per site (max)", "current_a_max", "amp", "max").span_nulls(True)


def _arcs() -> timeseries.Panel:
    return (
        _per_site("Arc faults per site", "arc_count", "short", "max")
        .description("Highest arc count reported by the site's units in each interval.")
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(60)
    )


def _hottest_units() -> bargauge.Panel:
    return bar_gauge(
        "Hottest units (range max)",
        select('max("temp_c_max") AS "temp"', "electrical", group_by=keys("device")),
        "$tag_device",
        unit="celsius",
        span=(20, TEMP_CRITICAL_C + 10),
        display=common.BarGaugeDisplayMode.LCD,
        steps=thresholds("green", (TEMP_LIMIT_C, "orange"), (TEMP_CRITICAL_C, "red")),
        calc="max",
    )


def _events() -> table.Panel:
    return events_raised(
        "electrical",
        "Electrical events raised",
        "RESIDUAL_CURRENT_HIGH, CABLE_OVERHEAT, TEMP_RISE_FAST, … raised in the range.",
        'max("value") AS "worst value"',
    )


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(9, (24, _residual()))
        .row(9, (24, _temperature()))
        .row(8, (12, _current()), (12, _arcs()))
        .row(8, (12, _hottest_units()), (12, _events()))
    )
    return new_dashboard(
        UID,
        "Electrical",
        "Electrical-fire monitoring units: leakage, cable heat, load, arcs.",
        layout,
        grid_variables(),
    )
