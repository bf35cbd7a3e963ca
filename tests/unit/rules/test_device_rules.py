"""Flags, per-device overrides, CABLE_OVERHEAT escalation, TEMP_RISE_FAST and FIRE_CONFIRMED."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rules import RulesConfig
from tests.unit.rules.conftest import T0, World, kinds_of

# -- flags --------------------------------------------------------------------------------------


def test_fire_alarm_raises_once_and_clears(world: World) -> None:
    hits = world.one(world.smoke("S0000", T0, alarm=True))
    assert kinds_of(hits) == [("FIRE_ALARM", "S0000", "raise")]
    alarm = hits[0]
    assert (alarm.severity, alarm.kind, alarm.site_id, alarm.grid_id, alarm.district) == (
        "critical",
        "smoke",
        "S0",
        "D01-G00",
        "D01",
    )
    assert world.one(world.smoke("S0000", T0 + 1000, alarm=True)) == []
    assert kinds_of(world.one(world.smoke("S0000", T0 + 2000, alarm=False))) == [
        ("FIRE_ALARM", "S0000", "clear")
    ]
    assert world.one(world.smoke("S0000", T0 + 3000, alarm=False)) == []


def test_tamper_raises_and_clears_and_absent_tamper_changes_nothing(world: World) -> None:
    hits = world.one(world.smoke("S0001", T0, tamper=True))
    assert kinds_of(hits) == [("TAMPER", "S0001", "raise")] and hits[0].severity == "major"
    assert world.one(world.smoke("S0001", T0 + 1000)) == []  # tamper absent: unknown, stays raised
    assert kinds_of(world.one(world.smoke("S0001", T0 + 2000, tamper=False))) == [
        ("TAMPER", "S0001", "clear")
    ]


@pytest.mark.parametrize("device", ["S0000", "E0000", "W0000"])
def test_device_fault_on_every_kind_that_reports_faults(world: World, device: str) -> None:
    build = {"S": world.smoke, "E": world.electrical, "W": world.water}[device[0]]
    hits = world.one(build(device, T0, fault="sensor chamber dirty"))
    assert kinds_of(hits) == [("DEVICE_FAULT", device, "raise")]
    assert hits[0].message == "Device fault: sensor chamber dirty" and hits[0].severity == "major"
    assert world.one(build(device, T0 + 1, fault="sensor chamber dirty")) == []
    assert kinds_of(world.one(build(device, T0 + 2, fault=""))) == [("DEVICE_FAULT", device, "clear")]
    assert kinds_of(world.one(build(device, T0 + 3, fault="x"))) == [("DEVICE_FAULT", device, "raise")]
    assert kinds_of(world.one(build(device, T0 + 4))) == [("DEVICE_FAULT", device, "clear")]  # null clears


# -- per-device overrides -------------------------------------------------------------------------


def test_overrides_from_devices_csv(make_world: Callable[..., World]) -> None:
    world = make_world(
        {
            "E0001": {"residual_ma_limit": 100, "temp_limit_c": 50},
            "W0001": {"min_pressure_mpa": 0.15, "max_pressure_mpa": 0.8},
        }
    )
    for ts in (T0, T0 + 10_000):
        hits = world.feed(
            [world.electrical(d, ts, residual_ma=120, temp_c=[55.0]) for d in ("E0000", "E0001")]
        )
    assert sorted(kinds_of(hits)) == [
        ("CABLE_OVERHEAT", "E0001", "raise"),
        ("RESIDUAL_CURRENT_HIGH", "E0001", "raise"),
    ]
    assert {h.threshold for h in hits} == {100.0, 50.0}
    assert kinds_of(world.one(world.electrical("E0001", T0 + 11_000, residual_ma=89.9, temp_c=[44.9]))) == [
        ("RESIDUAL_CURRENT_HIGH", "E0001", "clear"),  # < 0.9 × 100
        ("CABLE_OVERHEAT", "E0001", "clear"),  # < 50 - 5
    ]
    for ts in (T0, T0 + 60_000):  # 0.15 exactly is not below its own minimum of 0.15 (float32 column)
        hits = world.feed([world.water(d, ts, pressure_mpa=0.15) for d in ("W0000", "W0001")])
    assert hits == []
    for ts in (T0 + 61_000, T0 + 121_000):
        hits = world.feed([world.water(d, ts, pressure_mpa=0.1499) for d in ("W0000", "W0001")])
    assert kinds_of(hits) == [("LOW_PRESSURE", "W0001", "raise")]
    assert hits[0].threshold == 0.15
    assert kinds_of(world.one(world.water("W0001", T0 + 122_000, pressure_mpa=0.17))) == [
        ("LOW_PRESSURE", "W0001", "clear")
    ]
    for ts in (T0 + 130_000, T0 + 190_000):
        hits = world.feed([world.water(d, ts, pressure_mpa=0.9) for d in ("W0000", "W0001")])
    assert kinds_of(hits) == [("HIGH_PRESSURE", "W0001", "raise")]


def test_rules_file_values_change_limits_durations_and_severity(make_world: Callable[..., World]) -> None:
    config = RulesConfig.model_validate(
        {
            "CABLE_OVERHEAT": {"limit": 75.0, "for_s": 20, "severity": "critical"},
            "LOW_BATTERY": {"enabled": False},
        }
    )
    world = make_world(config=config)
    assert world.one(world.electrical("E0000", T0, temp_c=[76.0])) == []
    assert world.one(world.electrical("E0000", T0 + 19_999, temp_c=[76.0])) == []
    hits = world.one(world.electrical("E0000", T0 + 20_000, temp_c=[76.0]))
    assert [(h.type, h.severity, h.threshold) for h in hits] == [("CABLE_OVERHEAT", "critical", 75.0)]
    assert world.one(world.smoke("S0000", T0, battery_pct=1)) == []


# -- CABLE_OVERHEAT severity ----------------------------------------------------------------------


def test_cable_overheat_is_critical_from_limit_plus_20(world: World) -> None:
    world.one(world.electrical("E0000", T0, temp_c=[90.0]))
    hits = world.one(world.electrical("E0000", T0 + 10_000, temp_c=[90.0]))
    assert [(h.type, h.severity) for h in hits] == [("CABLE_OVERHEAT", "critical")]
    world.one(world.electrical("E0001", T0, temp_c=[89.9]))
    hits = world.one(world.electrical("E0001", T0 + 10_000, temp_c=[89.9]))
    assert [(h.type, h.severity, h.message) for h in hits] == [
        ("CABLE_OVERHEAT", "major", "Cable temperature 89.9 °C ≥ 70 °C for 10 s")
    ]


def test_cable_overheat_escalates_once_while_raised(world: World) -> None:
    world.one(world.electrical("E0000", T0, temp_c=[74.5]))
    assert [h.severity for h in world.one(world.electrical("E0000", T0 + 10_000, temp_c=[74.5]))] == ["major"]
    hits = world.one(world.electrical("E0000", T0 + 11_000, temp_c=[91.0]))
    assert [(h.type, h.state, h.severity) for h in hits] == [("CABLE_OVERHEAT", "raise", "critical")]
    assert hits[0].key == ("device", "E0000", "CABLE_OVERHEAT")  # the same event, raised in severity
    assert world.one(world.electrical("E0000", T0 + 12_000, temp_c=[95.0])) == []
    assert world.one(world.electrical("E0000", T0 + 13_000, temp_c=[80.0])) == []  # never de-escalates
    assert kinds_of(world.one(world.electrical("E0000", T0 + 14_000, temp_c=[60.0]))) == [
        ("CABLE_OVERHEAT", "E0000", "clear")
    ]


# -- TEMP_RISE_FAST ---------------------------------------------------------------------------------


def feed_ramp(
    world: World, device: str, start: int, times_s: list[float], rate_c_per_min: float
) -> list[str]:
    seen = []
    for t in times_s:
        value = 30.0 + rate_c_per_min * t / 60
        for h in world.one(world.electrical(device, start + int(t * 1000), temp_c=[value, 25.0])):
            seen.append(f"{h.type}:{h.state}@{t:g}")
    return seen


def test_temp_rise_fast_needs_four_readings_over_sixty_seconds(world: World) -> None:
    # 6 °C/min: with 20 s spacing the 4th reading (t=60) completes 4 readings over 60 s
    assert feed_ramp(world, "E0000", T0, [0, 20, 40, 60, 80], 6.0) == ["TEMP_RISE_FAST:raise@60"]


def test_temp_rise_fast_not_with_three_readings_or_a_short_span(world: World) -> None:
    assert feed_ramp(world, "E0000", T0, [0, 30, 60], 30.0) == []
    assert feed_ramp(world, "E0001", T0, [0, 10, 20, 30, 40, 50, 59], 30.0) == []  # spans 59 s


@pytest.mark.parametrize(("rate", "raises"), [(4.99, False), (5.0, True), (5.01, True)])
def test_temp_rise_fast_threshold(world: World, rate: float, raises: bool) -> None:
    seen = feed_ramp(world, "E0000", T0, [0, 16, 32, 48, 64], rate)
    assert seen == (["TEMP_RISE_FAST:raise@64"] if raises else [])


def test_temp_rise_fast_clears_below_two_degrees_per_minute(world: World) -> None:
    assert feed_ramp(world, "E0000", T0, [0, 20, 40, 60], 10.0) == ["TEMP_RISE_FAST:raise@60"]
    # temperature now flat at 40 °C: the fitted slope falls as old points leave the 120 s window
    seen = []
    for t in range(80, 400, 20):
        seen += [
            f"{h.type}:{h.state}@{t}"
            for h in world.one(world.electrical("E0000", T0 + t * 1000, temp_c=[40.0]))
        ]
    assert len(seen) == 1 and seen[0].startswith("TEMP_RISE_FAST:clear@")


def test_temp_rise_fast_uses_only_the_last_120_seconds(world: World) -> None:
    # a fast rise long ago followed by a flat stretch: only the flat last 120 s count
    feed_ramp(world, "E0000", T0, [0, 10, 20], 60.0)
    assert feed_ramp(world, "E0000", T0 + 500_000, [0, 20, 40, 60, 80, 100, 120], 0.0) == []


def test_temp_rise_fast_with_one_reading_a_second(world: World) -> None:
    # decimation keeps the ring over the whole window even at 1 Hz
    seen = feed_ramp(world, "E0000", T0, [float(t) for t in range(0, 90)], 6.0)
    assert seen and seen[0].startswith("TEMP_RISE_FAST:raise@")
    assert float(seen[0].split("@")[1]) <= 70 and len(seen) == 1


# -- FIRE_CONFIRMED -----------------------------------------------------------------------------------


def test_fire_confirmed_two_detectors_of_one_site_within_120_s(world: World) -> None:
    world.one(world.smoke("S0000", T0, alarm=True))  # site S0
    hits = world.one(world.smoke("S0002", T0 + 120_000, alarm=True))  # site S0, exactly 120 s later
    confirmed = [h for h in hits if h.type == "FIRE_CONFIRMED"]
    assert len(confirmed) == 1
    hit = confirmed[0]
    assert hit.key == ("site", "S0", "FIRE_CONFIRMED") and hit.severity == "critical" and hit.value == 2
    assert "S0000, S0002" in hit.message
    # further alarm readings of detectors already in alarm do not re-confirm
    assert world.one(world.smoke("S0000", T0 + 125_000, alarm=True)) == []


def test_fire_confirmed_not_after_120_s_nor_across_sites_nor_for_one_detector(world: World) -> None:
    world.one(world.smoke("S0000", T0, alarm=True))
    assert kinds_of(world.one(world.smoke("S0002", T0 + 120_001, alarm=True)), "FIRE_CONFIRMED") == []
    assert (
        kinds_of(world.one(world.smoke("S0001", T0 + 120_002, alarm=True)), "FIRE_CONFIRMED") == []
    )  # site S1
    world.one(world.smoke("S0000", T0 + 200_000, alarm=False))
    world.one(world.smoke("S0000", T0 + 210_000, alarm=True))  # S0002 alarmed 90 s before: confirmed
    world2_hits = world.one(world.smoke("S0000", T0 + 211_000, alarm=False))
    assert kinds_of(world2_hits) == [("FIRE_ALARM", "S0000", "clear")]


def test_fire_confirmed_in_one_batch_and_again_for_a_third_detector(make_world: Callable[..., World]) -> None:
    world = make_world(per_kind=5)  # site S0: S0000, S0002, S0004
    hits = world.feed([world.smoke("S0000", T0, alarm=True), world.smoke("S0002", T0 + 5000, alarm=True)])
    assert kinds_of(hits, "FIRE_CONFIRMED") == [("FIRE_CONFIRMED", "S0002", "raise")]
    hits = world.one(world.smoke("S0004", T0 + 30_000, alarm=True))
    confirmed = [h for h in hits if h.type == "FIRE_CONFIRMED"]
    assert len(confirmed) == 1 and confirmed[0].value == 3  # a repeat: the alerts layer counts it
