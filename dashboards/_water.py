"""Fire-water monitoring: pressure per monitor within its band, tank levels, batteries."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common

from dashboards._influx import keys, per_interval, select
from dashboards._panels import (
    PRESSURE_LOSS_MPA,
    PRESSURE_MAX_MPA,
    PRESSURE_MIN_MPA,
    Layout,
    bar_gauge,
    events_raised,
    grid_variables,
    new_dashboard,
    threshold_lines,
    thresholds,
    time_series,
)

UID = "firegrid-water"
MPA = "suffix: MPa"


def _mean_per_device(field: str) -> str:
    return select(f'mean("{field}")', "water", group_by=per_interval("device"))


def _last_per_device(field: str) -> str:
    return select(f'last("{field}")', "water", group_by=keys("device"))


def _pressure() -> timeseries.Panel:
    panel = time_series(
        "Pressure per monitor",
        _mean_per_device("pressure_mpa"),
        "$tag_device",
        interval="1m",
        unit=MPA,
        legend=("min", "max", "lastNotNull"),
        description=f"Mean pipe-network pressure per monitor; the green band is {PRESSURE_MIN_MPA:.2f}–"
        f"{PRESSURE_MAX_MPA:.2f} MPa (LOW_PRESSURE / HIGH_PRESSURE limits).",
    )
    band = thresholds("red", (PRESSURE_MIN_MPA, "green"), (PRESSURE_MAX_MPA, "red"))
    return (
        threshold_lines(panel, band, common.GraphThresholdsStyleMode.LINE_AND_AREA)
        .decimals(2)
        .axis_soft_max(PRESSURE_MAX_MPA + 0.2)
        .span_nulls(True)
    )


def _lowest() -> bargauge.Panel:
    return bar_gauge(
        "Latest pressure by monitor",
        _last_per_device("pressure_mpa"),
        "$tag_device",
        unit=MPA,
        span=(0, PRESSURE_MAX_MPA + 0.3),
        display=common.BarGaugeDisplayMode.BASIC,
        steps=thresholds(
            "dark-red",
            (PRESSURE_LOSS_MPA, "red"),
            (PRESSURE_MIN_MPA, "green"),
            (PRESSURE_MAX_MPA, "orange"),
        ),
    ).decimals(2)


def _level() -> timeseries.Panel:
    return time_series(
        "Tank / pool level",
        _mean_per_device("level_m"),
        "$tag_device",
        interval="1m",
        unit="lengthm",
        legend=("min", "lastNotNull"),
    ).span_nulls(True)


def _battery() -> bargauge.Panel:
    return bar_gauge(
        "Monitor batteries",
        _last_per_device("battery_pct"),
        "$tag_device",
        unit="percent",
        span=(0, 100),
        display=common.BarGaugeDisplayMode.GRADIENT,
        steps=thresholds("red", (15, "orange"), (20, "green")),
    )


def _events() -> table.Panel:
    return events_raised(
        "water",
        "Water events raised",
        "LOW_PRESSURE, PRESSURE_LOSS, HIGH_PRESSURE, LOW_BATTERY, … raised in the range.",
        'min("value") AS "lowest value"',
    )


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(11, (24, _pressure()))
        .row(9, (12, _lowest()), (12, _level()))
        .row(8, (12, _battery()), (12, _events()))
    )
    return new_dashboard(
        UID,
        "Water",
        "Fire-water pressure monitors: pressure within its band, levels, batteries.",
        layout,
        grid_variables(),
    )
