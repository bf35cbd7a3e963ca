"""How the console's pages write times, numbers, durations and percentages (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime


def clock(ms: object) -> str:
    """Epoch milliseconds as a UTC time (the pages' script shows it in local time)."""
    if not isinstance(ms, int) or isinstance(ms, bool):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}".rstrip("0").rstrip(".")


def duration(seconds: object) -> str:
    """A duration in a human unit: ``45 s``, ``12 min``, ``3 h 20 min``, ``2 d 4 h``; ``—`` for none."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if minutes < 10 and rest else f"{minutes} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def score(value: object) -> str:
    """A 0–100 score as ingest rounded it (to 0.1), ``—`` when it has none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.1f}".removesuffix(".0")


def percent(value: object) -> str:
    """A percentage of §12 (rounded to 0.1 by ingest); ``—`` when its denominator was 0."""
    shown = score(value)
    return shown if shown == "—" else f"{shown} %"
