"""The engine's fast paths give exactly the hits and the state of its vectorised path (issue 17).

Random runs (hypothesis) of batches and timer ticks go through three engines on one registry:

- ``vector``: ``small_batch = 0``, patrol's ``vector_from = 0`` and electrical's ``quiet_rise``
  off, every batch through numpy, patrol scans vectorised whenever a batch scans each checkpoint
  once and TEMP_RISE_FAST fitted in every batch: for every family but patrol this is the code as
  it was before the small path existed, and the patrol loop it replaced is the small path's;
- ``small``: every batch of distinct devices through ``process_small`` (plain Python, falling
  back to numpy per family when something may raise or clear), patrol scan by scan;
- ``default``: the thresholds as shipped (mixed batches: kinds with few readings take the
  small path, the others numpy).

Values are drawn at and around every limit, clear level and ``for`` duration of CONTRACT §7
(and of per-device overrides), so that runs raise, hold, clear, escalate and re-raise; after
each step the three hit lists must be equal, and at the end every state column and the
families' extra state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import ElectricalPayload, PatrolPayload, Reading, Registry, SmokePayload, WaterPayload
from rules import Hit, RuleEngine, RulesConfig
from rules._electrical import ElectricalRules
from rules._patrol import PatrolRules
from tests.unit.rules.conftest import T0, registry_dir

PER_KIND = 5
OVERRIDES = {
    "E0001": {"residual_ma_limit": 150.0, "temp_limit_c": 60.0},
    "W0001": {"min_pressure_mpa": 0.15, "max_pressure_mpa": 0.9},
    "P0001": {"patrol_interval_h": 0.02},
}

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "for-and-disabled": {
        "FIRE_ALARM": {"for_s": 5},
        "TAMPER": {"for_s": 5},
        "DEVICE_FAULT": {"for_s": 5},
        "LOW_BATTERY": {"for_s": 30},
        "PRESSURE_LOSS": {"for_s": 10},
        "TEMP_RISE_FAST": {"min_readings": 2, "min_span_s": 10, "rate_c_per_min": 2},
        "PATROL_TOO_FAST": {"enabled": False},
        "PATROL_MISSED": {"interval_h": 0.01},
        "CABLE_OVERHEAT": {"critical_delta": 10},
        "LOW_PRESSURE": {"enabled": False},
    },
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root: Path = tmp_path_factory.mktemp("equivalence")
    return Registry.load(registry_dir(root / "reg", OVERRIDES, per_kind=PER_KIND))


def _devices(kind: str) -> list[str]:
    prefix = {"smoke": "S", "electrical": "E", "water": "W", "patrol": "P"}[kind]
    return [f"{prefix}{i:04d}" for i in range(PER_KIND)]


battery = st.one_of(st.none(), st.sampled_from([10.0, 14.9, 15.0, 17.0, 19.9, 20.0, 55.0]))
fault = st.sampled_from([None, None, None, "", "sensor dirty"])
smoke = st.builds(
    SmokePayload,
    alarm=st.booleans(),
    tamper=st.sampled_from([None, None, False, True]),
    battery_pct=battery,
    fault=fault,
)
temps = st.one_of(
    st.sampled_from([40.0, 55.0, 59.9, 60.0, 64.9, 65.0, 69.9, 70.0, 71.0, 79.9, 80.0, 89.9, 90.0, 95.0]),
    st.floats(20.0, 120.0, allow_nan=False),
)
electrical = st.builds(
    ElectricalPayload,
    residual_ma=st.sampled_from([0.0, 100.0, 134.9, 135.0, 150.0, 269.9, 270.0, 299.9, 300.0, 350.0]),
    temp_c=st.one_of(st.none(), st.lists(temps, min_size=1, max_size=3)),
    fault=fault,
)
water = st.builds(
    WaterPayload,
    pressure_mpa=st.sampled_from(
        [
            0.03,
            0.049,
            0.05,
            0.06,
            0.069,
            0.07,
            0.099,
            0.1,
            0.119,
            0.12,
            0.15,
            0.17,
            0.3,
            0.85,
            0.9,
            0.91,
            1.15,
            1.2,
            1.21,
        ]
    ),
    battery_pct=battery,
    fault=fault,
)
patrol = st.builds(
    PatrolPayload,
    worker_id=st.sampled_from(["W0", "W1", "W2"]),
    result=st.sampled_from(["ok", "ok", "hazard"]),
    hazards=st.sampled_from([None, [], ["exit blocked"], ["exit blocked", "extinguisher missing"]]),
    note=st.sampled_from([None, "", "stairwell"]),
)
payloads = {"smoke": smoke, "electrical": electrical, "water": water, "patrol": patrol}
gaps = st.sampled_from([0, 1, 500, 4_000, 7_999, 8_000, 9_999, 10_000, 30_000, 60_000, 61_000, 300_000])


@st.composite
def reading_spec(draw: st.DrawFn) -> tuple[str, int, Any]:
    kind = draw(st.sampled_from(["smoke", "electrical", "electrical", "water", "patrol"]))
    return draw(st.sampled_from(_devices(kind))), draw(gaps), draw(payloads[kind])


step = st.one_of(
    # a batch: readings (devices may repeat), how late the batch starts (a gateway's late
    # upload), and a temperature ramp (°C/min) its electrical readings with temp_c follow
    st.tuples(
        st.just("batch"),
        st.lists(reading_spec(), min_size=1, max_size=20),
        st.sampled_from([0, 0, 0, 1_000, 120_000]),
        st.sampled_from([None, None, 0.0, 1.9, 2.0, 2.1, 4.9, 5.0, 5.1, 9.0]),
    ),
    st.tuples(st.just("tick"), st.sampled_from([1_000, 60_000, 200_000, 3_600_000]), st.just(0), st.none()),
)


def _ramped(payload: Any, ts: int, ramp: float | None) -> Any:
    if ramp is None or not isinstance(payload, ElectricalPayload) or not payload.temp_c:
        return payload
    temp = 20.0 + ramp * ((ts - T0) % 360_000) / 60_000  # a saw tooth: rises, then drops (clears)
    return ElectricalPayload(residual_ma=payload.residual_ma, temp_c=[temp], fault=payload.fault)


def _engines(registry: Registry, config: RulesConfig) -> dict[str, RuleEngine]:
    engines = {name: RuleEngine(registry, config, T0) for name in ("vector", "small", "default")}
    engines["vector"].small_batch = 0
    engines["small"].small_batch = 10**6
    for family in engines["vector"]._families:
        if isinstance(family, PatrolRules):
            family.vector_from = 0  # every batch of distinct checkpoints vectorised
        if isinstance(family, ElectricalRules):
            family.quiet_rise = False  # TEMP_RISE_FAST fitted in every batch
    return engines


def _same_state(engines: dict[str, RuleEngine], now: int) -> None:
    reference = engines["vector"].snapshot_arrays(now)
    for name, engine in engines.items():
        arrays = engine.snapshot_arrays(now)
        assert arrays.keys() == reference.keys()
        for key, values in arrays.items():
            expected = reference[key]
            equal_nan = values.dtype.kind == "f"
            assert np.array_equal(values, expected, equal_nan=equal_nan), f"{name}: {key}"


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_fast_paths_give_the_vectorised_hits_and_state(
    registry: Registry, config_name: str, steps: list[tuple[str, Any, int, float | None]]
) -> None:
    config = RulesConfig.from_mapping(CONFIGS[config_name])
    engines = _engines(registry, config)
    clock = T0
    for what, spec, late, ramp in steps:
        results: dict[str, list[Hit]] = {}
        if what == "tick":
            clock += spec
            results = {name: engine.tick(clock) for name, engine in engines.items()}
        else:
            ts = clock - late
            batch: list[Reading] = []
            for device_id, gap, payload in spec:
                ts += gap
                batch.append(Reading(registry.slot_of[device_id], device_id, ts, _ramped(payload, ts, ramp)))
            clock = max(clock, ts)
            results = {name: engine.process(batch, clock) for name, engine in engines.items()}
        assert results["small"] == results["vector"]
        assert results["default"] == results["vector"]
    _same_state(engines, clock)


def test_runs_raise_and_clear(registry: Registry) -> None:
    """The strategies reach the conditions: a hand-made run raises and clears each family's."""
    engine = RuleEngine(registry, None, T0)
    engine.small_batch = 10**6
    seen: set[tuple[str, str]] = set()
    ts = T0
    for temp, residual, pressure in [(60.0, 100.0, 0.3), (72.0, 320.0, 0.04), (95.0, 320.0, 0.04)] * 2 + [
        (40.0, 10.0, 0.3)
    ] * 2:
        for _ in range(3):
            ts += 8_000
            batch = [
                Reading(
                    registry.slot_of["E0000"],
                    "E0000",
                    ts,
                    ElectricalPayload(residual_ma=residual, temp_c=[temp]),
                ),
                Reading(registry.slot_of["W0000"], "W0000", ts, WaterPayload(pressure_mpa=pressure)),
            ]
            seen |= {(h.type, h.state) for h in engine.process(batch, ts)}
    assert {("RESIDUAL_CURRENT_HIGH", "raise"), ("RESIDUAL_CURRENT_HIGH", "clear")} <= seen
    assert {("CABLE_OVERHEAT", "raise"), ("CABLE_OVERHEAT", "clear"), ("PRESSURE_LOSS", "raise")} <= seen
    assert ("TEMP_RISE_FAST", "raise") in seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    interval=st.sampled_from([1_000, 4_000, 8_000, 15_000, 60_000]),
    ramp=st.sampled_from([1.9, 2.0, 2.5, 5.0, 6.0, 12.0]),
    period=st.sampled_from([120_000, 360_000]),
    noise=st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=60, max_size=120),
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=5),
)
def test_long_ramps_raise_and_clear_temp_rise_alike(
    registry: Registry, interval: int, ramp: float, period: int, noise: list[float], sizes: list[int]
) -> None:
    """TEMP_RISE_FAST needs a device's long run: saw-tooth temperatures (a rise, then a drop
    that clears it) at a steady interval, in batches of one to three readings of two devices."""
    engines = _engines(registry, RulesConfig())
    readings = []
    for k, jitter in enumerate(noise):
        ts = T0 + k * interval
        temp = 20.0 + ramp * ((ts - T0) % period) / 60_000 + jitter
        for device_id in ("E0002", "E0003"):
            payload = ElectricalPayload(residual_ma=1.0, temp_c=[temp, temp - 1.0])
            readings.append(Reading(registry.slot_of[device_id], device_id, ts, payload))
    position, turn = 0, 0
    while position < len(readings):
        size = sizes[turn % len(sizes)]
        batch, position, turn = readings[position : position + size], position + size, turn + 1
        results = {name: engine.process(batch, batch[-1].ts) for name, engine in engines.items()}
        assert results["small"] == results["vector"]
        assert results["default"] == results["vector"]
    _same_state(engines, readings[-1].ts)


def test_temp_rise_clears_on_few_points(registry: Registry) -> None:
    """A raised TEMP_RISE_FAST clears on a fit of fewer points than it takes to raise (its device
    was silent for a while), however the batch is taken: none skips the fit while a device of it
    is raised."""
    engines = _engines(registry, RulesConfig())
    slot = registry.slot_of["E0002"]

    def reading(ts: int, temp: float) -> Reading:
        return Reading(slot, "E0002", ts, ElectricalPayload(residual_ma=1.0, temp_c=[temp]))

    seen: list[tuple[str, str]] = []
    ramp = [reading(T0 + k * 10_000, 20.0 + 2.0 * k) for k in range(7)]  # 12 °C/min for 60 s
    for batch in [ramp[:4], ramp[4:], [reading(T0 + 175_000, 25.0)]]:  # then 2 points in 120 s
        results = {name: engine.process(batch, batch[-1].ts) for name, engine in engines.items()}
        assert results["small"] == results["vector"]
        assert results["default"] == results["vector"]
        seen += [(h.type, h.state) for h in results["vector"]]
    assert seen == [("TEMP_RISE_FAST", "raise"), ("TEMP_RISE_FAST", "clear")]
    _same_state(engines, T0 + 175_000)
