from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices import UNASSIGNED, Registry, RegistryError
from simulators import write_world
from tests.helpers import write_registry


def test_loads_and_assigns_grids_by_point_in_polygon(tmp_path: Path) -> None:
    registry = Registry.load(write_registry(tmp_path / "reg"))
    assert len(registry) == 12
    smoke = registry.device("S0000")
    assert smoke is not None
    assert (smoke.kind, smoke.district, smoke.site_id) == ("smoke", "D01", "S0")
    assert smoke.grid_id == "D01-G00"  # lon 108.702, lat 34.302 is in the south-west square
    far = registry.device("S0002")
    assert far is not None and far.grid_id == "D01-G02"  # lat 34.312 is in the north row
    assert registry.workers["SUP1"].is_supervisor
    assert [s.station_id for s in registry.stations_of("D01")] == ["D01-ST1", "D01-ST2"]


def test_point_on_shared_border_goes_to_lowest_grid(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "reg")
    with (root / "devices.csv").open("a") as handle:
        # the corner shared by all four grids, in the exact floats of the polygons
        handle.write(f"B1,smoke,D01,S9,{34.3 + 0.01!r},{108.7 + 0.01!r},\n")
    for _ in range(3):
        registry = Registry.load(root)
        assert registry.device("B1").grid_id == "D01-G00"  # type: ignore[union-attr]


def test_device_outside_every_grid_is_unassigned_with_a_warning(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "reg")
    with (root / "devices.csv").open("a") as handle:
        handle.write("X1,water,D01,S9,35.5,109.9,\n")
    registry = Registry.load(root)
    assert registry.device("X1").grid_id == UNASSIGNED  # type: ignore[union-attr]
    assert any("X1" in w for w in registry.warnings)


@pytest.mark.parametrize(
    ("file", "mutate", "expected"),
    [
        (
            "devices.csv",
            lambda t: t + "S0000,smoke,D01,S0,34.3,108.7,\n",
            "devices.csv:14: duplicate device_id S0000",
        ),
        (
            "devices.csv",
            lambda t: t + "bad id,smoke,D01,S0,34.3,108.7,\n",
            "devices.csv:14: invalid device_id",
        ),
        ("devices.csv", lambda t: t + "Z1,laser,D01,S0,34.3,108.7,\n", "devices.csv:14: kind 'laser'"),
        ("devices.csv", lambda t: t + "Z1,smoke,D01,S0,north,108.7,\n", "devices.csv:14: lat 'north'"),
        (
            "devices.csv",
            lambda t: t + "Z1,smoke,D01,S0,34.3,108.7,NOPE\n",
            "grid_id NOPE is not in grids.geojson",
        ),
        ("devices.csv", lambda t: t + "Z1,smoke,D01,S0\n", "devices.csv:14: expected 7 columns"),
        ("devices.csv", lambda t: t.replace("device_id,kind", "id,kind"), "devices.csv:1: header must start"),
        ("workers.csv", lambda t: t + "W9,Nine,boss\n", "workers.csv:7: role 'boss'"),
        ("grids.geojson", lambda t: t[:-5], "grids.geojson: not valid JSON"),
        ("grids.geojson", lambda t: t.replace('"W1"', '"W77"'), "unknown worker(s) W77"),
        ("stations.csv", lambda t: t + "ST9,Nine,D01,95,108\n", "stations.csv:4: lat 95.0 outside"),
    ],
)
def test_broken_registry_is_refused_naming_file_line_and_problem(
    tmp_path: Path, file: str, mutate: object, expected: str
) -> None:
    root = write_registry(tmp_path / "reg")
    path = root / file
    path.write_text(mutate(path.read_text()))  # type: ignore[operator]
    with pytest.raises(RegistryError) as info:
        Registry.load(root)
    assert expected in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "reg")
    (root / "stations.csv").unlink()
    with pytest.raises(RegistryError, match=r"stations\.csv: file missing"):
        Registry.load(root)


def test_invalid_polygon_is_refused(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "reg")
    doc = json.loads((root / "grids.geojson").read_text())
    doc["features"][0]["geometry"]["coordinates"] = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]  # bow-tie
    (root / "grids.geojson").write_text(json.dumps(doc))
    with pytest.raises(RegistryError, match="invalid polygon"):
        Registry.load(root)


def test_reload_keeps_slots_and_retires_removed_devices(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "reg")
    first = Registry.load(root)
    lines = (root / "devices.csv").read_text().splitlines()
    kept = [line for line in lines if not line.startswith("S0001,")]
    (root / "devices.csv").write_text("\n".join([*kept, "N1,smoke,D01,S0,34.302,108.702,"]) + "\n")
    second = Registry.load(root, previous=first)
    assert second.device("S0001") is None
    for device_id in ("S0000", "E0002", "P0001"):
        assert second.slot_of[device_id] == first.slot_of[device_id]
    assert second.slot_of["N1"] == first.slots
    assert second.slots == first.slots + 1


def test_overrides_are_read_and_validated(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "reg")
    text = (root / "devices.csv").read_text().splitlines()
    text[0] += ",min_pressure_mpa,temp_limit_c"
    text[1:] = [line + ",," for line in text[1:]]
    text.append("W9,water,D01,S0,34.302,108.702,,0.2,")
    (root / "devices.csv").write_text("\n".join(text) + "\n")
    registry = Registry.load(root)
    assert registry.device("W9").overrides == {"min_pressure_mpa": pytest.approx(0.2)}  # type: ignore[union-attr]
    assert registry.device("W0000").overrides == {}  # type: ignore[union-attr]
    text.append("W10,water,D01,S0,34.302,108.702,,-1,")
    (root / "devices.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(RegistryError, match="min_pressure_mpa must be a positive number"):
        Registry.load(root)


def test_shared_copy_of_registry_loads(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "reg")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert Registry.load(copy).device_ids == Registry.load(root).device_ids


def _generated_world(root: Path) -> Path:
    """A generated world, with overrides on every 4th device and no grid_id on every 5th."""
    write_world(root, scale=0.2, seed=3)
    lines = (root / "devices.csv").read_text().splitlines()
    rows = [lines[0] + ",heartbeat_s,min_pressure_mpa,max_pressure_mpa"]
    for i, line in enumerate(lines[1:]):
        kept = line[: line.rindex(",") + 1] if i % 5 == 0 else line  # no grid_id: point in polygon
        rows.append(kept + (f",{60 + i % 3},0.{i % 7 + 1},1.5" if i % 4 == 0 else ",,,"))
    (root / "devices.csv").write_text("\n".join(rows) + "\n")
    return root


def _digest(registry: Registry) -> str:
    digest = hashlib.sha256("\n".join([*registry.device_ids, "", *registry.sites]).encode())
    columns: list[np.ndarray[Any, Any]] = [registry.kind_code, registry.grid_idx, registry.district_idx]
    columns += [registry.site_idx, registry.lat, registry.lon, *registry.overrides.values()]
    for array in columns:
        digest.update(array.tobytes())
    return digest.hexdigest()


def test_generated_world_loads_as_before_the_bulk_loader(tmp_path: Path) -> None:
    root = _generated_world(tmp_path / "world")
    registry = Registry.load(root)
    with (root / "devices.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert registry.device_ids == [row["device_id"] for row in rows]
    assert registry.sites == list(dict.fromkeys(row["site_id"] for row in rows))
    assert registry.lat.tolist() == [float(row["lat"]) for row in rows]
    assert registry.lon.tolist() == [float(row["lon"]) for row in rows]
    assert [registry.kind_of(slot) for slot in range(registry.slots)] == [row["kind"] for row in rows]
    placed = [(slot, row["grid_id"]) for slot, row in enumerate(rows) if row["grid_id"]]
    assert [registry.grid_of(slot) for slot, _ in placed] == [grid for _, grid in placed]
    expected = np.array([float(row["min_pressure_mpa"] or "nan") for row in rows], dtype=np.float32)
    assert np.array_equal(registry.overrides["min_pressure_mpa"], expected, equal_nan=True)
    # every array, as the per-row loader (commit 3f58632) produced it on this world
    assert _digest(registry) == "c24338fc8a1c70ab9d83e4cd03fd32d481848059b40e38a60d5f9670eb33ee10"
    assert registry.warnings == []


def test_devices_problems_keep_their_order_by_line_then_column(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "reg")
    path = root / "devices.csv"
    lines = path.read_text().splitlines()
    lines[0] += ",min_pressure_mpa,max_pressure_mpa"
    lines[1:] = [line + ",," for line in lines[1:]]
    lines[3] = "bad id,laser,D 1,S 0,north,200,D01-G00,x,-1"
    lines[5] = "S0000,smoke,D01"
    lines[6] = "S0000,smoke,D02,S0,34.3,108.7,D01-G01,0.5,0.5"
    lines.append("Z1,smoke,D01,S0,91,108.7,NOPE,nan,")
    lines += ["", "Z2"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RegistryError) as info:
        Registry.load(root)
    assert info.value.problems == [
        "devices.csv:4: invalid device_id 'bad id' (letters, digits, _ . -; at most 64)",
        "devices.csv:4: kind 'laser' must be one of electrical, patrol, smoke, water",
        "devices.csv:4: invalid district 'D 1' (letters, digits, _ . -; at most 64)",
        "devices.csv:4: invalid site_id 'S 0' (letters, digits, _ . -; at most 64)",
        "devices.csv:4: lat 'north' is not a number",
        "devices.csv:4: lon 200.0 outside [-180, 180]",
        "devices.csv:4: grid D01-G00 belongs to district D01, not D 1",
        "devices.csv:4: min_pressure_mpa 'x' is not a number",
        "devices.csv:4: max_pressure_mpa must be a positive number, found -1",
        "devices.csv:6: expected 9 columns, found 3",
        "devices.csv:7: duplicate device_id S0000",
        "devices.csv:7: grid D01-G01 belongs to district D01, not D02",
        "devices.csv:7: min_pressure_mpa 0.5 must be below max_pressure_mpa 0.5",
        "devices.csv:14: lat 91.0 outside [-90, 90]",
        "devices.csv:14: grid_id NOPE is not in grids.geojson",
        "devices.csv:14: min_pressure_mpa must be a positive number, found nan",
        "devices.csv:16: expected 9 columns, found 1",
    ]
