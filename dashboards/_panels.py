"""Shared pieces of the dashboards: limits, template variables, layout, thresholds, transformations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards._influx import ALL_VALUE, datasource_ref

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


# --- dashboards and layout --------------------------------------------------------------------


def new_dashboard(uid: str, title: str, description: str) -> dashboard_builder.Dashboard:
    """A dashboard with the settings all firegrid dashboards share."""
    return (
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
