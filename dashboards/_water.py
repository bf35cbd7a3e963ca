"""Fire-water monitoring: pressure per monitor within its band, tank levels, batteries."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common

from dashboards._influx import influx, scope
from dashboards._panels import (
    PRESSURE_LOSS_MPA,
    PRESSURE_MAX_MPA,
    PRESSURE_MIN_MPA,
    Layout,
    district_variable,
    grid_variable,
    legend_table,
    new_dashboard,
    reduce,
    threshold_style,
    thresholds,
)

UID = "firegrid-water"


def _pressure() -> timeseries.Panel:
    query = (
        'SELECT mean("pressure_mpa") FROM "water" WHERE $timeFilter AND '
        + scope()
        + ' GROUP BY time($__interval), "device" fill(null)'
    )
    return (
        timeseries.Panel()
        .title("Pressure per monitor")
        .description(
            f"Mean pipe-network pressure per monitor; the green band is {PRESSURE_MIN_MPA:.2f}–"
            f"{PRESSURE_MAX_MPA:.2f} MPa (LOW_PRESSURE / HIGH_PRESSURE limits)."
        )
        .with_target(influx(query).alias("$tag_device"))
        .interval("1m")
        .unit("suffix: MPa")
        .decimals(2)
        .min(0)
        .axis_soft_max(PRESSURE_MAX_MPA + 0.2)
        .thresholds(thresholds("red", (PRESSURE_MIN_MPA, "green"), (PRESSURE_MAX_MPA, "red")))
        .thresholds_style(threshold_style(common.GraphThresholdsStyleMode.LINE_AND_AREA))
        .legend(legend_table("min", "max", "lastNotNull"))
        .span_nulls(True)
    )


def _lowest() -> bargauge.Panel:
    query = f'SELECT last("pressure_mpa") FROM "water" WHERE $timeFilter AND {scope()} GROUP BY "device"'
    return (
        bargauge.Panel()
        .title("Latest pressure by monitor")
        .with_target(influx(query).alias("$tag_device"))
        .unit("suffix: MPa")
        .decimals(2)
        .min(0)
        .max(PRESSURE_MAX_MPA + 0.3)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce("lastNotNull"))
        .thresholds(
            thresholds(
                "dark-red",
                (PRESSURE_LOSS_MPA, "red"),
                (PRESSURE_MIN_MPA, "green"),
                (PRESSURE_MAX_MPA, "orange"),
            )
        )
    )


def _level() -> timeseries.Panel:
    query = (
        f'SELECT mean("level_m") FROM "water" WHERE $timeFilter AND {scope()} '
        'GROUP BY time($__interval), "device" fill(null)'
    )
    return (
        timeseries.Panel()
        .title("Tank / pool level")
        .with_target(influx(query).alias("$tag_device"))
        .interval("1m")
        .unit("lengthm")
        .min(0)
        .legend(legend_table("min", "lastNotNull"))
        .span_nulls(True)
    )


def _battery() -> bargauge.Panel:
    query = f'SELECT last("battery_pct") FROM "water" WHERE $timeFilter AND {scope()} GROUP BY "device"'
    return (
        bargauge.Panel()
        .title("Monitor batteries")
        .with_target(influx(query).alias("$tag_device"))
        .unit("percent")
        .min(0)
        .max(100)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce("lastNotNull"))
        .thresholds(thresholds("red", (15, "orange"), (20, "green")))
    )


def _events() -> table.Panel:
    query = (
        'SELECT count(distinct("event_id")) AS "raised", min("value") AS "lowest value" FROM "events" '
        f"WHERE \"kind\" = 'water' AND \"state\" = 'open' AND $timeFilter AND {scope()} "
        'GROUP BY "type", "severity"'
    )
    return (
        table.Panel()
        .title("Water events raised")
        .description("LOW_PRESSURE, PRESSURE_LOSS, HIGH_PRESSURE, LOW_BATTERY, … raised in the range.")
        .with_target(influx(query).table())
        .cell_height(common.TableCellHeight.SM)
    )


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(11, (24, _pressure()))
        .row(9, (12, _lowest()), (12, _level()))
        .row(8, (12, _battery()), (12, _events()))
    )
    board = (
        new_dashboard(
            UID, "Water", "Fire-water pressure monitors: pressure within its band, levels, batteries."
        )
        .with_variable(district_variable())
        .with_variable(grid_variable())
    )
    return layout.apply(board)
