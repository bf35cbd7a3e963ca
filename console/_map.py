"""Grids from ``grids.geojson`` as inline SVG (CONTRACT §3, §11): no tile server, no internet.

Longitude and latitude are projected equirectangularly around the middle latitude (a grid is a
few hundred metres across; a district a few kilometres), y pointing down, into a view box
whose longer side is 1000 units.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from devices import RegistryError

WIDTH: Final = 1000.0
MAX_LABELS: Final = 60
Ring = tuple[tuple[float, float], ...]
"""(lon, lat) points."""


@dataclass(frozen=True, slots=True)
class GridShape:
    grid_id: str
    district: str
    name: str
    rings: tuple[Ring, ...]
    bbox: tuple[float, float, float, float]
    """min lon, min lat, max lon, max lat."""


@dataclass(frozen=True, slots=True)
class SvgGrid:
    grid_id: str
    name: str
    path: str
    severity: str | None
    """The most severe open event's severity; None: none open."""


@dataclass(frozen=True, slots=True)
class SvgMarker:
    x: float
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class SvgMap:
    view_box: str
    grids: tuple[SvgGrid, ...]
    markers: tuple[SvgMarker, ...] = ()
    stroke: float = 1.0
    labels: tuple[SvgMarker, ...] = ()
    """grid_ids at their grids' middles, when there are few enough to read."""


def _rings(geometry: Mapping[str, Any]) -> tuple[Ring, ...]:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return tuple(
        tuple((float(point[0]), float(point[1])) for point in ring)
        for polygon in polygons
        for ring in polygon
    )


class GridMap:
    """The grids of a registry, ready to draw."""

    def __init__(self, shapes: Iterable[GridShape]) -> None:
        self.shapes = {shape.grid_id: shape for shape in shapes}

    @classmethod
    def load(cls, path: Path) -> GridMap:
        """From ``grids.geojson`` (the registry has validated it; anything else is skipped)."""
        try:
            document = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise RegistryError([f"{path}: cannot read the grids for the map: {exc}"]) from exc
        shapes = []
        for feature in document.get("features", []) if isinstance(document, dict) else []:
            try:
                props = feature["properties"]
                rings = _rings(feature["geometry"])
                lons = [p[0] for ring in rings for p in ring]
                lats = [p[1] for ring in rings for p in ring]
                shapes.append(
                    GridShape(
                        str(props["grid_id"]),
                        str(props["district"]),
                        str(props.get("name") or props["grid_id"]),
                        rings,
                        (min(lons), min(lats), max(lons), max(lats)),
                    )
                )
            except (KeyError, TypeError, ValueError, IndexError):
                continue
        return cls(shapes)

    def districts_of(self, grid_ids: Collection[str]) -> set[str]:
        return {self.shapes[g].district for g in grid_ids if g in self.shapes}

    def draw(
        self,
        severities: Mapping[str, str],
        *,
        districts: Collection[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        points: Iterable[tuple[float, float, str]] = (),
    ) -> SvgMap:
        """The grids of ``districts`` (None: all), or those meeting ``bbox``, coloured by
        ``severities`` (grid_id → severity); ``points`` (lon, lat, label) become markers."""
        shapes = [
            s
            for s in self.shapes.values()
            if (districts is None or s.district in districts) and (bbox is None or _meets(s.bbox, bbox))
        ]
        if bbox is None:
            if not shapes:
                return SvgMap("0 0 1000 600", ())
            bbox = (
                min(s.bbox[0] for s in shapes),
                min(s.bbox[1] for s in shapes),
                max(s.bbox[2] for s in shapes),
                max(s.bbox[3] for s in shapes),
            )
        min_lon, min_lat, max_lon, max_lat = bbox
        k = math.cos(math.radians((min_lat + max_lat) / 2))
        span = max((max_lon - min_lon) * k, (max_lat - min_lat), 1e-9)
        scale = WIDTH / span
        width = max((max_lon - min_lon) * k * scale, 1.0)
        height = max((max_lat - min_lat) * scale, 1.0)

        def xy(lon: float, lat: float) -> tuple[float, float]:
            return round((lon - min_lon) * k * scale, 1), round((max_lat - lat) * scale, 1)

        drawn = []
        for shape in sorted(shapes, key=lambda s: s.grid_id):
            pieces = []
            for ring in shape.rings:
                coords = [xy(lon, lat) for lon, lat in ring]
                pieces.append("M" + "L".join(f"{x:g} {y:g}" for x, y in coords) + "Z")
            drawn.append(SvgGrid(shape.grid_id, shape.name, "".join(pieces), severities.get(shape.grid_id)))
        markers = tuple(SvgMarker(*xy(lon, lat), label) for lon, lat, label in points)
        labels: tuple[SvgMarker, ...] = ()
        if len(shapes) <= MAX_LABELS:
            labels = tuple(
                SvgMarker(*xy((s.bbox[0] + s.bbox[2]) / 2, (s.bbox[1] + s.bbox[3]) / 2), s.grid_id)
                for s in shapes
            )
        return SvgMap(
            f"0 0 {width:.0f} {height:.0f}",
            tuple(drawn),
            markers,
            stroke=max(width, height) / 500,
            labels=labels,
        )

    def around(self, grid_id: str, lon: float | None, lat: float | None) -> SvgMap:
        """The map of one event: its grid and its neighbours, and its location."""
        shape = self.shapes.get(grid_id)
        if shape is not None:
            min_lon, min_lat, max_lon, max_lat = shape.bbox
        elif lon is not None and lat is not None:
            min_lon, min_lat, max_lon, max_lat = lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002
        else:
            return SvgMap("0 0 1000 600", ())
        if lon is not None and lat is not None:
            min_lon, max_lon = min(min_lon, lon), max(max_lon, lon)
            min_lat, max_lat = min(min_lat, lat), max(max_lat, lat)
        pad_lon, pad_lat = (max_lon - min_lon) * 0.3 + 1e-4, (max_lat - min_lat) * 0.3 + 1e-4
        bbox = (min_lon - pad_lon, min_lat - pad_lat, max_lon + pad_lon, max_lat + pad_lat)
        points = [(lon, lat, "event location")] if lon is not None and lat is not None else []
        return self.draw({grid_id: "here"} if shape is not None else {}, bbox=bbox, points=points)


def _meets(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]
