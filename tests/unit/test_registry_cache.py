"""The registry cache in the data directory (devices/_registry_cache.py): a restart loads the very
registry it was built from, any change to the registry's bytes means a full load, and a broken
cache is replaced, never an error."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from devices import Registry, RegistryError, load_registry
from simulators import write_world


def same(a: Registry, b: Registry) -> None:
    assert a.device_ids == b.device_ids and a.slot_of == b.slot_of
    assert a.grids == b.grids and a.workers == b.workers and a.stations == b.stations
    assert a.grid_names == b.grid_names and a.districts == b.districts and a.sites == b.sites
    for name in ("kind_code", "district_idx", "grid_idx", "site_idx", "lat", "lon"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.overrides.keys() == b.overrides.keys()
    for name, values in a.overrides.items():
        assert np.array_equal(values, b.overrides[name], equal_nan=True), name


@pytest.fixture
def world(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    write_world(root, scale=0.1, seed=4)
    return root


def test_a_restart_loads_the_registry_from_its_cache(
    world: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "data" / "registry.cache"
    first = load_registry(world, cache)
    assert cache.is_file() and stat.S_IMODE(cache.stat().st_mode) == 0o600
    caplog.set_level(logging.INFO, "devices")
    again = load_registry(world, cache)
    assert "loaded from its cache" in caplog.text
    same(again, first)
    same(again, Registry.load(world))
    assert again.path == world


def test_any_change_to_the_registry_means_a_full_load(world: Path, tmp_path: Path) -> None:
    cache = tmp_path / "registry.cache"
    load_registry(world, cache)
    devices_csv = world / "devices.csv"
    stamp = devices_csv.stat()
    lines = devices_csv.read_text().splitlines(keepends=True)
    # one device fewer, same size class and the old mtime: only the bytes tell
    devices_csv.write_text("".join(lines[:-1]))
    os.utime(devices_csv, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    changed = load_registry(world, cache)
    same(changed, Registry.load(world))
    assert len(changed) == len(Registry.load(world))
    same(load_registry(world, cache), changed)  # and the cache now holds the new one


def test_a_broken_cache_is_replaced_and_a_broken_registry_still_refused(
    world: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "registry.cache"
    load_registry(world, cache)
    cache.write_bytes(cache.read_bytes()[:200])  # truncated
    with caplog.at_level(logging.WARNING, "devices"):
        same(load_registry(world, cache), Registry.load(world))
    assert "unreadable" in caplog.text
    same(load_registry(world, cache), Registry.load(world))
    (world / "workers.csv").write_text("not,a,registry\n")
    with pytest.raises(RegistryError):
        load_registry(world, cache)
