"""Grids as inline SVG, without a tile server."""

from __future__ import annotations

import json
from pathlib import Path

from console import GridMap
from tests.helpers import write_registry


def test_grids_are_drawn_north_up_and_coloured(tmp_path: Path) -> None:
    grids = GridMap.load(write_registry(tmp_path / "registry") / "grids.geojson")
    svg = grids.draw({"D01-G00": "critical", "D01-G03": "minor"})
    width, height = (float(v) for v in svg.view_box.split()[2:])
    assert height == 1000 and 0.82 < width / height < 0.84  # 0.02° square at 34° N: cos(34°) ≈ 0.83
    by_id = {g.grid_id: g for g in svg.grids}
    assert set(by_id) == {"D01-G00", "D01-G01", "D01-G02", "D01-G03"}
    assert by_id["D01-G00"].severity == "critical" and by_id["D01-G01"].severity is None
    # G00 is south-west: bottom left in the picture
    assert by_id["D01-G00"].path.startswith("M0 1000L") and by_id["D01-G00"].path.endswith("Z")
    assert {label.label for label in svg.labels} == set(by_id)


def test_districts_and_multipolygons(tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    square = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]
    far = [[[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]]
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "MultiPolygon", "coordinates": [square, far]},
            "properties": {"grid_id": "A-1", "district": "A", "workers": []},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": far},
            "properties": {"grid_id": "B-1", "district": "B", "workers": []},
        },
        {"type": "Feature", "geometry": None, "properties": {}},  # skipped
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    grids = GridMap.load(path)
    assert set(grids.shapes) == {"A-1", "B-1"}
    assert grids.districts_of({"A-1", "nope"}) == {"A"}
    only_a = grids.draw({}, districts={"A"})
    assert [g.grid_id for g in only_a.grids] == ["A-1"]
    assert only_a.grids[0].path.count("M") == 2


def test_an_events_map_shows_its_grid_and_location(tmp_path: Path) -> None:
    grids = GridMap.load(write_registry(tmp_path / "registry") / "grids.geojson")
    svg = grids.around("D01-G00", 108.702, 34.302)
    here = [g for g in svg.grids if g.severity == "here"]
    assert [g.grid_id for g in here] == ["D01-G00"]
    assert len(svg.markers) == 1
    marker = svg.markers[0]
    width, height = (float(v) for v in svg.view_box.split()[2:])
    assert 0 < marker.x < width and 0 < marker.y < height
    assert grids.around("nowhere", None, None).grids == ()
    assert len(grids.around("nowhere", 108.0, 34.0).markers) == 1
