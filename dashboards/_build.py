"""The dashboards registry, JSON generation and the committed ``generated/`` directory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import _electrical, _ingest, _overview, _patrol, _safety, _water

GENERATED_DIR = Path(__file__).resolve().parent / "generated"
"""Where the committed dashboard JSON lives (mounted into Grafana by docker-compose.yml)."""

DASHBOARDS: dict[str, Callable[[], dashboard_builder.Dashboard]] = {
    _overview.UID: _overview.dashboard,
    _electrical.UID: _electrical.dashboard,
    _water.UID: _water.dashboard,
    _patrol.UID: _patrol.dashboard,
    _safety.UID: _safety.dashboard,
    _ingest.UID: _ingest.dashboard,
}
"""Every dashboard, by uid, in the order they are listed."""


def dashboard_json(uid: str) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard, as plain JSON data."""
    built = DASHBOARDS[uid]().build()
    data: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    return data


def all_dashboards() -> dict[str, dict[str, Any]]:
    return {uid: dashboard_json(uid) for uid in DASHBOARDS}


def to_text(data: dict[str, Any]) -> str:
    """The stable text form committed under ``generated/`` (sorted keys, 2-space indent)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build(out_dir: Path | str | None = None) -> list[Path]:
    """Write ``<uid>.json`` for every dashboard into ``out_dir`` (default: :data:`GENERATED_DIR`).

    Files of other names in ``out_dir`` are left alone; returns the paths written.
    """
    target = Path(out_dir) if out_dir is not None else GENERATED_DIR
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, data in all_dashboards().items():
        path = target / f"{uid}.json"
        path.write_text(to_text(data), encoding="utf-8")
        written.append(path)
    return written


def iter_panels(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard JSON, including those nested in rows."""
    for panel in data.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def iter_targets(data: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(panel, target)`` for every query target of a dashboard JSON."""
    for panel in iter_panels(data):
        for target in panel.get("targets", []):
            yield panel, target
