"""Fire-station overview: active events, where they are, devices online, alarms, the event log."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, bargauge, geomap, stat, statetimeline, table
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import geomap as geomap_model

from dashboards._influx import influx, scope
from dashboards._panels import (
    SEVERITY_COLORS,
    Layout,
    count_by,
    district_variable,
    grid_variable,
    latest_per_event,
    legend_list,
    new_dashboard,
    reduce,
    text_colors,
    thresholds,
    transformation,
)

UID = "firegrid-overview"
ACTIVE_WINDOW = "7d"
"""Active-event panels look back this far, whatever the dashboard's range (events outlive it)."""

STATE_COLORS = {"open": "red", "acknowledged": "orange", "resolved": "green", "closed": "text"}


def _events_query(*fields: str) -> str:
    columns = ", ".join(f'"{f}"' for f in fields)
    return f'SELECT {columns} FROM "events" WHERE $timeFilter AND {scope()}'


def _active_by_severity() -> stat.Panel:
    fields = ("state", "severity", "grid")
    panel = (
        stat.Panel()
        .title("Active events by severity")
        .description("Events not yet resolved (open or acknowledged), by severity, over the last 7 days.")
        .with_target(influx(_events_query("event_id", *fields)).table())
        .time_from(ACTIVE_WINDOW)
        .reduce_options(reduce("lastNotNull", values=True))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(thresholds("green", (1, "red")))
        .no_value("0")
    )
    for step in [*latest_per_event(fields), count_by("severity")]:
        panel.with_transformation(step)
    return panel


def _raised(title: str, description: str, condition: str, color: str) -> stat.Panel:
    query = (
        'SELECT count(distinct("event_id")) AS "raised" FROM "events" '
        f"WHERE \"state\" = 'open' {condition} AND $timeFilter AND {scope()}"
    )
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .with_target(influx(query))
        .reduce_options(reduce("lastNotNull"))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .thresholds(thresholds("green", (1, color)))
        .no_value("0")
    )


def _map() -> geomap.Panel:
    fields = ("state", "severity", "type", "grid", "site", "device", "message", "lat", "lon")
    markers = (
        common_builder.MapLayerOptions()
        .type("markers")
        .name("Active events")
        .location(
            common_builder.FrameGeometrySource()
            .mode(common.FrameGeometrySourceMode.COORDS)
            .latitude("lat")
            .longitude("lon")
        )
        .tooltip(True)
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": "severity", "fixed": "red"},
                    "opacity": 0.8,
                    "size": {"fixed": 9, "min": 4, "max": 16},
                    "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                    "text": {"mode": "field", "field": "type", "fixed": ""},
                    "textConfig": {"fontSize": 10, "offsetY": -14, "textAlign": "center"},
                },
            }
        )
    )
    panel = (
        geomap.Panel()
        .title("Active events")
        .description("Latest position of every open or acknowledged event, coloured by severity.")
        .with_target(influx(_events_query("event_id", *fields)).table())
        .time_from(ACTIVE_WINDOW)
        .view(geomap.MapViewConfig().id("fit").all_layers(True).zoom(14).max_zoom(18))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_scale(True))
        .basemap(common_builder.MapLayerOptions().type("default").name("Basemap"))
        .layers([markers])
        .tooltip(geomap.TooltipOptions().mode(geomap_model.TooltipMode.DETAILS))
        .mappings(text_colors(SEVERITY_COLORS))
    )
    for step in latest_per_event(fields):
        panel.with_transformation(step)
    return panel


def _fixed_color(color: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})


def _active_by_grid() -> barchart.Panel:
    fields = ("state", "severity", "grid")
    panel = (
        barchart.Panel()
        .title("Active events by grid")
        .description("Open or acknowledged events per grid, stacked by severity.")
        .with_target(influx(_events_query("event_id", *fields)).table())
        .time_from(ACTIVE_WINDOW)
        .x_field("grid")
        .stacking(common.StackingMode.NORMAL)
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_value(common.VisibilityMode.AUTO)
        .legend(legend_list())
        .override_by_name(
            "critical",
            [model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"})],
        )
        .override_by_name(
            "major",
            [model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "orange"})],
        )
        .override_by_name(
            "minor",
            [model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "yellow"})],
        )
    )
    steps = [
        *latest_per_event(fields),
        count_by("grid", "severity"),
        transformation(
            "groupingToMatrix",
            {
                "columnField": "severity",
                "rowField": "grid",
                "valueField": "event_id (count)",
                "emptyValue": "zero",
            },
        ),
        transformation("organize", {"renameByName": {"grid\\severity": "grid"}}),
    ]
    for step in steps:
        panel.with_transformation(step)
    return panel


def _online_by_kind() -> bargauge.Panel:
    query = (
        'SELECT 100 * last("online") / last("registered") AS "online" FROM "fleet" '
        'WHERE "district" =~ /^$district$/ AND $timeFilter GROUP BY "district", "kind"'
    )
    return (
        bargauge.Panel()
        .title("Devices online by kind")
        .description("Share of registered devices heard from within their heartbeat, per district and kind.")
        .with_target(influx(query).alias("$tag_kind · $tag_district"))
        .unit("percent")
        .min(0)
        .max(100)
        .decimals(1)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce("lastNotNull"))
        .thresholds(thresholds("red", (90, "orange"), (98, "green")))
    )


def _alarm_timeline() -> statetimeline.Panel:
    query = (
        'SELECT count("alarm") AS "detectors in alarm" FROM "smoke" '
        f'WHERE "alarm" = true AND $timeFilter AND {scope()} GROUP BY time($__interval), "site" fill(0)'
    )
    return (
        statetimeline.Panel()
        .title("Smoke alarms by site")
        .description("Alarm readings per site and interval; only sites with an alarm in the range appear.")
        .with_target(influx(query).alias("$tag_site"))
        .interval("1m")
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .thresholds(thresholds("green", (1, "red")))
        .mappings(
            [
                model.ValueMap(options={"0": model.ValueMappingResult(text="quiet", color="green", index=0)}),
                model.RangeMap(
                    options=model.DashboardRangeMapOptions(
                        from_val=1,
                        to=1e9,
                        result=model.ValueMappingResult(text="ALARM", color="red", index=1),
                    )
                ),
            ]
        )
        .legend(legend_list())
    )


def _event_log() -> table.Panel:
    query = (
        'SELECT "type", "severity", "state", "grid", "site", "device", "value", "count", "message", '
        f'"event_id" FROM "events" WHERE $timeFilter AND {scope()} ORDER BY time DESC LIMIT 500'
    )
    return (
        table.Panel()
        .title("Event log")
        .description("Every state change of every event in the range, newest first (500 at most).")
        .with_target(influx(query).table())
        .cell_height(common.TableCellHeight.SM)
        .filterable(True)
        .mappings(text_colors(SEVERITY_COLORS | STATE_COLORS))
        .override_by_name(
            "severity", [model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})]
        )
        .override_by_name(
            "state", [model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})]
        )
        .override_by_name("message", [model.DynamicConfigValue(id_val="custom.width", value=420)])
    )


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(
            5,
            (12, _active_by_severity()),
            (
                6,
                _raised(
                    "Fire alarms raised",
                    "FIRE_ALARM and FIRE_CONFIRMED events raised in the range.",
                    'AND "type" =~ /^FIRE_/',
                    "red",
                ),
            ),
            (6, _raised("Events raised", "Events of every type raised in the range.", "", "orange")),
        )
        .row(12, (14, _map()), (10, _active_by_grid()))
        .row(8, (8, _online_by_kind()), (16, _alarm_timeline()))
        .row(11, (24, _event_log()))
    )
    board = (
        new_dashboard(
            UID, "Fire-station overview", "What a fire station watches: active events, alarms, devices."
        )
        .with_variable(district_variable())
        .with_variable(grid_variable())
    )
    return layout.apply(board)
