"""Shared pieces of the dashboards: limits, template variables, layout, thresholds, the panel
shapes the dashboards have in common, transformations.

A dashboard module says only what is its own: its queries, titles, units and limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import barchart, bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards._influx import ALL_VALUE, InfluxQueryBuilder, datasource_ref, influx, keys, select

# Default limits of the hazard rules (CONTRACT §7); per-device overrides are not drawn.
RESIDUAL_MA_LIMIT = 300.0
TEMP_LIMIT_C = 70.0
TEMP_CRITICAL_C = TEMP_LIMIT_C + 20
PRESSURE_MIN_MPA = 0.10
PRESSURE_MAX_MPA = 1.20
PRESSURE_LOSS_MPA = 0.05

ACTIVE_STATES = ("open", "acknowledged")
"""An event is active until it is resolved (CONTRACT §8 lifecycle)."""

SEVERITY_COLORS = {"critical": "red", "major": "orange", "minor": "yellow"}

RAISED = 'count(distinct("event_id"))'
OPENED = "\"state\" = 'open'"
"""``open`` is written once per event: ``RAISED ... WHERE OPENED`` counts the events raised."""

TAG = "firegrid"
GRID_COLUMNS = 24


# --- template variables -----------------------------------------------------------------------


def _all_option() -> model.VariableOption:
    return model.VariableOption(selected=True, text="All", value="$__all")


def _tag_variable(name: str, label: str, query: str) -> dashboard_builder.QueryVariable:
    return (
        dashboard_builder.QueryVariable(name)
        .label(label)
        .datasource(datasource_ref())
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL_VALUE)
        .current(_all_option())
    )


def district_variable() -> dashboard_builder.QueryVariable:
    return _tag_variable("district", "District", 'SHOW TAG VALUES WITH KEY = "district"')


def grid_variable() -> dashboard_builder.QueryVariable:
    return _tag_variable(
        "grid", "Grid", 'SHOW TAG VALUES WITH KEY = "grid" WHERE "district" =~ /^$district$/'
    )


def instance_variable() -> dashboard_builder.QueryVariable:
    return _tag_variable("instance", "Instance", 'SHOW TAG VALUES FROM "ingest_stats" WITH KEY = "instance"')


def grid_variables() -> list[dashboard_builder.QueryVariable]:
    """``district`` and ``grid``: the variables of every dashboard on the device measurements."""
    return [district_variable(), grid_variable()]


# --- dashboards and layout --------------------------------------------------------------------


def new_dashboard(
    uid: str,
    title: str,
    description: str,
    layout: Layout,
    variables: Sequence[dashboard_builder.QueryVariable],
) -> dashboard_builder.Dashboard:
    """A dashboard with the settings all firegrid dashboards share, its variables and panels."""
    board = (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard_builder.DashboardLink("firegrid")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for variable in variables:
        board.with_variable(variable)
    return layout.apply(board)


class _Built(cogbuilder.Builder[model.Panel]):
    def __init__(self, panel: model.Panel) -> None:
        self._panel = panel

    def build(self) -> model.Panel:
        return self._panel


class Layout:
    """Places panels row by row on Grafana's 24-column grid and numbers them 1, 2, 3…"""

    def __init__(self) -> None:
        self._y = 0
        self._panels: list[model.Panel] = []

    def row(self, height: int, *cells: tuple[int, cogbuilder.Builder[model.Panel]]) -> Layout:
        x = 0
        for width, builder in cells:
            if x + width > GRID_COLUMNS:
                raise ValueError(f"row at y={self._y} is wider than {GRID_COLUMNS} columns")
            panel = builder.build()
            panel.grid_pos = model.GridPos(h=height, w=width, x=x, y=self._y)
            panel.id_val = len(self._panels) + 1
            panel.datasource = datasource_ref()
            self._panels.append(panel)
            x += width
        self._y += height
        return self

    def apply(self, dashboard: dashboard_builder.Dashboard) -> dashboard_builder.Dashboard:
        for panel in self._panels:
            dashboard.with_panel(_Built(panel))
        return dashboard


# --- field config -----------------------------------------------------------------------------


def thresholds(base: str, *steps: tuple[float, str]) -> dashboard_builder.ThresholdsConfig:
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps(
            [model.Threshold(value=None, color=base)] + [model.Threshold(value=v, color=c) for v, c in steps]
        )
    )


def threshold_style(mode: common.GraphThresholdsStyleMode) -> common_builder.GraphThresholdsStyleConfig:
    return common_builder.GraphThresholdsStyleConfig().mode(mode)


def legend_table(*calcs: str) -> common_builder.VizLegendOptions:
    return (
        common_builder.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.RIGHT)
        .show_legend(True)
        .calcs(list(calcs))
    )


def legend_list() -> common_builder.VizLegendOptions:
    return (
        common_builder.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def reduce(calc: str, *, values: bool = False, fields: str = "") -> common_builder.ReduceDataOptions:
    return common_builder.ReduceDataOptions().calcs([calc]).values(values).fields(fields)


def text_colors(colors: dict[str, str]) -> list[model.ValueMapping]:
    """A value mapping that colours text values (e.g. severities, states)."""
    options = {
        text: model.ValueMappingResult(color=color, index=i) for i, (text, color) in enumerate(colors.items())
    }
    return [model.ValueMap(options=options)]


def stack_normal() -> common_builder.StackingConfig:
    return common_builder.StackingConfig().mode(common.StackingMode.NORMAL)


def fixed_color(color: str) -> model.DynamicConfigValue:
    """An override property that paints a field in one colour."""
    return model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})


def color_text() -> model.DynamicConfigValue:
    """An override property that colours a table column's text by the value mappings."""
    return model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})


# --- panel shapes -----------------------------------------------------------------------------


class _Describable(Protocol):
    def description(self, description: str) -> Self: ...


_P = TypeVar("_P", bound=_Describable)


def _described(panel: _P, description: str | None) -> _P:
    return panel if description is None else panel.description(description)


def target(query: str, alias: str | None = None) -> InfluxQueryBuilder:
    """A time-series target, its series named by ``alias`` (e.g. ``$tag_site``) when given."""
    built = influx(query)
    return built if alias is None else built.alias(alias)


def count_stat(
    title: str, query: str, color: str, *, alias: str | None = None, description: str | None = None
) -> stat.Panel:
    """A big number: green at 0 (also shown when there is no data), ``color`` from 1."""
    panel = (
        stat.Panel()
        .title(title)
        .with_target(target(query, alias))
        .reduce_options(reduce("lastNotNull"))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .thresholds(thresholds("green", (1, color)))
        .no_value("0")
    )
    return _described(panel, description)


def time_series(
    title: str,
    query: str,
    alias: str,
    *,
    interval: str,
    unit: str,
    legend: Sequence[str],
    description: str | None = None,
    min_value: float | None = 0,
) -> timeseries.Panel:
    """Lines of one series per ``alias``, at least ``interval`` apart, from ``min_value`` up
    (None: no minimum); the legend a table of the ``legend`` calculations."""
    panel = (
        timeseries.Panel()
        .title(title)
        .with_target(target(query, alias))
        .interval(interval)
        .unit(unit)
        .legend(legend_table(*legend))
    )
    if min_value is not None:
        panel.min(min_value)
    return _described(panel, description)


def threshold_lines(
    panel: timeseries.Panel,
    steps: dashboard_builder.ThresholdsConfig,
    mode: common.GraphThresholdsStyleMode = common.GraphThresholdsStyleMode.DASHED,
) -> timeseries.Panel:
    """Draw the threshold ``steps`` on ``panel`` (dashed lines by default)."""
    return panel.thresholds(steps).thresholds_style(threshold_style(mode))


def stacked_counts(
    title: str, query: str, alias: str, *, interval: str, description: str | None = None
) -> timeseries.Panel:
    """Counts per interval as stacked bars, one colour per ``alias``, summed in the legend."""
    return (
        time_series(
            title, query, alias, interval=interval, unit="short", legend=("sum",), description=description
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .stacking(stack_normal())
    )


def bar_gauge(
    title: str,
    query: str,
    alias: str,
    *,
    unit: str,
    span: tuple[float, float],
    display: common.BarGaugeDisplayMode,
    steps: dashboard_builder.ThresholdsConfig,
    calc: str = "lastNotNull",
    description: str | None = None,
) -> bargauge.Panel:
    """Horizontal bars, one per ``alias``, each the ``calc`` of its series on the scale ``span``."""
    low, high = span
    panel = (
        bargauge.Panel()
        .title(title)
        .with_target(target(query, alias))
        .unit(unit)
        .min(low)
        .max(high)
        .display_mode(display)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce(calc))
        .thresholds(steps)
    )
    return _described(panel, description)


def bar_chart(title: str, description: str, query: str, x_field: str) -> barchart.Panel:
    """Horizontal bars of a table result, one group per ``x_field``."""
    return (
        barchart.Panel()
        .title(title)
        .description(description)
        .with_target(influx(query).table())
        .x_field(x_field)
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_value(common.VisibilityMode.AUTO)
        .legend(legend_list())
    )


def table_panel(
    title: str, query: str, *, description: str | None = None, filterable: bool = True
) -> table.Panel:
    """The rows of ``query``, compact."""
    panel = (
        table.Panel().title(title).with_target(influx(query).table()).cell_height(common.TableCellHeight.SM)
    )
    if filterable:
        panel.filterable(True)
    return _described(panel, description)


def events_raised(kind: str, title: str, description: str, value: str) -> table.Panel:
    """The events of one device ``kind`` raised in the range, per type and severity, with the
    ``value`` column (an aggregate of ``value``, e.g. ``max("value") AS "worst value"``)."""
    query = select(
        f'{RAISED} AS "raised", {value}',
        "events",
        f"\"kind\" = '{kind}'",
        OPENED,
        group_by=keys("type", "severity"),
    )
    return table_panel(title, query, description=description, filterable=False)


# --- transformations --------------------------------------------------------------------------


def transformation(id_val: str, options: dict[str, Any]) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=id_val, options=options)


def latest_per_event(fields: Sequence[str]) -> list[model.DataTransformerConfig]:
    """Collapse the ``events`` points (one per state change) to each event's latest values.

    InfluxQL can group only by tags and ``event_id`` is a field, so the latest state of each
    event is found in Grafana: group by ``event_id`` taking ``lastNotNull`` of every other field
    (the rows come in time order), rename the results back, keep the active ones.
    """
    group = {"event_id": {"aggregations": [], "operation": "groupby"}}
    group.update({name: {"aggregations": ["lastNotNull"], "operation": "aggregate"} for name in fields})
    rename = {f"{name} (lastNotNull)": name for name in fields}
    active = "^(" + "|".join(ACTIVE_STATES) + ")$"
    return [
        transformation("groupBy", {"fields": group}),
        transformation("organize", {"renameByName": rename}),
        transformation(
            "filterByValue",
            {
                "type": "include",
                "match": "any",
                "filters": [{"fieldName": "state", "config": {"id": "regex", "options": {"value": active}}}],
            },
        ),
    ]


def count_by(*keys: str) -> model.DataTransformerConfig:
    """Count rows (events) per combination of ``keys``; the count is the field ``event_id (count)``."""
    group: dict[str, dict[str, Any]] = {key: {"aggregations": [], "operation": "groupby"} for key in keys}
    group["event_id"] = {"aggregations": ["count"], "operation": "aggregate"}
    return transformation("groupBy", {"fields": group})
