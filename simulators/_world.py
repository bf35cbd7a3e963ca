"""The world generator: a registry (CONTRACT §3) of the reference district (§1), scaled.

Geometry: each district is a box around 34.3° N, 108.7° E cut into a jittered lattice of
quadrilateral grids. Neighbouring grids share the very same vertex floats, so the grids tile the
box without gaps or overlaps; vertices on the district border only move along the border. When
the grid count is not a product of two integers, the top row holds fewer, wider grids whose
bottom edges carry every vertex of the row below. Several districts are laid out side by side on
a larger lattice of boxes (shared borders again use the same floats).

Everything is drawn from ``numpy.random.default_rng([seed, district, stream])`` and written with
fixed formatting, so a seed always gives the same bytes. All per-device work is vectorised: a
province (≈100 districts, ≈1,000,000 devices) takes seconds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import shapely

# The reference district (CONTRACT §1).
REFERENCE: Mapping[str, int] = {
    "grids": 1089,
    "workers": 860,
    "smoke": 2861,
    "electrical": 2113,
    "water": 430,
    "patrol": 4064,
    "stations": 76,
}
DEVICE_KINDS = ("smoke", "electrical", "water", "patrol")
KIND_PREFIX: Mapping[str, str] = {"smoke": "SD", "electrical": "EM", "water": "WP", "patrol": "PT"}

ORIGIN_LON = 108.62
ORIGIN_LAT = 34.24
CELL_M = 420.0
"""Side of one basic grid in metres (300-500 households at new-district density)."""
M_PER_DEG_LAT = 111_132.0
JITTER = 0.10
"""Vertex jitter as a fraction of the cell side (keeps every quadrilateral convex)."""
SITE_MARGIN = 0.2
"""Sites sit in the inner part of their cell, in bilinear cell coordinates [margin, 1 - margin]."""
DEVICE_SPREAD_M = 8.0
SUPERVISOR_SHARE = 0.02
HELPER_SHARE = 0.08
"""Share of grids that get a second (helper) worker besides their primary one."""
TOWNS = ("Fengdong", "Fengxi", "Qinhan", "Konggang", "Jinghe", "Weicheng", "Xianyang", "Huyi")
SURNAMES = (
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Zhao",
    "Huang",
    "Zhou",
    "Wu",
    "Xu",
    "Sun",
    "Hu",
    "Zhu",
    "Gao",
    "Lin",
    "He",
    "Guo",
    "Ma",
    "Luo",
)
GIVEN = (
    "Wei",
    "Fang",
    "Na",
    "Min",
    "Jing",
    "Li",
    "Qiang",
    "Lei",
    "Jun",
    "Yang",
    "Yong",
    "Yan",
    "Jie",
    "Tao",
    "Ming",
    "Chao",
    "Xiu",
    "Xia",
    "Ping",
    "Gang",
    "Hui",
    "Hong",
    "Bo",
    "Lan",
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class WorldSummary:
    """What :func:`write_world` wrote."""

    path: Path
    districts: tuple[str, ...]
    grids: int
    workers: int
    supervisors: int
    stations: int
    sites: int
    devices: Mapping[str, int]
    """Device count per kind."""

    @property
    def total_devices(self) -> int:
        return sum(self.devices.values())


def scaled(name: str, scale: float) -> int:
    """The count of ``name`` in one district at ``scale`` (linear, at least 1)."""
    return max(1, round(REFERENCE[name] * scale))


def district_name(index: int) -> str:
    return f"D{index + 1:02d}"


def _width(count: int, minimum: int) -> int:
    return max(minimum, len(str(count)))


@dataclass(slots=True)
class _Lattice:
    """The grid polygons of one district (in lon/lat) and each cell's four corners."""

    rings: list[list[list[float]]]
    corners: F64
    """(n_grids, 4, 2): bottom-left, bottom-right, top-right, top-left as (lon, lat)."""
    walk: I64
    """Grid indices in boustrophedon order (neighbours follow each other)."""


def _lattice(n: int, col0: int, row0: int, cols: int, rows: int, *, rng: np.random.Generator) -> _Lattice:
    dlat = CELL_M / M_PER_DEG_LAT
    dlon = CELL_M / (M_PER_DEG_LAT * math.cos(math.radians(ORIGIN_LAT)))
    r_idx, c_idx = np.meshgrid(np.arange(rows + 1), np.arange(cols + 1), indexing="ij")
    jx = rng.uniform(-JITTER, JITTER, size=r_idx.shape)
    jy = rng.uniform(-JITTER, JITTER, size=r_idx.shape)
    jx[:, 0] = jx[:, -1] = 0.0  # border vertices only slide along the border
    jy[0, :] = jy[-1, :] = 0.0
    # global column/row numbers, so that neighbouring districts compute identical border floats
    lon = np.round(ORIGIN_LON + ((col0 + c_idx) + jx) * dlon, 7)
    lat = np.round(ORIGIN_LAT + ((row0 + r_idx) + jy) * dlat, 7)

    def vertex(r: int, c: int) -> list[float]:
        return [float(lon[r, c]), float(lat[r, c])]

    rings: list[list[list[float]]] = []
    corners = np.zeros((n, 4, 2))
    walk: list[int] = []
    full_rows = rows - 1
    last = n - cols * full_rows
    for r in range(rows):
        if r < full_rows:
            spans = [(c, c + 1) for c in range(cols)]
        else:
            cuts = [round(j * cols / last) for j in range(last + 1)]
            spans = list(itertools.pairwise(cuts))
        row_ids = []
        for a, b in spans:
            index = len(rings)
            ring = [vertex(r, c) for c in range(a, b + 1)] + [vertex(r + 1, b), vertex(r + 1, a)]
            ring.append(ring[0])
            rings.append(ring)
            corners[index] = [vertex(r, a), vertex(r, b), vertex(r + 1, b), vertex(r + 1, a)]
            row_ids.append(index)
        walk.extend(row_ids if r % 2 == 0 else row_ids[::-1])
    return _Lattice(rings, corners, np.asarray(walk, dtype=np.int64))


def _bilinear(corners: F64, u: F64, v: F64) -> tuple[F64, F64]:
    """Points at cell coordinates (u, v) in [0,1]² of each row's quadrilateral ``corners``."""
    p00, p10, p11, p01 = corners[:, 0], corners[:, 1], corners[:, 2], corners[:, 3]
    w00 = ((1 - u) * (1 - v))[:, None]
    w10 = (u * (1 - v))[:, None]
    w11 = (u * v)[:, None]
    w01 = ((1 - u) * v)[:, None]
    p = w00 * p00 + w10 * p10 + w11 * p11 + w01 * p01
    return p[:, 0], p[:, 1]


@dataclass(slots=True)
class _District:
    name: str
    grid_ids: list[str]
    features: list[bytes]
    worker_rows: list[str]
    station_rows: list[str]
    device_rows: dict[str, list[str]]
    sites: int


def _assign_workers(
    n_grids: int, n_workers: int, walk: I64, rng: np.random.Generator
) -> tuple[list[list[int]], int]:
    """Worker indices of every grid (primary first) and the number of regular workers.

    Workers ``0..regular-1`` are grid workers, the rest supervisors. A worker holds a run of
    neighbouring grids (one or more); some grids get a helper; each supervisor covers a block.
    """
    supervisors = 0 if n_workers < 2 else max(1, round(n_workers * SUPERVISOR_SHARE))
    regular = n_workers - supervisors
    members: list[list[int]] = [[] for _ in range(n_grids)]
    owner = np.zeros(n_grids, dtype=np.int64)  # by walk position
    if regular >= n_grids:
        owner[:] = np.arange(n_grids)
        for w in range(n_grids, regular):  # more workers than grids: share grids
            members[int(walk[w % n_grids])].append(w)
    else:
        counts = np.ones(regular, dtype=np.int64)
        counts += np.bincount(rng.integers(0, regular, size=n_grids - regular), minlength=regular)
        owner = np.repeat(np.arange(regular), counts)
    for pos in range(n_grids):
        members[int(walk[pos])].insert(0, int(owner[pos]))
    helpers = rng.random(n_grids) < HELPER_SHARE
    for pos in np.flatnonzero(helpers).tolist():
        helper = int(owner[(pos + 1) % n_grids])
        grid = members[int(walk[pos])]
        if helper not in grid:
            grid.append(helper)
    for s in range(supervisors):
        lo, hi = s * n_grids // supervisors, (s + 1) * n_grids // supervisors
        for pos in range(lo, hi):
            members[int(walk[pos])].append(regular + s)
    return members, regular


def _district(index: int, col0: int, row0: int, scale: float, seed: int) -> _District:
    name = district_name(index)
    streams = [np.random.default_rng([seed, index, stream]) for stream in range(8)]
    n_grids = scaled("grids", scale)
    cols = math.ceil(math.sqrt(n_grids))
    rows = math.ceil(n_grids / cols)
    lattice = _lattice(n_grids, col0, row0, cols, rows, rng=streams[0])

    gw = _width(n_grids, 4)
    grid_ids = [f"{name}-G{i + 1:0{gw}d}" for i in range(n_grids)]

    # workers and their grids
    n_workers = scaled("workers", scale)
    members, regular = _assign_workers(n_grids, n_workers, lattice.walk, streams[1])
    ww = _width(n_workers, 4)
    worker_ids = [f"{name}-W{i + 1:0{ww}d}" for i in range(regular)]
    worker_ids += [f"{name}-SV{i + 1:02d}" for i in range(n_workers - regular)]
    names_rng = streams[1]
    sur = names_rng.integers(0, len(SURNAMES), size=n_workers).tolist()
    giv = names_rng.integers(0, len(GIVEN), size=n_workers).tolist()
    worker_rows = [
        f"{worker_ids[i]},{SURNAMES[sur[i]]} {GIVEN[giv[i]]},{'worker' if i < regular else 'supervisor'}"
        for i in range(n_workers)
    ]
    town = TOWNS[index % len(TOWNS)]
    features = [
        orjson.dumps(
            {
                "type": "Feature",
                "properties": {
                    "grid_id": grid_ids[g],
                    "district": name,
                    "name": f"{town} {g + 1:0{gw}d}",
                    "workers": [worker_ids[w] for w in members[g]],
                },
                "geometry": {"type": "Polygon", "coordinates": [lattice.rings[g]]},
            }
        )
        for g in range(n_grids)
    ]

    # sites (buildings): 1..8 per grid, in the inner part of the cell
    site_rng = streams[2]
    per_grid = np.clip(1 + site_rng.poisson(2.0, size=n_grids), 1, 8).astype(np.int64)
    site_grid = np.repeat(np.arange(n_grids), per_grid)
    n_sites = int(site_grid.size)
    first_site = np.concatenate([[0], np.cumsum(per_grid)[:-1]])
    site_number = np.arange(n_sites) - first_site[site_grid] + 1
    su = site_rng.uniform(SITE_MARGIN, 1 - SITE_MARGIN, size=n_sites)
    sv = site_rng.uniform(SITE_MARGIN, 1 - SITE_MARGIN, size=n_sites)
    site_lon, site_lat = _bilinear(lattice.corners[site_grid], su, sv)
    flat = np.asarray([xy for ring in lattice.rings for xy in ring])
    ring_of = np.repeat(np.arange(n_grids), [len(ring) for ring in lattice.rings])
    polygons = shapely.polygons(shapely.linearrings(flat, indices=ring_of))

    # devices: at sites, a few metres around the building's point
    dlat_m = 1.0 / M_PER_DEG_LAT
    dlon_m = 1.0 / (M_PER_DEG_LAT * math.cos(math.radians(ORIGIN_LAT)))
    device_rows: dict[str, list[str]] = {}
    for k, kind in enumerate(DEVICE_KINDS):
        rng = streams[3 + k]
        count = scaled(kind, scale)
        # every grid gets one before any grid gets a second (as far as the count allows)
        spread = rng.permutation(n_grids)[: min(count, n_grids)]
        grids = np.sort(np.concatenate([spread, rng.integers(0, n_grids, size=max(0, count - n_grids))]))
        site = first_site[grids] + (rng.random(count) * per_grid[grids]).astype(np.int64)
        off_lat = np.clip(rng.normal(0, DEVICE_SPREAD_M, size=count), -20, 20) * dlat_m
        off_lon = np.clip(rng.normal(0, DEVICE_SPREAD_M, size=count), -20, 20) * dlon_m
        lat = np.round(site_lat[site] + off_lat, 7)
        lon = np.round(site_lon[site] + off_lon, 7)
        # safety net: a point that is not strictly inside its polygon moves to its building
        inside = shapely.contains_xy(polygons[grids], lon, lat)
        if not inside.all():
            bad = ~inside
            lat[bad] = np.round(site_lat[site[bad]], 7)
            lon[bad] = np.round(site_lon[site[bad]], 7)
        dw = _width(count, 5)
        prefix = KIND_PREFIX[kind]
        site_ids = [
            f"{name}-S{g + 1:0{gw}d}-{n}"
            for g, n in zip(site_grid[site].tolist(), site_number[site].tolist(), strict=True)
        ]
        device_rows[kind] = [
            f"{name}-{prefix}{i + 1:0{dw}d},{kind},{name},{site_ids[i]},{la:.7f},{lo:.7f},{grid_ids[g]}"
            for i, (la, lo, g) in enumerate(zip(lat.tolist(), lon.tolist(), grids.tolist(), strict=True))
        ]

    # micro fire stations: evenly spread along the walk, at their cell's centre
    n_st = scaled("stations", scale)
    pos = np.minimum(((np.arange(n_st) + 0.5) * n_grids / n_st).astype(np.int64), n_grids - 1)
    st_grids = lattice.walk[pos]
    st_lon, st_lat = _bilinear(lattice.corners[st_grids], np.full(n_st, 0.5), np.full(n_st, 0.5))
    station_rows = [
        f"{name}-ST{i + 1:02d},{town} micro fire station {i + 1},{name},{la:.7f},{lo:.7f}"
        for i, (la, lo) in enumerate(zip(st_lat.tolist(), st_lon.tolist(), strict=True))
    ]
    return _District(name, grid_ids, features, worker_rows, station_rows, device_rows, n_sites)


def write_world(out: Path, *, scale: float = 1.0, seed: int = 1, districts: int = 1) -> WorldSummary:
    """Write a registry of ``districts`` reference districts scaled by ``scale`` into ``out``.

    The same arguments always give the same bytes. Raises ``ValueError`` for a non-positive
    scale or district count.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, not {scale}")
    if districts < 1 or districts > 999:
        raise ValueError(f"districts must be between 1 and 999, not {districts}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_grids = scaled("grids", scale)
    cols = math.ceil(math.sqrt(n_grids))
    rows = math.ceil(n_grids / cols)
    per_row = math.ceil(math.sqrt(districts))
    built = [_district(d, (d % per_row) * cols, (d // per_row) * rows, scale, seed) for d in range(districts)]

    with (out / "grids.geojson").open("wb") as handle:
        handle.write(b'{"type":"FeatureCollection","features":[\n')
        first = True
        for district in built:
            for feature in district.features:
                handle.write(feature if first else b",\n" + feature)
                first = False
        handle.write(b"\n]}\n")
    _write_lines(out / "workers.csv", "worker_id,name,role", (r for d in built for r in d.worker_rows))
    _write_lines(
        out / "stations.csv", "station_id,name,district,lat,lon", (r for d in built for r in d.station_rows)
    )
    _write_lines(
        out / "devices.csv",
        "device_id,kind,district,site_id,lat,lon,grid_id",
        (r for d in built for kind in DEVICE_KINDS for r in d.device_rows[kind]),
    )
    return WorldSummary(
        path=out,
        districts=tuple(d.name for d in built),
        grids=sum(len(d.grid_ids) for d in built),
        workers=sum(len(d.worker_rows) for d in built),
        supervisors=sum(1 for d in built for r in d.worker_rows if r.endswith(",supervisor")),
        stations=sum(len(d.station_rows) for d in built),
        sites=sum(d.sites for d in built),
        devices={kind: sum(len(d.device_rows[kind]) for d in built) for kind in DEVICE_KINDS},
    )


def _write_lines(path: Path, header: str, rows: Iterable[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(header + "\n")
        chunk: list[str] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= 65536:
                handle.write("\n".join(chunk) + "\n")
                chunk.clear()
        if chunk:
            handle.write("\n".join(chunk) + "\n")
