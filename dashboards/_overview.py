"""Fire-station overview: active events, where they are, devices online, alarms, the event log."""

from __future__ import annotations

from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import barchart, bargauge, geomap, stat, statetimeline, table
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import geomap as geomap_model

from dashboards._influx import influx, keys, per_interval, scope, select
from dashboards._panels import (
    OPENED,
    RAISED,
    SEVERITY_COLORS,
    Layout,
    bar_chart,
    bar_gauge,
    color_text,
    count_by,
    count_stat,
    fixed_color,
    grid_variables,
    latest_per_event,
    legend_list,
    new_dashboard,
    reduce,
    table_panel,
    target,
    text_colors,
    thresholds,
    transformation,
)

UID = "firegrid-overview"
ACTIVE_WINDOW = "7d"
"""Active-event panels look back this far, whatever the dashboard's range (events outlive it)."""

STATE_COLORS = {"open": "red", "acknowledged": "orange", "resolved": "green", "closed": "text"}


class _EventsPanel(Protocol):
    def time_from(self, time_from: str) -> Self: ...
    def transformations(self, transformations: list[model.DataTransformerConfig]) -> Self: ...


_P = TypeVar("_P", bound=_EventsPanel)


def _event_points(fields: tuple[str, ...]) -> str:
    """The ``events`` points of the active-event panels: ``event_id`` and ``fields``."""
    return select(keys("event_id", *fields), "events")


def _active(panel: _P, fields: tuple[str, ...], *steps: model.DataTransformerConfig) -> _P:
    """``panel`` (on :func:`_event_points`) shows the events active in the last 7 days: the latest
    ``fields`` of each, then ``steps``."""
    return panel.time_from(ACTIVE_WINDOW).transformations([*latest_per_event(fields), *steps])


def _active_by_severity() -> stat.Panel:
    fields = ("state", "severity", "grid")
    panel = (
        stat.Panel()
        .title("Active events by severity")
        .description("Events not yet resolved (open or acknowledged), by severity, over the last 7 days.")
        .with_target(influx(_event_points(fields)).table())
        .reduce_options(reduce("lastNotNull", values=True))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(thresholds("green", (1, "red")))
        .no_value("0")
    )
    return _active(panel, fields, count_by("severity"))


def _raised(title: str, description: str, color: str, *conditions: str) -> stat.Panel:
    query = select(f'{RAISED} AS "raised"', "events", OPENED, *conditions)
    return count_stat(title, query, color, description=description)


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
        .with_target(influx(_event_points(fields)).table())
        .view(geomap.MapViewConfig().id("fit").all_layers(True).zoom(14).max_zoom(18))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_scale(True))
        .basemap(common_builder.MapLayerOptions().type("default").name("Basemap"))
        .layers([markers])
        .tooltip(geomap.TooltipOptions().mode(geomap_model.TooltipMode.DETAILS))
        .mappings(text_colors(SEVERITY_COLORS))
    )
    return _active(panel, fields)


def _active_by_grid() -> barchart.Panel:
    fields = ("state", "severity", "grid")
    panel = bar_chart(
        "Active events by grid",
        "Open or acknowledged events per grid, stacked by severity.",
        _event_points(fields),
        "grid",
    ).stacking(common.StackingMode.NORMAL)
    for severity, color in SEVERITY_COLORS.items():
        panel.override_by_name(severity, [fixed_color(color)])
    matrix = {
        "columnField": "severity",
        "rowField": "grid",
        "valueField": "event_id (count)",
        "emptyValue": "zero",
    }
    return _active(
        panel,
        fields,
        count_by("grid", "severity"),
        transformation("groupingToMatrix", matrix),
        transformation("organize", {"renameByName": {"grid\\severity": "grid"}}),
    )


def _online_by_kind() -> bargauge.Panel:
    return bar_gauge(
        "Devices online by kind",
        select(
            '100 * last("online") / last("registered") AS "online"',
            "fleet",
            scope(grid=False),
            variables=None,
            group_by=keys("district", "kind"),
        ),
        "$tag_kind · $tag_district",
        unit="percent",
        span=(0, 100),
        display=common.BarGaugeDisplayMode.GRADIENT,
        steps=thresholds("red", (90, "orange"), (98, "green")),
        description="Share of registered devices heard from within their heartbeat, per district and kind.",
    ).decimals(1)


def _alarm_timeline() -> statetimeline.Panel:
    query = select(
        'count("alarm") AS "detectors in alarm"',
        "smoke",
        '"alarm" = true',
        group_by=per_interval("site", fill="0"),
    )
    return (
        statetimeline.Panel()
        .title("Smoke alarms by site")
        .description("Alarm readings per site and interval; only sites with an alarm in the range appear.")
        .with_target(target(query, "$tag_site"))
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
    # `change` says what every point is (raised, repeat, cleared, escalated, acknowledged, …);
    # `state` is written only where the state changes, so it is empty on the other rows.
    columns = keys(
        "type",
        "severity",
        "change",
        "state",
        "grid",
        "site",
        "device",
        "value",
        "count",
        "message",
        "event_id",
    )
    panel = table_panel(
        "Event log",
        select(columns, "events", newest=500),
        description=(
            "Every change of every event in the range, newest first (500 at most): what changed "
            "(raised, repeat, cleared, severity, escalated, acknowledged, resolved, closed, rerouted) "
            "and, where the state changed, the new state. Plain repeats of an open event are written "
            "at most once per event every 5 s, with the count as it stands."
        ),
    ).mappings(text_colors(SEVERITY_COLORS | STATE_COLORS))
    for column in ("severity", "state"):
        panel.override_by_name(column, [color_text()])
    return panel.override_by_name("message", [model.DynamicConfigValue(id_val="custom.width", value=420)])


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
                    "red",
                    '"type" =~ /^FIRE_/',
                ),
            ),
            (6, _raised("Events raised", "Events of every type raised in the range.", "orange")),
        )
        .row(12, (14, _map()), (10, _active_by_grid()))
        .row(8, (8, _online_by_kind()), (16, _alarm_timeline()))
        .row(11, (24, _event_log()))
    )
    return new_dashboard(
        UID,
        "Fire-station overview",
        "What a fire station watches: active events, alarms, devices.",
        layout,
        grid_variables(),
    )
