"""Test helpers: waiting with a deadline, querying InfluxDB, a small registry on disk."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

T = TypeVar("T")

HTTP = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
"""The suite's HTTP client: as ``httpx.get``/``httpx.post`` (a connection per request, the same
defaults), without their cost: each of those builds a client of its own, whose TLS context loads
the CA bundle, ~90 ms of CPU per call; polled every 50 ms by `eventually`, that took a core from
the services under test."""

DOCS = Path(__file__).resolve().parents[1] / "docs"
REFRESH_SCREENSHOTS = "FIREGRID_REFRESH_SCREENSHOTS"


def screenshot_path(name: str, scratch: Path) -> Path:
    """Where a test saves the documentation screenshot ``name`` (relative to docs/).

    Under ``scratch`` (a pytest temporary directory), so that a test run leaves the tree clean;
    in docs/ itself only when ``FIREGRID_REFRESH_SCREENSHOTS=1`` (``make screenshots``)."""
    base = DOCS if os.environ.get(REFRESH_SCREENSHOTS) == "1" else scratch
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def eventually(
    probe: Callable[[], T | Literal[False] | None],
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Call ``probe`` until it returns a truthy value (returned) or raise after ``timeout``.

    ``probe`` may answer ``None`` or ``False`` for "not yet" (``lambda: ready() and value``)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except AssertionError as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s: {what or probe}; last value: {last!r}")


def influx_query(url: str, db: str, query: str) -> list[dict[str, Any]]:
    """Rows of an InfluxQL query, as dicts (all series concatenated, tags included)."""
    response = HTTP.get(f"{url}/query", params={"db": db, "q": query, "epoch": "ms"}, timeout=30)
    response.raise_for_status()
    rows: list[dict[str, Any]] = []
    for result in response.json().get("results", []):
        if "error" in result:
            raise AssertionError(f"InfluxQL error: {result['error']}")
        for series in result.get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(tags)
                rows.append(row)
    return rows


def square(lon: float, lat: float, size: float) -> list[list[list[float]]]:
    return [[[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]]


def write_registry(root: Path, district: str = "D01", devices_per_kind: int = 3) -> Path:
    """A 2×2-grid district with a few devices of each kind, workers and a station."""
    root.mkdir(parents=True, exist_ok=True)
    features = []
    for gy in range(2):
        for gx in range(2):
            gid = f"{district}-G{gy * 2 + gx:02d}"
            features.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": square(108.7 + gx * 0.01, 34.3 + gy * 0.01, 0.01),
                    },
                    "properties": {
                        "grid_id": gid,
                        "district": district,
                        "name": f"Grid {gid}",
                        "workers": [f"W{gy * 2 + gx}", "SUP1"] if gx == 0 else [f"W{gy * 2 + gx}"],
                    },
                }
            )
    (root / "grids.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with (root / "workers.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["worker_id", "name", "role"])
        for i in range(4):
            writer.writerow([f"W{i}", f"Worker {i}", "worker"])
        writer.writerow(["SUP1", "Supervisor", "supervisor"])
    with (root / "stations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["station_id", "name", "district", "lat", "lon"])
        writer.writerow([f"{district}-ST1", "Station 1", district, 34.301, 108.701])
        writer.writerow([f"{district}-ST2", "Station 2", district, 34.319, 108.719])
    with (root / "devices.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device_id", "kind", "district", "site_id", "lat", "lon", "grid_id"])
        for k, kind in enumerate(("smoke", "electrical", "water", "patrol")):
            for i in range(devices_per_kind):
                lat = 34.302 + 0.005 * (i % 3)
                lon = 108.702 + 0.004 * k
                writer.writerow([f"{kind[0].upper()}{i:04d}", kind, district, f"S{i % 2}", lat, lon, ""])
    return root


API_USER = "firegrid-console"
API_PASSWORD = "suite-api-password"
API_AUTH = (API_USER, API_PASSWORD)
"""The account the tests read ingest's /events with (a service account: sees every event)."""


def write_api_credentials(directory: Path) -> Path:
    """A credentials directory whose ``passwd`` knows the suite's API account."""
    from access import hash_password

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "passwd").write_text(f"{API_USER}:{hash_password(API_PASSWORD)}\n")
    return directory
