"""Grafana dashboards as code (grafana-foundation-sdk), their generated JSON and layout pictures."""

from dashboards._build import (
    DASHBOARDS,
    GENERATED_DIR,
    all_dashboards,
    build,
    dashboard_json,
    iter_panels,
    iter_targets,
    to_text,
)
from dashboards._influx import ALL_VALUE, DATASOURCE_TYPE, DATASOURCE_UID, format_interval, interpolate
from dashboards._render import render_layout

__all__ = [
    "ALL_VALUE",
    "DASHBOARDS",
    "DATASOURCE_TYPE",
    "DATASOURCE_UID",
    "GENERATED_DIR",
    "all_dashboards",
    "build",
    "dashboard_json",
    "format_interval",
    "interpolate",
    "iter_panels",
    "iter_targets",
    "render_layout",
    "to_text",
]
