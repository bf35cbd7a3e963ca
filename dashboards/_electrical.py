"""Electrical-fire monitoring: residual current, cable temperatures, load and arcs, per site."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common

from dashboards._influx import influx, scope
from dashboards._panels import (
    RESIDUAL_MA_LIMIT,
    TEMP_CRITICAL_C,
    TEMP_LIMIT_C,
    Layout,
    district_variable,
    grid_variable,
    legend_table,
    new_dashboard,
    reduce,
    threshold_style,
    thresholds,
)

UID = "firegrid-electrical"


def _per_site(field: str, agg: str = "max") -> str:
    return (
        f'SELECT {agg}("{field}") FROM "electrical" WHERE $timeFilter AND {scope()} '
        'GROUP BY time($__interval), "site" fill(null)'
    )


def _residual() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Residual current per site (max)")
        .description(
            f"Highest residual (leakage) current of the site's units; "
            f"the line is the {RESIDUAL_MA_LIMIT:g} mA limit."
        )
        .with_target(influx(_per_site("residual_ma")).alias("$tag_site"))
        .interval("1m")
        .unit("mA")
        .min(0)
        .axis_soft_max(RESIDUAL_MA_LIMIT * 1.2)
        .thresholds(thresholds("green", (RESIDUAL_MA_LIMIT * 0.9, "yellow"), (RESIDUAL_MA_LIMIT, "red")))
        .thresholds_style(threshold_style(common.GraphThresholdsStyleMode.DASHED))
        .legend(legend_table("max", "lastNotNull"))
        .span_nulls(True)
    )


def _temperature() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Cable temperature per site (max)")
        .description(
            f"Hottest cable sensor of the site's units; lines at {TEMP_LIMIT_C:g} °C (major) and "
            f"{TEMP_CRITICAL_C:g} °C (critical)."
        )
        .with_target(influx(_per_site("temp_c_max")).alias("$tag_site"))
        .interval("1m")
        .unit("celsius")
        .axis_soft_min(20)
        .axis_soft_max(TEMP_CRITICAL_C)
        .thresholds(thresholds("green", (TEMP_LIMIT_C, "orange"), (TEMP_CRITICAL_C, "red")))
        .thresholds_style(threshold_style(common.GraphThresholdsStyleMode.DASHED))
        .legend(legend_table("max", "lastNotNull"))
        .span_nulls(True)
    )


def _current() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Load current per site (max)")
        .with_target(influx(_per_site("current_a_max")).alias("$tag_site"))
        .interval("1m")
        .unit("amp")
        .min(0)
        .legend(legend_table("max"))
        .span_nulls(True)
    )


def _arcs() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Arc faults per site")
        .description("Highest arc count reported by the site's units in each interval.")
        .with_target(influx(_per_site("arc_count")).alias("$tag_site"))
        .interval("1m")
        .unit("short")
        .min(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .legend(legend_table("max"))
    )


def _hottest_units() -> bargauge.Panel:
    query = (
        'SELECT max("temp_c_max") AS "temp" FROM "electrical" '
        f'WHERE $timeFilter AND {scope()} GROUP BY "device"'
    )
    return (
        bargauge.Panel()
        .title("Hottest units (range max)")
        .with_target(influx(query).alias("$tag_device"))
        .unit("celsius")
        .min(20)
        .max(TEMP_CRITICAL_C + 10)
        .display_mode(common.BarGaugeDisplayMode.LCD)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce("max"))
        .thresholds(thresholds("green", (TEMP_LIMIT_C, "orange"), (TEMP_CRITICAL_C, "red")))
    )


def _events() -> table.Panel:
    query = (
        'SELECT count(distinct("event_id")) AS "raised", max("value") AS "worst value" FROM "events" '
        f"WHERE \"kind\" = 'electrical' AND \"state\" = 'open' AND $timeFilter AND {scope()} "
        'GROUP BY "type", "severity"'
    )
    return (
        table.Panel()
        .title("Electrical events raised")
        .description("RESIDUAL_CURRENT_HIGH, CABLE_OVERHEAT, TEMP_RISE_FAST, … raised in the range.")
        .with_target(influx(query).table())
        .cell_height(common.TableCellHeight.SM)
    )


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(9, (24, _residual()))
        .row(9, (24, _temperature()))
        .row(8, (12, _current()), (12, _arcs()))
        .row(8, (12, _hottest_units()), (12, _events()))
    )
    board = (
        new_dashboard(UID, "Electrical", "Electrical-fire monitoring units: leakage, cable heat, load, arcs.")
        .with_variable(district_variable())
        .with_variable(grid_variable())
    )
    return layout.apply(board)
