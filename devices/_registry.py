"""The registry (CONTRACT §3): grids, devices, workers and stations, loaded from one directory.

Devices are stored column-wise (numpy arrays indexed by a device *slot*) so that a province of
1,000,000 devices fits in a few hundred bytes per device and the rules engine can index its own
state arrays with the same slots. A reload keeps every known device on its slot, so state held
per slot survives SIGHUP.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import shape

from devices._all import KIND_CODE, KINDS
from devices._errors import RegistryError
from devices._ids import is_identifier

log = logging.getLogger(__name__)

UNASSIGNED = "_unassigned"
DEVICE_COLUMNS = ("device_id", "kind", "district", "site_id", "lat", "lon", "grid_id")
OVERRIDE_COLUMNS = tuple(dict.fromkeys(column for spec in KINDS for column in spec.overrides))
"""The optional per-device columns of devices.csv: every kind's overrides."""
WORKER_COLUMNS = ("worker_id", "name", "role")
STATION_COLUMNS = ("station_id", "name", "district", "lat", "lon")
ROLES = ("worker", "supervisor")
RETIRED = -1
"""The kind code of a slot whose device left the registry on a reload."""


@dataclass(frozen=True, slots=True)
class Grid:
    grid_id: str
    district: str
    name: str
    workers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Worker:
    worker_id: str
    name: str
    role: str

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


@dataclass(frozen=True, slots=True)
class Station:
    station_id: str
    name: str
    district: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Device:
    """A view of one registered device (built on demand; the registry itself is columnar)."""

    slot: int
    device_id: str
    kind: str
    district: str
    site_id: str
    grid_id: str
    lat: float
    lon: float
    overrides: dict[str, float] = field(default_factory=dict)


class _Problems:
    """Collects ``file:line: problem`` strings; the load fails if any were found."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.items.append(f"{where}: {problem}")

    def raise_if_any(self) -> None:
        if self.items:
            raise RegistryError(self.items)


class Registry:
    """An immutable, loaded registry. Build it with :meth:`load`."""

    def __init__(
        self,
        *,
        path: Path,
        grids: dict[str, Grid],
        workers: dict[str, Worker],
        stations: tuple[Station, ...],
        device_ids: list[str],
        kind_code: npt.NDArray[np.int8],
        district_idx: npt.NDArray[np.int32],
        districts: list[str],
        grid_idx: npt.NDArray[np.int32],
        grid_names: list[str],
        site_idx: npt.NDArray[np.int32],
        sites: list[str],
        lat: npt.NDArray[np.float64],
        lon: npt.NDArray[np.float64],
        overrides: dict[str, npt.NDArray[np.float32]],
        warnings: list[str],
    ) -> None:
        self.path = path
        self.grids = grids
        self.workers = workers
        self.stations = stations
        self.device_ids = device_ids
        self.kind_code = kind_code
        self.district_idx = district_idx
        self.districts = districts
        self.grid_idx = grid_idx
        self.grid_names = grid_names
        self.site_idx = site_idx
        self.sites = sites
        self.lat = lat
        self.lon = lon
        self.overrides = overrides
        self.warnings = warnings
        self.slot_of: dict[str, int] = {
            device_id: slot for slot, device_id in enumerate(device_ids) if kind_code[slot] != RETIRED
        }

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str, previous: Registry | None = None) -> Registry:
        """Load and validate the registry in ``path``; raise :class:`RegistryError` if wrong.

        With ``previous``, every device already known keeps its slot; devices that left take
        no messages but keep their slot retired, and new devices are appended.
        """
        root = Path(path)
        problems = _Problems()
        if not root.is_dir():
            raise RegistryError([f"{root}: registry directory not found"])
        workers = _load_workers(root / "workers.csv", problems)
        stations = _load_stations(root / "stations.csv", problems)
        grids, polygons = _load_grids(root / "grids.geojson", workers, problems)
        rows = _load_device_rows(root / "devices.csv", grids, problems)
        problems.raise_if_any()
        return cls._build(root, grids, polygons, workers, stations, rows, previous)

    @classmethod
    def _build(
        cls,
        root: Path,
        grids: dict[str, Grid],
        polygons: list[Any],
        workers: dict[str, Worker],
        stations: tuple[Station, ...],
        rows: list[_DeviceRow],
        previous: Registry | None,
    ) -> Registry:
        device_ids: list[str] = list(previous.device_ids) if previous else []
        slot_of = {device_id: slot for slot, device_id in enumerate(device_ids)}
        for row in rows:
            if row.device_id not in slot_of:
                slot_of[row.device_id] = len(device_ids)
                device_ids.append(row.device_id)
        n = len(device_ids)
        kind_code = np.full(n, RETIRED, dtype=np.int8)
        district_idx = np.zeros(n, dtype=np.int32)
        grid_idx = np.zeros(n, dtype=np.int32)
        site_idx = np.zeros(n, dtype=np.int32)
        lat = np.zeros(n, dtype=np.float64)
        lon = np.zeros(n, dtype=np.float64)
        overrides = {name: np.full(n, np.nan, dtype=np.float32) for name in OVERRIDE_COLUMNS}

        grid_names = [UNASSIGNED, *sorted(grids)]
        grid_index = {name: i for i, name in enumerate(grid_names)}
        districts = sorted({g.district for g in grids.values()} | {r.district for r in rows})
        district_index = {name: i for i, name in enumerate(districts)}
        sites: list[str] = []
        site_index: dict[str, int] = {}

        slots = np.fromiter((slot_of[r.device_id] for r in rows), dtype=np.int64, count=len(rows))
        for row, slot in zip(rows, slots.tolist(), strict=True):
            kind_code[slot] = KIND_CODE[row.kind]
            district_idx[slot] = district_index[row.district]
            if row.site_id not in site_index:
                site_index[row.site_id] = len(sites)
                sites.append(row.site_id)
            site_idx[slot] = site_index[row.site_id]
            lat[slot] = row.lat
            lon[slot] = row.lon
            grid_idx[slot] = grid_index[row.grid_id] if row.grid_id else -1
            for name, value in row.overrides.items():
                overrides[name][slot] = value

        warnings: list[str] = []
        unplaced = slots[grid_idx[slots] == -1]
        if unplaced.size:
            _assign_grids(unplaced, grid_idx, district_idx, lat, lon, grids, grid_names, polygons, districts)
            for slot in unplaced[grid_idx[unplaced] == 0].tolist():
                message = f"devices.csv: device {device_ids[slot]} lies outside every grid: grid {UNASSIGNED}"
                warnings.append(message)
        for message in warnings[:20]:
            log.warning("%s", message)
        if len(warnings) > 20:
            log.warning("%d more devices lie outside every grid", len(warnings) - 20)
        return cls(
            path=root,
            grids=grids,
            workers=workers,
            stations=stations,
            device_ids=device_ids,
            kind_code=kind_code,
            district_idx=district_idx,
            districts=districts,
            grid_idx=grid_idx,
            grid_names=grid_names,
            site_idx=site_idx,
            sites=sites,
            lat=lat,
            lon=lon,
            overrides=overrides,
            warnings=warnings,
        )

    # -- queries -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.slot_of)

    @property
    def slots(self) -> int:
        """Number of slots (active and retired): the length of per-device state arrays."""
        return len(self.device_ids)

    def kind_of(self, slot: int) -> str:
        return KINDS[int(self.kind_code[slot])].name

    def grid_of(self, slot: int) -> str:
        return self.grid_names[int(self.grid_idx[slot])]

    def district_of(self, slot: int) -> str:
        return self.districts[int(self.district_idx[slot])]

    def site_of(self, slot: int) -> str:
        return self.sites[int(self.site_idx[slot])]

    def override(self, name: str, slot: int) -> float | None:
        value = float(self.overrides[name][slot])
        return None if math.isnan(value) else value

    def device(self, device_id: str) -> Device | None:
        slot = self.slot_of.get(device_id)
        if slot is None:
            return None
        overrides = {name: v for name in OVERRIDE_COLUMNS if (v := self.override(name, slot)) is not None}
        return Device(
            slot=slot,
            device_id=device_id,
            kind=self.kind_of(slot),
            district=self.district_of(slot),
            site_id=self.site_of(slot),
            grid_id=self.grid_of(slot),
            lat=float(self.lat[slot]),
            lon=float(self.lon[slot]),
            overrides=overrides,
        )

    def devices(self) -> Iterator[Device]:
        for device_id in self.slot_of:
            device = self.device(device_id)
            assert device is not None
            yield device

    def stations_of(self, district: str) -> tuple[Station, ...]:
        return tuple(s for s in self.stations if s.district == district)


# -- file loaders ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DeviceRow:
    device_id: str
    kind: str
    district: str
    site_id: str
    lat: float
    lon: float
    grid_id: str
    overrides: dict[str, float]


def _csv_rows(
    path: Path, required: Sequence[str], optional: Sequence[str], problems: _Problems
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` of a CSV file whose header holds ``required`` then any ``optional``."""
    name = path.name
    if not path.is_file():
        problems.add(name, "file missing")
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header[: len(required)]) != tuple(required):
            problems.add(
                f"{name}:1", f"header must start with {','.join(required)}; found {','.join(header)}"
            )
            return
        extra = header[len(required) :]
        unknown = [h for h in extra if h not in optional]
        if unknown:
            problems.add(f"{name}:1", f"unknown column(s) {', '.join(unknown)}")
            return
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                problems.add(f"{name}:{line}", f"expected {len(header)} columns, found {len(row)}")
                continue
            yield line, {key: value.strip() for key, value in zip(header, row, strict=True)}


def _check_id(value: str, what: str, where: str, problems: _Problems) -> bool:
    if is_identifier(value):
        return True
    problems.add(where, f"invalid {what} {value!r} (letters, digits, _ . -; at most 64)")
    return False


def _coordinate(
    value: str, what: str, low: float, high: float, where: str, problems: _Problems
) -> float | None:
    try:
        number = float(value)
    except ValueError:
        problems.add(where, f"{what} {value!r} is not a number")
        return None
    if not (low <= number <= high):
        problems.add(where, f"{what} {number} outside [{low}, {high}]")
        return None
    return number


def _load_workers(path: Path, problems: _Problems) -> dict[str, Worker]:
    workers: dict[str, Worker] = {}
    for line, row in _csv_rows(path, WORKER_COLUMNS, (), problems):
        where = f"{path.name}:{line}"
        worker_id = row["worker_id"]
        if not _check_id(worker_id, "worker_id", where, problems):
            continue
        if worker_id in workers:
            problems.add(where, f"duplicate worker_id {worker_id}")
            continue
        if row["role"] not in ROLES:
            problems.add(where, f"role {row['role']!r} must be one of {', '.join(ROLES)}")
            continue
        workers[worker_id] = Worker(worker_id, row["name"], row["role"])
    return workers


def _load_stations(path: Path, problems: _Problems) -> tuple[Station, ...]:
    stations: dict[str, Station] = {}
    for line, row in _csv_rows(path, STATION_COLUMNS, (), problems):
        where = f"{path.name}:{line}"
        ok = _check_id(row["station_id"], "station_id", where, problems)
        ok = _check_id(row["district"], "district", where, problems) and ok
        lat = _coordinate(row["lat"], "lat", -90, 90, where, problems)
        lon = _coordinate(row["lon"], "lon", -180, 180, where, problems)
        if row["station_id"] in stations:
            problems.add(where, f"duplicate station_id {row['station_id']}")
            continue
        if ok and lat is not None and lon is not None:
            stations[row["station_id"]] = Station(row["station_id"], row["name"], row["district"], lat, lon)
    return tuple(stations.values())


def _load_grids(
    path: Path, workers: dict[str, Worker], problems: _Problems
) -> tuple[dict[str, Grid], list[Any]]:
    """Grids sorted by grid_id, and their polygons in the same order."""
    name = path.name
    if not path.is_file():
        problems.add(name, "file missing")
        return {}, []
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        problems.add(name, f"not valid JSON: {exc}")
        return {}, []
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        problems.add(name, "must be a GeoJSON FeatureCollection")
        return {}, []
    features = document.get("features")
    if not isinstance(features, list):
        problems.add(name, "FeatureCollection without a features list")
        return {}, []
    found: dict[str, tuple[Grid, Any]] = {}
    for number, feature in enumerate(features, start=1):
        where = f"{name}: feature {number}"
        parsed = _parse_grid(feature, workers, where, problems)
        if parsed is None:
            continue
        grid, polygon = parsed
        if grid.grid_id in found:
            problems.add(where, f"duplicate grid_id {grid.grid_id}")
            continue
        found[grid.grid_id] = (grid, polygon)
    ordered = sorted(found)
    return {gid: found[gid][0] for gid in ordered}, [found[gid][1] for gid in ordered]


def _parse_grid(
    feature: Any, workers: dict[str, Worker], where: str, problems: _Problems
) -> tuple[Grid, Any] | None:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        problems.add(where, "not a GeoJSON Feature")
        return None
    props = feature.get("properties") or {}
    geometry = feature.get("geometry") or {}
    grid_id, district = props.get("grid_id"), props.get("district")
    if not isinstance(grid_id, str) or not _check_id(grid_id, "grid_id", where, problems):
        if not isinstance(grid_id, str):
            problems.add(where, "properties.grid_id missing")
        return None
    where = f"{where} ({grid_id})"
    if not isinstance(district, str) or not _check_id(district, "district", where, problems):
        if not isinstance(district, str):
            problems.add(where, "properties.district missing")
        return None
    members = props.get("workers", [])
    if not isinstance(members, list) or not all(isinstance(w, str) for w in members):
        problems.add(where, "properties.workers must be a list of worker_id")
        return None
    unknown = [w for w in members if w not in workers]
    if unknown:
        problems.add(where, f"unknown worker(s) {', '.join(unknown[:5])} (not in workers.csv)")
        return None
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        problems.add(where, "geometry must be a Polygon or MultiPolygon")
        return None
    try:
        polygon = shape(geometry)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        problems.add(where, f"malformed geometry: {exc}")
        return None
    if polygon.is_empty or not polygon.is_valid:
        problems.add(where, f"invalid polygon: {shapely.is_valid_reason(polygon)}")
        return None
    name = props.get("name")
    return Grid(grid_id, district, name if isinstance(name, str) else grid_id, tuple(members)), polygon


def _load_device_rows(path: Path, grids: dict[str, Grid], problems: _Problems) -> list[_DeviceRow]:
    rows: list[_DeviceRow] = []
    seen: set[str] = set()
    kinds = {spec.name for spec in KINDS}
    for line, row in _csv_rows(path, DEVICE_COLUMNS, OVERRIDE_COLUMNS, problems):
        where = f"{path.name}:{line}"
        before = len(problems.items)
        device_id = row["device_id"]
        _check_id(device_id, "device_id", where, problems)
        if device_id in seen:
            problems.add(where, f"duplicate device_id {device_id}")
        seen.add(device_id)
        if row["kind"] not in kinds:
            problems.add(where, f"kind {row['kind']!r} must be one of {', '.join(sorted(kinds))}")
        _check_id(row["district"], "district", where, problems)
        _check_id(row["site_id"], "site_id", where, problems)
        lat = _coordinate(row["lat"], "lat", -90, 90, where, problems)
        lon = _coordinate(row["lon"], "lon", -180, 180, where, problems)
        grid_id = row["grid_id"]
        if grid_id:
            grid = grids.get(grid_id)
            if grid is None:
                problems.add(where, f"grid_id {grid_id} is not in grids.geojson")
            elif grid.district != row["district"]:
                problems.add(
                    where, f"grid {grid_id} belongs to district {grid.district}, not {row['district']}"
                )
        overrides: dict[str, float] = {}
        for name in OVERRIDE_COLUMNS:
            text = row.get(name, "")
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                problems.add(where, f"{name} {text!r} is not a number")
                continue
            if not math.isfinite(value) or value <= 0:
                problems.add(where, f"{name} must be a positive number, found {text}")
                continue
            overrides[name] = value
        low, high = overrides.get("min_pressure_mpa"), overrides.get("max_pressure_mpa")
        if low is not None and high is not None and low >= high:
            problems.add(where, f"min_pressure_mpa {low} must be below max_pressure_mpa {high}")
        if len(problems.items) == before and lat is not None and lon is not None:
            rows.append(
                _DeviceRow(
                    device_id, row["kind"], row["district"], row["site_id"], lat, lon, grid_id, overrides
                )
            )
    return rows


def _assign_grids(
    slots: npt.NDArray[np.int64],
    grid_idx: npt.NDArray[np.int32],
    district_idx: npt.NDArray[np.int32],
    lat: npt.NDArray[np.float64],
    lon: npt.NDArray[np.float64],
    grids: dict[str, Grid],
    grid_names: list[str],
    polygons: list[Any],
    districts: list[str],
) -> None:
    """Point-in-polygon for devices without a grid_id, within their own district.

    A point on a shared border intersects several grids; the lowest grid_id wins, so the
    answer is the same on every load. Points outside every grid get index 0 (``_unassigned``).
    """
    grid_idx[slots] = 0
    if not polygons:
        return
    tree = shapely.STRtree(polygons)
    points = shapely.points(lon[slots], lat[slots])
    point_pos, tree_pos = tree.query(points, predicate="intersects")
    district_index = {name: i for i, name in enumerate(districts)}
    grid_district = np.array([district_index[g.district] for g in grids.values()], dtype=np.int32)
    same = grid_district[tree_pos] == district_idx[slots[point_pos]]
    point_pos, tree_pos = point_pos[same], tree_pos[same]
    best = np.full(slots.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, point_pos, tree_pos)
    placed = best != np.iinfo(np.int64).max
    # tree position p is grids[p] (sorted by grid_id) and grid_names[p + 1] (after _unassigned)
    grid_idx[slots[placed]] = (best[placed] + 1).astype(np.int32)
