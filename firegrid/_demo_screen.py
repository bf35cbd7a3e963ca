"""What the demo shows: the status line, the live alert table or plain alert lines, the summary.

Pure formatting: everything arrives as values (the feed's view, the traffic, /healthz, the
summary); nothing here starts, waits for or asks anything.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from firegrid._alert_feed import SEVERITIES, Alert, FeedView
from firegrid._demo_summary import DemoSummary

SEVERITY_STYLE = dict(zip(SEVERITIES, ("bold red", "yellow", "cyan"), strict=True))
ALERT_COLUMNS = (
    ("time", "left"),
    ("district", "left"),
    ("grid", "left"),
    ("type", "left"),
    ("severity", "left"),
    ("device/site", "left"),
    ("state", "left"),
    ("latency", "right"),
)


def rel(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def fmt_ms(value: int | None) -> str:
    return "-" if value is None else f"{value:,} ms"


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counts.items()) or "none"


def clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


# -- while running -------------------------------------------------------------------------------


def status_line(
    elapsed: float,
    duration: float | None,
    traffic: tuple[int, str] | None,
    health: Mapping[str, Any] | None,
    feed: FeedView | None,
) -> Text:
    """One line: time, the simulator's messages (``traffic``: sent, phase), ingest, alerts."""
    text = Text()
    text.append("● ", style="bold green")
    text.append(minutes(elapsed) + (f" / {minutes(duration)}" if duration is not None else ""))
    if traffic is not None:
        sent, phase = traffic
        rate = sent / elapsed if elapsed > 0.5 else 0.0
        text.append(f"  │ simulator {sent:,} msgs ({rate:,.0f}/s), {phase}")
    if health is None:
        text.append("  │ ingest: no answer", style="red")
    else:
        ok = health.get("status") == "ok"
        text.append(
            f"  │ ingest {health.get('status')}, spool {health.get('spool_depth', '?')}",
            style="" if ok else "yellow",
        )
    if feed is not None:
        text.append(f"  │ alerts {feed.messages:,} ({feed.events:,} events)")
    text.append("  │ Ctrl-C to stop", style="dim")
    return text


def live_screen(status: Text, feed: FeedView, rows: int) -> RenderableType:
    """The status line over a table of the newest ``rows`` alerts."""
    table = Table(box=None, header_style="bold dim", pad_edge=False, padding=(0, 2, 0, 0))
    for name, justify in ALERT_COLUMNS:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for alert in feed.recent[:rows]:
        table.add_row(
            clock(alert.arrival_ms),
            alert.district,
            alert.grid_id,
            alert.type,
            Text(alert.severity, style=SEVERITY_STYLE.get(alert.severity, "")),
            alert.where,
            alert.state_text,
            fmt_ms(alert.latency_ms),
        )
    parts: list[RenderableType] = [status]
    if not feed.messages:
        parts.append(
            Text("no alerts yet: they appear here as the scenario's hazards reach the rules", style="dim")
        )
    parts.append(table)
    return Group(*parts)


def alert_line(alert: Alert) -> str:
    """One alert as a plain line (a log or a pipe instead of the live screen)."""
    return (
        f"alert {clock(alert.arrival_ms)} {alert.district} {alert.grid_id} {alert.type} "
        f"{alert.severity} {alert.where} {alert.state_text} latency {fmt_ms(alert.latency_ms)}"
    )


# -- at the end ----------------------------------------------------------------------------------


def summary_rows(summary: DemoSummary, path: Callable[[Path], str] = rel) -> list[tuple[str, str]]:
    """(label, text) rows of the summary; ``path`` shows a path."""
    rows: list[tuple[str, str]] = []

    def row(label: str, value: str) -> None:
        rows.append((label, value))

    reason = {"duration": "--duration reached", "error": "an error"}.get(
        summary.stopped_by, summary.stopped_by
    )
    row("ran", f"{summary.seconds:g} s (stopped by {reason})")
    sent = summary.traffic.sent
    rate = sent / summary.seconds if summary.seconds else 0.0
    row("sent", f"{sent:,} messages ({rate:,.0f}/s): {fmt_counts(summary.traffic.per_kind)}")
    alerts = summary.alerts
    if alerts.messages:
        row(
            "alerts",
            f"{plural(alerts.messages, 'alert message')} about {plural(alerts.events, 'event')}; "
            f"{fmt_counts(alerts.by_severity)}",
        )
        row("by type", fmt_counts(alerts.by_type))
        row(
            "latency",
            f"p50 {fmt_ms(alerts.latency_ms_p50)}, p99 {fmt_ms(alerts.latency_ms_p99)} "
            "(arrival on alerts/# − the event's updated_at)",
        )
    else:
        row("alerts", "none received on alerts/#")
    influx = summary.influx
    stored = (
        f"{influx.new_total:,} new points ({fmt_counts(influx.new)}), {influx.in_db or 0:,} in all"
        if influx.new is not None
        else "point count not available"
    )
    row("InfluxDB", f"{influx.url} database {influx.db}: {stored}")
    root = summary.dir
    row(
        "data",
        f"stays in {path(root)}/ (readings in {path(root / 'influxdb')}, "
        f"ingest state in {path(root / 'data')}, logs *.log)",
    )
    row(
        "Grafana",
        f"serve the data again with `influxd -config {path(root / 'influxdb' / 'influxdb.conf')}` "
        f"(or run the demo again), then add an InfluxDB data source (InfluxQL) on {influx.url}, "
        f"database {influx.db}",
    )
    for warning in summary.traffic.warnings:
        row("note", f"simulator: {warning}")
    for problem in summary.problems:
        row("problem", f"[red]{problem}[/]")
    if not summary.problems:
        row("stopped", f"every process the demo started; summary in {path(root / 'summary.json')}")
    return rows


def print_summary(console: Console, summary: DemoSummary) -> None:
    """Wrapped to the terminal with a hanging indent; in a log or a pipe, one line per row."""
    rows = summary_rows(summary)
    with contextlib.suppress(OSError):  # a closed pipe (| head) must not stop the clean-up
        console.print("")
        console.print("[bold]firegrid demo: summary[/]")
        if console.is_terminal:
            grid = Table.grid(padding=(0, 1))
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column(overflow="fold")
            for label, value in rows:
                grid.add_row(label, value)
            console.print(grid)
        else:
            for label, value in rows:
                console.print(f"{label:<9} {value}")
