"""Every numeric row of CONTRACT §7: just below, at and above the threshold; `for`; hysteresis; clear."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from devices import Reading
from tests.unit.rules.conftest import T0, World, kinds_of


@dataclass(frozen=True)
class Row:
    type: str
    device: str
    build: Callable[[World, str, int, float], Reading]
    for_s: float
    below: float
    at: float
    above: float
    raises: tuple[bool, bool, bool]
    """Whether below / at / above raise."""
    band: float
    """A value inside the hysteresis band: neither raises anew nor clears."""
    clear: float
    """The first value that clears."""
    normal: float
    """A value far from the threshold."""


def battery(world: World, device: str, ts: int, v: float) -> Reading:
    if device.startswith("S"):
        return world.smoke(device, ts, battery_pct=v)
    return world.water(device, ts, battery_pct=v)


def residual(world: World, device: str, ts: int, v: float) -> Reading:
    return world.electrical(device, ts, residual_ma=v)


def temp(world: World, device: str, ts: int, v: float) -> Reading:
    return world.electrical(device, ts, temp_c=[20.0, v, 30.0])


def pressure(world: World, device: str, ts: int, v: float) -> Reading:
    return world.water(device, ts, pressure_mpa=v)


ROWS = [
    Row("LOW_BATTERY", "S0000", battery, 0, 14.99, 15, 15.01, (True, False, False), 19.99, 20, 80),
    Row("LOW_BATTERY", "W0000", battery, 0, 14.99, 15, 15.01, (True, False, False), 19.99, 20, 80),
    Row(
        "RESIDUAL_CURRENT_HIGH",
        "E0000",
        residual,
        10,
        299.99,
        300,
        300.01,
        (False, True, True),
        270,
        269.99,
        30,
    ),
    Row("CABLE_OVERHEAT", "E0000", temp, 10, 69.99, 70, 70.01, (False, True, True), 65, 64.99, 40),
    Row("LOW_PRESSURE", "W0000", pressure, 60, 0.0999, 0.10, 0.1001, (True, False, False), 0.1199, 0.12, 0.3),
    Row("PRESSURE_LOSS", "W0000", pressure, 0, 0.0499, 0.05, 0.0501, (True, False, False), 0.0699, 0.07, 0.3),
    Row(
        "HIGH_PRESSURE", "W0000", pressure, 60, 1.1999, 1.20, 1.2001, (False, False, True), 1.1501, 1.15, 0.3
    ),
]
IDS = [f"{r.type}-{r.device}" for r in ROWS]
TIMED = [r for r in ROWS if r.for_s]
TIMED_IDS = [f"{r.type}-{r.device}" for r in TIMED]


def violating(row: Row) -> float:
    return row.below if row.raises[0] else row.above


def raise_now(world: World, row: Row, start: int = T0) -> int:
    """Feed a violating value long enough to raise; return the ts of the raising reading."""
    v = violating(row)
    end = start + int(row.for_s * 1000)
    if row.for_s:
        assert kinds_of(world.one(row.build(world, row.device, start, v)), row.type) == []
    hits = world.one(row.build(world, row.device, end, v))
    assert kinds_of(hits, row.type) == [(row.type, row.device, "raise")]
    return end


@pytest.mark.parametrize("row", ROWS, ids=IDS)
@pytest.mark.parametrize("where", [0, 1, 2], ids=["below", "at", "above"])
def test_threshold(make_world: Callable[..., World], row: Row, where: int) -> None:
    world = make_world()
    value = (row.below, row.at, row.above)[where]
    hits = world.one(row.build(world, row.device, T0, value))
    if row.for_s:
        assert kinds_of(hits, row.type) == []  # never at the first reading of a `for` rule
        hits = world.one(row.build(world, row.device, T0 + int(row.for_s * 1000), value))
    expected = [(row.type, row.device, "raise")] if row.raises[where] else []
    assert kinds_of(hits, row.type) == expected
    if expected:
        hit = next(h for h in hits if h.type == row.type)
        assert hit.value == pytest.approx(value)
        assert hit.key == ("device", row.device, row.type)
        assert hit.ts == T0 + int(row.for_s * 1000)


@pytest.mark.parametrize("row", TIMED, ids=TIMED_IDS)
def test_for_boundary(make_world: Callable[..., World], row: Row) -> None:
    world = make_world()
    v = violating(row)
    for_ms = int(row.for_s * 1000)
    assert world.one(row.build(world, row.device, T0, v)) == []
    assert kinds_of(world.one(row.build(world, row.device, T0 + for_ms - 100, v)), row.type) == []  # 9.9 s
    hits = world.one(row.build(world, row.device, T0 + for_ms, v))  # 10 s
    assert kinds_of(hits, row.type) == [(row.type, row.device, "raise")]
    assert f"for {int(row.for_s)} s" in hits[0].message


@pytest.mark.parametrize("row", TIMED, ids=TIMED_IDS)
def test_for_restarts_after_a_good_reading(make_world: Callable[..., World], row: Row) -> None:
    world = make_world()
    v, for_ms = violating(row), int(row.for_s * 1000)
    world.one(row.build(world, row.device, T0, v))
    world.one(row.build(world, row.device, T0 + 1000, row.band))  # not violating: the run breaks
    assert kinds_of(world.one(row.build(world, row.device, T0 + for_ms, v)), row.type) == []
    assert kinds_of(world.one(row.build(world, row.device, T0 + 2 * for_ms - 1, v)), row.type) == []
    assert kinds_of(world.one(row.build(world, row.device, T0 + 2 * for_ms, v)), row.type) == [
        (row.type, row.device, "raise")
    ]


def test_for_ignores_readings_without_the_value(world: World) -> None:
    world.one(world.electrical("E0000", T0, temp_c=[75.0]))
    world.one(world.electrical("E0000", T0 + 5000))  # no temp_c: neither breaks nor extends the run
    hits = world.one(world.electrical("E0000", T0 + 10_000, temp_c=[75.0]))
    assert kinds_of(hits) == [("CABLE_OVERHEAT", "E0000", "raise")]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_flapping_around_the_limit_raises_once_and_clears_with_hysteresis(
    make_world: Callable[..., World], row: Row
) -> None:
    world = make_world()
    ts = raise_now(world, row)
    v = violating(row)
    seen = []
    for i, value in enumerate([row.at, v, row.band, v, row.band, row.at, v, row.band]):
        seen += kinds_of(world.one(row.build(world, row.device, ts + 1000 * (i + 1), value)), row.type)
    assert seen == []  # one event: no second raise, no clear inside the band
    hits = world.one(row.build(world, row.device, ts + 20_000, row.clear))
    assert kinds_of(hits, row.type) == [(row.type, row.device, "clear")]
    assert hits[0].state == "clear" and "cleared" in hits[0].message
    # a clear is emitted once; the next raise needs a whole new `for` run
    assert kinds_of(world.one(row.build(world, row.device, ts + 21_000, row.normal)), row.type) == []
    raise_now(world, row, ts + 30_000)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_raised_condition_is_not_raised_again_on_every_reading(
    make_world: Callable[..., World], row: Row
) -> None:
    world = make_world()
    ts = raise_now(world, row)
    v = violating(row)
    for i in range(1, 30):
        assert kinds_of(world.one(row.build(world, row.device, ts + i * 5000, v)), row.type) == []
