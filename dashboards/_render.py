"""A picture of a dashboard's layout (panel grid, titles, panel types) drawn from its JSON."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from dashboards._build import iter_panels

# Grafana's grid: 24 columns; a row unit is 30 px against ~80 px per column on a wide screen.
_COLUMNS = 24
_ROW_UNIT = 0.42
_TYPE_COLORS = {
    "stat": "#d8e9f7",
    "timeseries": "#dff2df",
    "barchart": "#fbe8cf",
    "bargauge": "#fdf3c4",
    "geomap": "#e6dcf5",
    "state-timeline": "#f7d9dc",
    "table": "#e8e8e8",
}


def _import_pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("drawing layouts needs matplotlib: pip install 'firegrid[dev]'") from exc
    return plt


def render_layout(json_path: Path | str, png_path: Path | str) -> Path:
    """Draw the panel grid of the dashboard JSON at ``json_path`` into the PNG ``png_path``."""
    from matplotlib.patches import FancyBboxPatch

    plt = _import_pyplot()
    data: dict[str, Any] = json.loads(Path(json_path).read_text(encoding="utf-8"))
    panels = list(iter_panels(data))
    bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1)
    width_in = 16.0
    height_in = width_in * (bottom * _ROW_UNIT + 2.2) / _COLUMNS
    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=100)
    ax.set_xlim(0, _COLUMNS)
    ax.set_ylim(bottom * _ROW_UNIT + 2.2, 0)
    ax.axis("off")
    variables = [f"\\${v['name']}" for v in data.get("templating", {}).get("list", [])]
    ax.text(0.1, 0.75, data.get("title", data.get("uid", "")), fontsize=18, weight="bold", va="center")
    ax.text(
        0.1,
        1.55,
        f"uid {data.get('uid')}   ·   variables: {', '.join(variables) or '—'}   ·   "
        f"default range {data.get('time', {}).get('from', '?')} → {data.get('time', {}).get('to', '?')}",
        fontsize=10,
        color="#555555",
        va="center",
    )
    top = 2.2
    for panel in panels:
        pos = panel["gridPos"]
        x, y, w, h = pos["x"], top + pos["y"] * _ROW_UNIT, pos["w"], pos["h"] * _ROW_UNIT
        kind = panel.get("type", "?")
        ax.add_patch(
            FancyBboxPatch(
                (x + 0.08, y + 0.06),
                w - 0.16,
                h - 0.12,
                boxstyle="round,pad=0,rounding_size=0.15",
                facecolor=_TYPE_COLORS.get(kind, "#ffffff"),
                edgecolor="#666666",
                linewidth=1.0,
            )
        )
        chars = max(8, int(w * 5.2))
        title = textwrap.shorten(panel.get("title", "").replace("$", "\\$"), width=chars * 2, placeholder="…")
        ax.text(
            x + 0.35,
            y + 0.45,
            "\n".join(textwrap.wrap(title, chars)[:2]),
            fontsize=10.5,
            weight="bold",
            va="top",
        )
        ax.text(
            x + w / 2,
            y + h / 2 + 0.25,
            kind,
            fontsize=10,
            color="#444444",
            ha="center",
            va="center",
            style="italic",
        )
        ax.text(
            x + w - 0.3,
            y + h - 0.3,
            f"#{panel.get('id')}  {w}×{pos['h']}",
            fontsize=8,
            color="#777777",
            ha="right",
            va="bottom",
        )
    out = Path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight", facecolor="white", metadata={"Software": None})
    plt.close(fig)
    return out
