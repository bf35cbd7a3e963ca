"""The report's index trend as inline SVG, drawn here (no script, no external file): a line per
series over the month (x: time, y: 0–100) on the console's colour bands (red below 60, orange
below 80, green from 80), with a dash pattern per series so that a grey print still tells them
apart. A missing value (a grid without an index that day) breaks its line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

WIDTH: Final = 480
HEIGHT: Final = 240
LEFT, RIGHT, TOP, BOTTOM = 30, 8, 10, 26
"""Margins of the plot area (axis labels)."""
BANDS: Final = ((80.0, 100.0, "#e3f1e6"), (60.0, 80.0, "#fbefd9"), (0.0, 60.0, "#f8e1df"))
COLOURS: Final = ("#b03a2e", "#1f618d", "#7d3c98", "#ba4a00", "#117a65", "#5d6d7e")
DASHES: Final = ("", "6 3", "2 3", "9 3 2 3", "4 2 1 2", "1 3")
MEAN_COLOUR: Final = "#111827"


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: Sequence[float | None]
    """One per x of the chart."""
    emphasis: bool = False
    """Drawn thick and dark (the district's mean)."""


@dataclass(frozen=True, slots=True)
class Style:
    colour: str
    dash: str
    width: float


def style(position: int, series: Series) -> Style:
    """The look of the ``position``-th series (also used by the legend)."""
    if series.emphasis:
        return Style(MEAN_COLOUR, "", 3.0)
    return Style(COLOURS[position % len(COLOURS)], DASHES[position % len(DASHES)], 1.6)


@dataclass(frozen=True, slots=True)
class Axis:
    start_ms: int
    end_ms: int
    ticks: Sequence[tuple[int, str]]
    """(time, label) under the x axis."""

    def x(self, at_ms: int) -> float:
        span = max(self.end_ms - self.start_ms, 1)
        return LEFT + (WIDTH - LEFT - RIGHT) * (at_ms - self.start_ms) / span


def y(score: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (100.0 - min(max(score, 0.0), 100.0)) / 100.0


def path_data(axis: Axis, xs: Sequence[int], values: Sequence[float | None]) -> str:
    """``M``/``L`` commands through the points, a new ``M`` after every gap."""
    commands: list[str] = []
    pen_down = False
    for at, value in zip(xs, values, strict=True):
        if value is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{axis.x(at):.1f},{y(value):.1f}")
        pen_down = True
    return " ".join(commands)


def line_chart(title: str, axis: Axis, xs: Sequence[int], series: Sequence[Series]) -> Markup:
    """An SVG element (scales to its box's width) with a ``<title>`` for screen readers."""
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{escape(title)}</title>']
    plot_w = WIDTH - LEFT - RIGHT
    for low, high, fill in BANDS:
        parts.append(
            f'<rect x="{LEFT}" y="{y(high):.1f}" width="{plot_w}" '
            f'height="{y(low) - y(high):.1f}" fill="{fill}"/>'
        )
    for score in range(0, 101, 20):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(score):.1f}" y2="{y(score):.1f}" '
            f'stroke="#9ca3af" stroke-width="0.5"/>'
            f'<text x="{LEFT - 4}" y="{y(score) + 4:.1f}" text-anchor="end">{score}</text>'
        )
    for at, label in axis.ticks:
        parts.append(
            f'<line x1="{axis.x(at):.1f}" x2="{axis.x(at):.1f}" '
            f'y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM + 4}" '
            f'stroke="#4b5563"/><text x="{axis.x(at):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    # the mean last, so it stays on top
    order = sorted(enumerate(series), key=lambda item: item[1].emphasis)
    for position, one in order:
        look = style(position, one)
        dash = f' stroke-dasharray="{look.dash}"' if look.dash else ""
        parts.append(
            f'<g class="series" data-label="{escape(one.label)}"><title>{escape(one.label)}</title>'
            f'<path d="{path_data(axis, xs, one.values)}" fill="none" stroke="{look.colour}" '
            f'stroke-width="{look.width}" stroke-linejoin="round"{dash}/>'
        )
        for at, value in zip(xs, one.values, strict=True):
            if value is not None:
                parts.append(
                    f'<circle cx="{axis.x(at):.1f}" cy="{y(value):.1f}" r="{look.width * 0.9:.1f}" '
                    f'fill="{look.colour}"/>'
                )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
