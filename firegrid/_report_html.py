"""``firegrid report``'s HTML: one self-contained file (inline CSS, the trend as inline SVG, no
script, nothing fetched) rendered from an autoescaped Jinja template
(``firegrid/report_templates/report.html``), with the console's ways of writing scores, times,
durations and percentages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from console._format import clock, duration, number, percent, score
from console._grids import band
from firegrid._report import Report
from firegrid._report_chart import Axis, Series, line_chart, style
from firegrid._report_month import DAY_MS
from safety import FIGURES, GROUPS

TEMPLATE: Final = "report.html"
TICK_DAYS: Final = (1, 8, 15, 22, 29)
"""Days labelled under the trend (each at its end, where its point is)."""

COUNTS: Final = frozenset({"raised", "acked_on_time", "handled_8h", "closed"})
DURATIONS: Final = frozenset({"ack_p50_s", "ack_p90_s", "resolve_p50_s", "resolve_p90_s"})
HEADERS: Final = {
    "raised": "Raised",
    "acked_on_time": "Acked on time",
    "handled_8h": "Handled ≤ 8 h",
    "closed": "Closed",
    "ack_p50_s": "Ack p50",
    "ack_p90_s": "Ack p90",
    "resolve_p50_s": "Resolve p50",
    "resolve_p90_s": "Resolve p90",
    "handled_8h_pct": "Handled ≤ 8 h %",
    "closure_pct": "Closed %",
}
"""Column headers of the figures (CONTRACT §12), in :data:`safety.FIGURES` order."""
assert tuple(HEADERS) == FIGURES


def figure(value: object, name: str) -> str:
    """One figure as the report writes it."""
    if name in DURATIONS:
        return duration(value)
    if name in COUNTS:
        return number(value)
    return percent(value)


def day(ms: object) -> str:
    """``3 Mar`` (UTC)."""
    if not isinstance(ms, int) or isinstance(ms, bool):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%-d %b")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("firegrid", "report_templates"),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        band=band, clock=clock, day=day, duration=duration, figure=figure, percent=percent, score=score
    )
    return env


def trend_series(report: Report) -> list[Series]:
    """The district's mean first, then the worst grids, lowest index first."""
    worst = [Series(grid_id, values) for grid_id, values in report.trend.grids.items()]
    return [Series(f"{report.district} mean", report.trend.mean, emphasis=True), *worst]


def trend_chart(report: Report, series: list[Series]) -> Markup:
    month = report.month
    axis = Axis(
        month.start_ms,
        month.end_ms,
        [(month.start_ms + d * DAY_MS, str(d)) for d in TICK_DAYS if d <= month.days],  # at the day's end
    )
    title = f"Index of {report.district} at the end of each day of {month.label}"
    return line_chart(title, axis, report.trend.ats, series)


def render(report: Report) -> str:
    series = trend_series(report)
    return (
        environment()
        .get_template(TEMPLATE)
        .render(
            report=report,
            chart=trend_chart(report, series),
            legend=[(one, style(position, one)) for position, one in enumerate(series)],
            groups=list(GROUPS),
            figures=FIGURES,
            headers=HEADERS,
            raised=report.total["raised"],
        )
    )
