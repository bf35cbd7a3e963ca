"""Fixtures for the rules tests: a small registry on disk and reading builders (fake clock = ints)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from devices import (
    OVERRIDE_COLUMNS,
    ElectricalPayload,
    PatrolPayload,
    Reading,
    Registry,
    SmokePayload,
    WaterPayload,
)
from rules import Hit, RuleEngine, RulesConfig
from tests.helpers import write_registry

T0 = 1_764_583_200_000
"""Service start and first reading time of most tests (epoch ms)."""


def registry_dir(
    root: Path, overrides: Mapping[str, Mapping[str, float]] | None = None, per_kind: int = 3
) -> Path:
    """tests.helpers.write_registry, plus the override columns filled for the given devices."""
    write_registry(root, devices_per_kind=per_kind)
    path = root / "devices.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0] + list(OVERRIDE_COLUMNS)
    out = [header]
    for row in rows[1:]:
        cells = (overrides or {}).get(row[0], {})
        out.append(row + [str(cells[c]) if c in cells else "" for c in OVERRIDE_COLUMNS])
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(out)
    return root


class World:
    """A registry, an engine and reading builders; ``feed`` returns the hits."""

    def __init__(self, registry: Registry, config: RulesConfig | None = None, now: int = T0) -> None:
        self.registry = registry
        self.engine = RuleEngine(registry, config, now)

    def reading(self, device_id: str, ts: int, payload: Any) -> Reading:
        return Reading(self.registry.slot_of[device_id], device_id, ts, payload)

    def smoke(self, device_id: str, ts: int, alarm: bool = False, **fields: Any) -> Reading:
        return self.reading(device_id, ts, SmokePayload(alarm=alarm, **fields))

    def electrical(self, device_id: str, ts: int, residual_ma: float = 10.0, **fields: Any) -> Reading:
        return self.reading(device_id, ts, ElectricalPayload(residual_ma=residual_ma, **fields))

    def water(self, device_id: str, ts: int, pressure_mpa: float = 0.3, **fields: Any) -> Reading:
        return self.reading(device_id, ts, WaterPayload(pressure_mpa=pressure_mpa, **fields))

    def patrol(
        self, device_id: str, ts: int, worker_id: str = "W0", result: str = "ok", **fields: Any
    ) -> Reading:
        return self.reading(device_id, ts, PatrolPayload(worker_id=worker_id, result=result, **fields))  # type: ignore[arg-type]

    def feed(self, readings: Iterable[Reading], now: int | None = None) -> list[Hit]:
        batch = list(readings)
        when = now if now is not None else max((r.ts for r in batch), default=T0)
        return self.engine.process(batch, when)

    def one(self, reading: Reading, now: int | None = None) -> list[Hit]:
        return self.feed([reading], now)


def kinds_of(hits: Iterable[Hit], rule_type: str | None = None) -> list[tuple[str, str, str]]:
    """(type, device_id, state) of each hit, optionally of one type only."""
    return [(h.type, h.device_id, h.state) for h in hits if rule_type is None or h.type == rule_type]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry.load(registry_dir(tmp_path / "reg"))


@pytest.fixture
def world(registry: Registry) -> World:
    return World(registry)


@pytest.fixture
def make_world(tmp_path: Path) -> Callable[..., World]:
    def build(
        overrides: Mapping[str, Mapping[str, float]] | None = None,
        config: RulesConfig | None = None,
        now: int = T0,
        per_kind: int = 3,
    ) -> World:
        root = tmp_path / f"reg{len(list(tmp_path.iterdir()))}"
        return World(Registry.load(registry_dir(root, overrides, per_kind)), config, now)

    return build
