from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from devices import Registry
from simulators import REFERENCE, write_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, seed=7)
    return out


def _grids(root: Path) -> tuple[list[str], list[object], list[dict[str, object]]]:
    document = json.loads((root / "grids.geojson").read_text())
    features = document["features"]
    return (
        [f["properties"]["grid_id"] for f in features],
        [shape(f["geometry"]) for f in features],
        [f["properties"] for f in features],
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_counts_at_scale_1_match_the_reference_district(world: Path) -> None:
    ids, _, props = _grids(world)
    devices = _rows(world / "devices.csv")
    workers = _rows(world / "workers.csv")
    assert len(ids) == REFERENCE["grids"] == 1089
    assert len(workers) == 860
    assert len(_rows(world / "stations.csv")) == 76
    by_kind = {
        kind: sum(1 for d in devices if d["kind"] == kind)
        for kind in ("smoke", "electrical", "water", "patrol")
    }
    assert by_kind == {"smoke": 2861, "electrical": 2113, "water": 430, "patrol": 4064}
    supervisors = {w["worker_id"] for w in workers if w["role"] == "supervisor"}
    assert 1 <= len(supervisors) <= 40
    held: dict[str, int] = {}
    for p in props:
        members = [w for w in p["workers"] if w not in supervisors]  # type: ignore[attr-defined]
        assert members, f"grid {p['grid_id']} has no grid worker"
        for w in members:
            held[w] = held.get(w, 0) + 1
    assert max(held.values()) >= 2  # some workers hold several grids
    assert any(len([w for w in p["workers"] if w not in supervisors]) >= 2 for p in props)  # type: ignore[attr-defined]
    assert len({d["device_id"] for d in devices}) == len(devices)


def test_registry_accepts_the_world_without_warnings(world: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        registry = Registry.load(world)
    assert registry.warnings == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(registry) == 2861 + 2113 + 430 + 4064


def test_every_device_lies_in_exactly_one_grid_and_in_its_own(world: Path) -> None:
    ids, polygons, _ = _grids(world)
    devices = _rows(world / "devices.csv")
    points = shapely.points([float(d["lon"]) for d in devices], [float(d["lat"]) for d in devices])
    tree = shapely.STRtree(polygons)
    point_pos, tree_pos = tree.query(points, predicate="intersects")
    assert np.bincount(point_pos, minlength=len(devices)).tolist() == [1] * len(devices)
    found = [ids[t] for t in tree_pos[np.argsort(point_pos)]]
    assert found == [d["grid_id"] for d in devices]
    # and strictly inside (not on a border)
    own = [polygons[ids.index(g)] for g in found[:500]]
    assert all(shapely.contains_properly(p, pt) for p, pt in zip(own, points[:500], strict=True))


def test_grids_tile_the_district_without_gaps_or_overlaps(world: Path) -> None:
    _, polygons, _ = _grids(world)
    areas = shapely.area(polygons)
    union = shapely.union_all(polygons)
    box = shapely.box(*union.bounds)
    assert abs(union.area - box.area) < 1e-9 * box.area
    assert abs(areas.sum() - box.area) < 1e-9 * box.area
    tree = shapely.STRtree(polygons)
    left, right = tree.query(polygons, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(
        shapely.intersection(np.asarray(polygons)[left[pairs]], np.asarray(polygons)[right[pairs]])
    )
    assert float(overlap.max()) < 1e-12
    lon, lat = union.centroid.x, union.centroid.y
    assert abs(lat - 34.3) < 0.1 and abs(lon - 108.7) < 0.1


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    files = ("grids.geojson", "devices.csv", "workers.csv", "stations.csv")
    a, b, c = (
        write_world(tmp_path / name, scale=0.1, seed=seed) for name, seed in (("a", 3), ("b", 3), ("c", 4))
    )
    for name in files:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes()
    assert (a.path / "devices.csv").read_bytes() != (c.path / "devices.csv").read_bytes()
    assert (a.path / "grids.geojson").read_bytes() != (c.path / "grids.geojson").read_bytes()


@pytest.mark.parametrize("scale", [0.001, 0.37, 2.0])
def test_counts_scale_linearly_with_at_least_one_of_each(tmp_path: Path, scale: float) -> None:
    summary = write_world(tmp_path / "w", scale=scale)
    assert summary.grids == max(1, round(1089 * scale))
    assert summary.devices["smoke"] == max(1, round(2861 * scale))
    assert summary.stations == max(1, round(76 * scale))
    registry = Registry.load(summary.path)
    assert registry.warnings == []
    assert len(registry) == summary.total_devices


def test_several_districts_side_by_side(tmp_path: Path) -> None:
    summary = write_world(tmp_path / "w", scale=0.05, districts=3)
    assert summary.districts == ("D01", "D02", "D03")
    registry = Registry.load(summary.path)
    assert registry.warnings == []
    assert registry.districts == ["D01", "D02", "D03"]
    assert (
        len(registry)
        == summary.total_devices
        == 3 * sum(max(1, round(n * 0.05)) for n in (2861, 2113, 430, 4064))
    )
    _, polygons, props = _grids(summary.path)
    union = shapely.union_all(polygons)
    assert abs(union.area - sum(p.area for p in polygons)) < 1e-9 * union.area  # type: ignore[attr-defined]
    assert {p["district"] for p in props} == {"D01", "D02", "D03"}
    for device in registry.devices():
        assert device.grid_id.startswith(device.district + "-")


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        write_world(tmp_path, scale=0)
    with pytest.raises(ValueError, match="districts"):
        write_world(tmp_path, districts=0)
