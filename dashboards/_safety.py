"""Grid safety (CONTRACT §12): the grids ranked by their fire-safety index, its trend per grid,
the indicator breakdown, the handling figures and patrol compliance.

Reads the ``grid_index`` points (every 15 min: ``index``, each group, each ``group_indicator``)
and the ``grid_sla`` points (daily: the figures of the previous day). The fields are selected by
pattern, not by name (``index`` and the groups have no underscore, the indicators have one), so a
new indicator or a changed weights file shows up here without an edit, and the dashboards need
not import ``safety`` (layering). docs/INDEX.md explains each indicator.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common

from dashboards._influx import keys, per_interval, select
from dashboards._panels import (
    Layout,
    grid_variables,
    new_dashboard,
    reduce,
    table_panel,
    target,
    threshold_lines,
    thresholds,
    time_series,
    transformation,
)

UID = "firegrid-safety"
INDEX_MEASUREMENT = "grid_index"
SLA_MEASUREMENT = "grid_sla"
SCORES = "/^[a-z0-9]+$/"
"""``index`` and the groups (``hazards``, ``handling``, ``patrol``, ``devices``, …)."""
INDICATORS = "/_/"
"""``group_indicator`` fields."""
EVERY_FIELD = "*"

SCORE_STEPS = ((60, "orange"), (80, "green"))
"""Index and indicator colours: red below 60, orange below 80, green from 80."""
PER_GRID = keys("grid")


def _score_steps() -> dashboard_builder.ThresholdsConfig:
    return thresholds("red", *SCORE_STEPS)


def _latest_per_grid(measurement: str, fields: str) -> str:
    """Each grid's latest value of every field matching ``fields`` (InfluxDB names them
    ``last_<field>``; :func:`_per_grid_table` takes the prefix off)."""
    return select(f"last({fields})", measurement, group_by=PER_GRID)


def _per_grid_table(title: str, query: str, description: str) -> table.Panel:
    return (
        table_panel(title, query, description=description)
        .with_transformation(transformation("organize", {"excludeByName": {"time": True}}))
        .with_transformation(transformation("renameByRegex", {"regex": "^last_(.*)$", "renamePattern": "$1"}))
        .thresholds(_score_steps())
    )


def _mean_of_latest(field: str, measurement: str) -> str:
    """The mean over the selected grids of each grid's latest ``field``."""
    inner = select(f'last("{field}") AS "{field}"', measurement, group_by=PER_GRID)
    return f'SELECT mean("{field}") FROM ({inner})'


def _score_stat(title: str, query: str, description: str, unit: str = "none") -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .with_target(target(query))
        .reduce_options(reduce("lastNotNull"))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .unit(unit)
        .decimals(1)
        .thresholds(_score_steps())
    )


def _mean_index() -> stat.Panel:
    return _score_stat(
        "Mean index",
        _mean_of_latest("index", INDEX_MEASUREMENT),
        "The mean of the selected grids' latest fire-safety index (0–100, higher is safer).",
    )


def _lowest_index() -> stat.Panel:
    inner = select('last("index") AS "index"', INDEX_MEASUREMENT, group_by=PER_GRID)
    return _score_stat(
        "Lowest index",
        f'SELECT min("index") FROM ({inner})',
        "The latest index of the least safe selected grid: the ranking below names it.",
    )


def _share_of_raised(figure: str) -> str:
    """100 × Σ ``figure`` / Σ raised over the selected grids' latest daily figures (weighted by
    events, unlike a mean of the grids' percentages)."""
    inner = select(
        f'last("{figure}") AS "{figure}", last("raised") AS "raised"', SLA_MEASUREMENT, group_by=PER_GRID
    )
    return f'SELECT 100 * sum("{figure}") / sum("raised") FROM ({inner})'


def _closure() -> stat.Panel:
    return _score_stat(
        "Events closed",
        _share_of_raised("closed"),
        "Share of the events of the grids' latest day that are closed (verified by a supervisor); "
        "the reference district reports 96.68 %.",
        unit="percent",
    )


def _acked_on_time() -> stat.Panel:
    return _score_stat(
        "Acknowledged on time",
        _share_of_raised("acked_on_time"),
        "Share of the events of the grids' latest day acknowledged before their escalation deadline "
        "(critical 2 min, major 30 min, minor 8 h). Handled within 8 h: see the figures below.",
        unit="percent",
    )


def _ranking() -> table.Panel:
    return _per_grid_table(
        "Grids ranked (least safe first)",
        _latest_per_grid(INDEX_MEASUREMENT, SCORES),
        "Each grid's latest index and its four groups (0–100). Sorted by index, lowest first.",
    ).sort_by([common_builder.TableSortByFieldState().display_name("index").desc(False)])


def _trend() -> timeseries.Panel:
    panel = time_series(
        "Index per grid",
        select('mean("index")', INDEX_MEASUREMENT, group_by=per_interval("grid")),
        "$tag_grid",
        interval="15m",
        unit="none",
        legend=("min", "lastNotNull"),
        description="The fire-safety index of each grid over time (written every 15 minutes).",
    )
    return threshold_lines(panel.max(100), _score_steps()).span_nulls(True)


def _breakdown() -> table.Panel:
    return _per_grid_table(
        "Indicator breakdown",
        _latest_per_grid(INDEX_MEASUREMENT, INDICATORS),
        "Each grid's latest indicators, group_indicator (0–100; empty: no basis, e.g. no "
        "checkpoints). docs/INDEX.md explains every one.",
    )


def _figures() -> table.Panel:
    return _per_grid_table(
        "Handling figures (latest day)",
        _latest_per_grid(SLA_MEASUREMENT, EVERY_FIELD),
        "Each grid's figures of its latest full day (CONTRACT §12): events raised, acknowledged on "
        "time, handled within 8 h, closed; ack and resolve percentiles in seconds.",
    )


def _patrol() -> timeseries.Panel:
    return time_series(
        "Patrol compliance per grid",
        select('mean("patrol_on_schedule")', INDEX_MEASUREMENT, group_by=per_interval("grid")),
        "$tag_grid",
        interval="15m",
        unit="percent",
        legend=("min", "lastNotNull"),
        description="Share of each grid's checkpoints not overdue (the patrol group's on_schedule).",
    ).span_nulls(True)


def dashboard() -> dashboard_builder.Dashboard:
    layout = (
        Layout()
        .row(4, (6, _mean_index()), (6, _lowest_index()), (6, _closure()), (6, _acked_on_time()))
        .row(9, (10, _ranking()), (14, _trend()))
        .row(8, (24, _breakdown()))
        .row(8, (14, _figures()), (10, _patrol()))
    )
    return new_dashboard(
        UID,
        "Grid safety",
        "How well each grid is kept safe: the fire-safety index, its indicators and the handling "
        "figures (CONTRACT §12; docs/INDEX.md).",
        layout,
        grid_variables(),
    ).time("now-7d", "now")  # the index moves every 15 min, the figures daily
