"""The registry (CONTRACT §3): grids, devices, workers and stations, loaded from one directory.

Devices are stored column-wise (numpy arrays indexed by a device *slot*) so that a province of
1,000,000 devices fits in a few hundred bytes per device and the rules engine can index its own
state arrays with the same slots. A reload keeps every known device on its slot, so state held
per slot survives SIGHUP.
"""

from __future__ import annotations

import csv
import gc
import json
import logging
import math
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import shape

from devices._all import KIND_CODE, KINDS
from devices._errors import RegistryError
from devices._ids import invalid_identifiers, is_identifier

log = logging.getLogger(__name__)
_Int = TypeVar("_Int", np.int8, np.int32, np.int64)

UNASSIGNED = "_unassigned"
DEVICE_COLUMNS = ("device_id", "kind", "district", "site_id", "lat", "lon", "grid_id")
OVERRIDE_COLUMNS = tuple(dict.fromkeys(column for spec in KINDS for column in spec.overrides))
"""The optional per-device columns of devices.csv: every kind's overrides."""
WORKER_COLUMNS = ("worker_id", "name", "role")
STATION_COLUMNS = ("station_id", "name", "district", "lat", "lon")
ROLES = ("worker", "supervisor")
RETIRED = -1
"""The kind code of a slot whose device left the registry on a reload."""


REGISTRY_FILES = ("workers.csv", "stations.csv", "grids.geojson", "devices.csv")
"""The files of a registry directory (CONTRACT §3)."""


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
        active = (kind_code != RETIRED).tolist()
        self.slot_of: dict[str, int] = {
            device_id: slot for slot, device_id in enumerate(device_ids) if active[slot]
        }

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str, previous: Registry | None = None) -> Registry:
        """Load and validate the registry in ``path``; raise :class:`RegistryError` if wrong.

        With ``previous``, every device already known keeps its slot; devices that left take
        no messages but keep their slot retired, and new devices are appended.
        """
        root = Path(path)
        if not root.is_dir():
            raise RegistryError([f"{root}: registry directory not found"])
        with collector_paused():
            return cls._load(root, previous)

    @classmethod
    def _load(cls, root: Path, previous: Registry | None) -> Registry:
        problems = _Problems()
        workers = _load_workers(root / "workers.csv", problems)
        stations = _load_stations(root / "stations.csv", problems)
        grids, polygons = _load_grids(root / "grids.geojson", workers, problems)
        devices = _load_devices(root / "devices.csv", grids, problems)
        problems.raise_if_any()
        return cls._build(root, grids, polygons, workers, stations, devices, previous)

    @classmethod
    def _build(
        cls,
        root: Path,
        grids: dict[str, Grid],
        polygons: list[Any],
        workers: dict[str, Worker],
        stations: tuple[Station, ...],
        devices: _DeviceColumns,
        previous: Registry | None,
    ) -> Registry:
        device_ids: list[str] = list(previous.device_ids) if previous else []
        slot_of = {device_id: slot for slot, device_id in enumerate(device_ids)}
        new = [device_id for device_id in devices.device_id if device_id not in slot_of]
        slot_of.update(zip(new, range(len(device_ids), len(device_ids) + len(new)), strict=True))
        device_ids.extend(new)
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
        districts = sorted({g.district for g in grids.values()} | set(devices.district))
        district_index = {name: i for i, name in enumerate(districts)}
        site_index = {site: i for i, site in enumerate(dict.fromkeys(devices.site_id))}
        sites = list(site_index)

        slots = _indices(devices.device_id, slot_of, np.int64)
        kind_code[slots] = _indices(devices.kind, KIND_CODE, np.int8)
        district_idx[slots] = _indices(devices.district, district_index, np.int32)
        site_idx[slots] = _indices(devices.site_id, site_index, np.int32)
        lat[slots] = devices.lat
        lon[slots] = devices.lon
        grid_idx[slots] = _indices(devices.grid_id, {**grid_index, "": -1}, np.int32)
        for name, values in devices.overrides.items():
            overrides[name][slots] = values

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


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a load allocates millions of objects and no cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- file loaders ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DeviceColumns:
    """devices.csv column-wise, one entry per device in file order."""

    device_id: list[str]
    kind: list[str]
    district: list[str]
    site_id: list[str]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    grid_id: list[str]
    overrides: dict[str, npt.NDArray[np.float64]]
    """The override columns the file has; NaN where a device has no value."""


@dataclass(frozen=True, slots=True)
class _Table:
    """The rows of a CSV file as wide as its header, and the problems of the other rows."""

    header: list[str]
    lines: list[int]
    """The line of each row (where it ends)."""
    values: list[str]
    """The rows' values one after the other (no list per row: a million rows take less memory)."""
    misfits: list[tuple[int, str]]
    """``(line, problem)`` of each row of another width."""

    def row(self, index: int) -> list[str]:
        width = len(self.header)
        return self.values[index * width : (index + 1) * width]

    def columns(self) -> dict[str, list[str]]:
        """Each column's stripped values, by header name."""
        width = len(self.header)
        return {key: list(map(str.strip, self.values[i::width])) for i, key in enumerate(self.header)}


def _read_table(
    path: Path, required: Sequence[str], optional: Sequence[str], problems: _Problems
) -> _Table | None:
    """Read a CSV file whose header holds ``required`` then any ``optional``; None if unusable."""
    name = path.name
    if not path.is_file():
        problems.add(name, "file missing")
        return None
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header[: len(required)]) != tuple(required):
            problems.add(
                f"{name}:1", f"header must start with {','.join(required)}; found {','.join(header)}"
            )
            return None
        unknown = [h for h in header[len(required) :] if h not in optional]
        if unknown:
            problems.add(f"{name}:1", f"unknown column(s) {', '.join(unknown)}")
            return None
        width = len(header)
        table = _Table(header, [], [], [])
        for row in reader:
            if len(row) == width and (width > 1 or row[0].strip()):
                table.values.extend(row)
                table.lines.append(reader.line_num)
            elif row and not (len(row) == 1 and not row[0].strip()):
                table.misfits.append((reader.line_num, f"expected {width} columns, found {len(row)}"))
    return table


def _rows_in_order(
    table: _Table, name: str, indices: Iterable[int], problems: _Problems
) -> Iterator[tuple[int, int]]:
    """Yield ``(line, index)`` of the rows at ``indices``, reporting the misfit rows in line order."""
    misfits = iter(table.misfits)
    misfit = next(misfits, None)
    for index in indices:
        line = table.lines[index]
        while misfit is not None and misfit[0] < line:
            problems.add(f"{name}:{misfit[0]}", misfit[1])
            misfit = next(misfits, None)
        yield line, index
    while misfit is not None:
        problems.add(f"{name}:{misfit[0]}", misfit[1])
        misfit = next(misfits, None)


def _csv_rows(
    path: Path, required: Sequence[str], optional: Sequence[str], problems: _Problems
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` of a CSV file whose header holds ``required`` then any ``optional``."""
    table = _read_table(path, required, optional, problems)
    if table is None:
        return
    for line, index in _rows_in_order(table, path.name, range(len(table.lines)), problems):
        yield line, {key: value.strip() for key, value in zip(table.header, table.row(index), strict=True)}


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
    checked: list[tuple[_Problems, tuple[Grid, Any, str] | None]] = []
    for number, feature in enumerate(features, start=1):
        found_here = _Problems()
        checked.append((found_here, _parse_grid(feature, workers, f"{name}: feature {number}", found_here)))
    polygons = iter(_polygons([parsed[1] for _, parsed in checked if parsed is not None]))
    found: dict[str, tuple[Grid, Any]] = {}
    for number, (found_here, parsed) in enumerate(checked, start=1):
        problems.items.extend(found_here.items)
        if parsed is None:
            continue
        grid, polygon = parsed[0], next(polygons)
        if isinstance(polygon, str):
            problems.add(parsed[2], polygon)
        elif grid.grid_id in found:
            problems.add(f"{name}: feature {number}", f"duplicate grid_id {grid.grid_id}")
        else:
            found[grid.grid_id] = (grid, polygon)
    ordered = sorted(found)
    return {gid: found[gid][0] for gid in ordered}, [found[gid][1] for gid in ordered]


def _parse_grid(
    feature: Any, workers: dict[str, Worker], where: str, problems: _Problems
) -> tuple[Grid, dict[str, Any], str] | None:
    """The grid of a feature, its geometry (a Polygon or MultiPolygon) and where to report it."""
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
    name = props.get("name")
    return (
        Grid(grid_id, district, name if isinstance(name, str) else grid_id, tuple(members)),
        geometry,
        where,
    )


def _polygons(geometries: list[dict[str, Any]]) -> list[Any]:
    """The shapely polygon of each geometry, or the problem (a ``str``) that keeps it from being one.

    Plain 2-D Polygons are built in bulk; any other geometry goes through ``shape`` alone.
    """
    rings_of = [_plain_rings(geometry) for geometry in geometries]
    polygons: list[Any] = [None] * len(geometries)
    plain = [i for i, rings in enumerate(rings_of) if rings is not None]
    for i, polygon in zip(plain, _bulk_polygons([rings_of[i] or [] for i in plain]), strict=True):
        polygons[i] = polygon
    for i, geometry in enumerate(geometries):
        if rings_of[i] is None:
            try:
                polygons[i] = shape(geometry)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                polygons[i] = f"malformed geometry: {exc}"
    built = [i for i, polygon in enumerate(polygons) if not isinstance(polygon, str)]
    array = np.array([polygons[i] for i in built], dtype=object)
    for i in np.array(built, dtype=np.int64)[shapely.is_empty(array) | ~shapely.is_valid(array)].tolist():
        polygons[i] = f"invalid polygon: {shapely.is_valid_reason(polygons[i])}"
    return polygons


def _plain_rings(geometry: dict[str, Any]) -> list[npt.NDArray[np.float64]] | None:
    """The rings of a Polygon of 2-D numeric rings of at least 4 points; None for anything else."""
    coordinates = geometry.get("coordinates")
    if geometry.get("type") != "Polygon" or not isinstance(coordinates, list) or not coordinates:
        return None
    rings = []
    for ring in coordinates:
        try:
            array = np.array(ring)
        except ValueError:
            return None
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 4 or array.dtype.kind not in "iuf":
            return None
        rings.append(array.astype(np.float64))
    return rings


def _bulk_polygons(rings_of: list[list[npt.NDArray[np.float64]]]) -> list[Any]:
    """One polygon per entry: its first ring the shell, the others holes."""
    if not rings_of:
        return []
    rings = [ring for polygon in rings_of for ring in polygon]
    ring_ids = np.repeat(np.arange(len(rings)), [len(ring) for ring in rings])
    linear = shapely.linearrings(np.concatenate(rings), indices=ring_ids)
    polygon_ids = np.repeat(np.arange(len(rings_of)), [len(polygon) for polygon in rings_of])
    return list(shapely.polygons(linear, indices=polygon_ids))


def _load_devices(path: Path, grids: dict[str, Grid], problems: _Problems) -> _DeviceColumns:
    """devices.csv column-wise; only rows that fail a bulk check are checked one by one."""
    table = _read_table(path, DEVICE_COLUMNS, OVERRIDE_COLUMNS, problems)
    columns = table.columns() if table else {key: [] for key in DEVICE_COLUMNS}
    if table:
        table.values.clear()  # they are in the columns now: free them before the arrays
    devices = _DeviceColumns(
        device_id=columns["device_id"],
        kind=columns["kind"],
        district=columns["district"],
        site_id=columns["site_id"],
        lat=_floats(columns["lat"]),
        lon=_floats(columns["lon"]),
        grid_id=columns["grid_id"],
        overrides={name: _floats(columns[name]) for name in OVERRIDE_COLUMNS if name in columns},
    )
    if table is None:
        return devices
    repeated = _repeated(devices.device_id)
    suspects = np.flatnonzero(repeated | _suspects(devices, columns, grids)).tolist()
    before = len(problems.items)
    for line, index in _rows_in_order(table, path.name, suspects, problems):
        row = {key: values[index] for key, values in columns.items()}
        _check_device_row(row, bool(repeated[index]), f"{path.name}:{line}", grids, problems)
    return devices if len(problems.items) == before else _DeviceColumns([], [], [], [], *_NO_FLOATS, [], {})


_NO_FLOATS = (np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.float64))


def _suspects(
    devices: _DeviceColumns, columns: dict[str, list[str]], grids: dict[str, Grid]
) -> npt.NDArray[np.bool_]:
    """Rows that may fail a check of :func:`_check_device_row`: every row that does is among them."""
    bad = _rows_with(devices.kind, set(devices.kind) - KIND_CODE.keys())
    for ids in (devices.device_id, devices.district, devices.site_id):
        bad |= _rows_with(ids, invalid_identifiers(ids))
    bad |= ~((devices.lat >= -90) & (devices.lat <= 90)) | ~((devices.lon >= -180) & (devices.lon <= 180))
    pairs = list(zip(devices.grid_id, devices.district, strict=True))
    wrong = {(g, d) for g, d in set(pairs) if g and (g not in grids or grids[g].district != d)}
    bad |= _rows_with(pairs, wrong)
    for name, values in devices.overrides.items():
        given = np.fromiter(map(bool, columns[name]), dtype=np.bool_, count=len(values))
        bad |= given & ~(np.isfinite(values) & (values > 0))
    low, high = devices.overrides.get("min_pressure_mpa"), devices.overrides.get("max_pressure_mpa")
    if low is not None and high is not None:
        bad |= low >= high
    return bad


def _check_device_row(
    row: dict[str, str], repeated: bool, where: str, grids: dict[str, Grid], problems: _Problems
) -> None:
    """Report every problem of one devices.csv row, in the order of its columns."""
    device_id = row["device_id"]
    _check_id(device_id, "device_id", where, problems)
    if repeated:
        problems.add(where, f"duplicate device_id {device_id}")
    if row["kind"] not in KIND_CODE:
        problems.add(where, f"kind {row['kind']!r} must be one of {', '.join(sorted(KIND_CODE))}")
    _check_id(row["district"], "district", where, problems)
    _check_id(row["site_id"], "site_id", where, problems)
    _coordinate(row["lat"], "lat", -90, 90, where, problems)
    _coordinate(row["lon"], "lon", -180, 180, where, problems)
    grid_id = row["grid_id"]
    if grid_id:
        grid = grids.get(grid_id)
        if grid is None:
            problems.add(where, f"grid_id {grid_id} is not in grids.geojson")
        elif grid.district != row["district"]:
            problems.add(where, f"grid {grid_id} belongs to district {grid.district}, not {row['district']}")
    _check_overrides(row, where, problems)


def _check_overrides(row: dict[str, str], where: str, problems: _Problems) -> None:
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


def _floats(texts: list[str]) -> npt.NDArray[np.float64]:
    """Each text as a float; NaN where it is empty or not a number."""
    try:
        return np.fromiter(map(float, texts), dtype=np.float64, count=len(texts))
    except ValueError:
        return np.fromiter(map(_float_or_nan, texts), dtype=np.float64, count=len(texts))


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _repeated(values: list[str]) -> npt.NDArray[np.bool_]:
    """Where a value already appeared in an earlier row."""
    if len(set(values)) == len(values):
        return np.zeros(len(values), dtype=np.bool_)
    seen: set[str] = set()
    flags: list[bool] = []
    for value in values:
        flags.append(value in seen)
        seen.add(value)
    return np.array(flags, dtype=np.bool_)


def _rows_with(values: Sequence[Hashable], wanted: AbstractSet[Hashable]) -> npt.NDArray[np.bool_]:
    """Where ``values`` holds one of ``wanted``."""
    if not wanted:
        return np.zeros(len(values), dtype=np.bool_)
    return np.fromiter(map(wanted.__contains__, values), dtype=np.bool_, count=len(values))


def _indices(values: list[str], index: Mapping[str, int], dtype: type[_Int]) -> npt.NDArray[_Int]:
    """``index[value]`` of each value, as an array."""
    return np.fromiter(map(index.__getitem__, values), dtype=dtype, count=len(values))


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
