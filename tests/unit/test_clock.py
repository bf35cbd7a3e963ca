"""The service clock (firegrid/_clock.py) and its settings, and the parts that follow it: the
points schedule's waits and a simulation's start."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from devices import SettingsError
from firegrid._clock import WALL_CLOCK, Clock, wall_ms
from firegrid._settings import load_settings
from firegrid.cli_simulate import CLOCK_LEAD_MS, RunSettings, run_options
from rules import RulesConfig
from safety import Schedule, never
from tests.helpers import eventually

DAY_MS = 86_400_000


def test_the_default_clock_is_the_wall_clock_itself() -> None:
    assert WALL_CLOCK.identity and Clock.parse(1.0, None).identity and Clock.parse(1.0, "  ").identity
    assert WALL_CLOCK.reader() is wall_ms  # nothing more on the hot path
    assert WALL_CLOCK.service_ms(123) == 123 and WALL_CLOCK.wall_at(456) == 456
    assert abs(WALL_CLOCK.reader()() - time.time() * 1000) < 1000


def test_a_scaled_clock_maps_wall_to_service_time_linearly_from_its_anchor() -> None:
    clock = Clock.parse(720, "1000000=5000000")
    assert not clock.identity
    assert clock.service_ms(1_000_000) == 5_000_000
    assert clock.service_ms(1_000_500) == 5_000_000 + 500 * 720
    assert clock.wall_at(5_000_000 + 3_600_000) == 1_000_000 + 5_000  # a simulated hour in 5 s
    assert clock.service_ms(999_000) == 5_000_000  # before its anchor it stands at the anchor
    assert clock.wall_at(4_000_000) == 1_000_000


def test_the_reader_follows_the_wall_clock_scaled() -> None:
    now = wall_ms()
    clock = Clock(1000.0, now, 0)
    reader = clock.reader()
    first = reader()
    assert first == pytest.approx((wall_ms() - now) * 1000, abs=50_000)
    assert reader() >= first
    shifted = Clock(1.0, now, now - DAY_MS)  # scale 1 with an offset: not the identity
    assert not shifted.identity
    assert shifted.reader()() == pytest.approx(wall_ms() - DAY_MS, abs=1000)


@pytest.mark.parametrize(
    ("scale", "anchor", "problem"),
    [
        ("720", "", "a scaled clock needs FIREGRID_CLOCK_ANCHOR"),
        ("720", "tomorrow", "must be WALL_MS=SERVICE_MS"),
        ("720", "1=2=3", "must be WALL_MS=SERVICE_MS"),
        ("0", "1=2", "FIREGRID_CLOCK_SCALE"),
        ("-5", "1=2", "FIREGRID_CLOCK_SCALE"),
        ("nan", "1=2", "FIREGRID_CLOCK_SCALE"),
        ("fast", "1=2", "FIREGRID_CLOCK_SCALE"),
    ],
)
def test_invalid_clock_settings_are_one_readable_line(scale: str, anchor: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"FIREGRID_CLOCK_SCALE": scale, "FIREGRID_CLOCK_ANCHOR": anchor})
    message = str(caught.value)
    assert "\n" not in message and problem in message, message


def test_clock_settings_from_the_environment_and_a_file(tmp_path: Path) -> None:
    assert load_settings(environ={}).clock.identity
    settings = load_settings(
        environ={"FIREGRID_CLOCK_SCALE": "8640", "FIREGRID_CLOCK_ANCHOR": " 1700000000000 = 1690000000000 "}
    )
    assert settings.clock == Clock(8640.0, 1_700_000_000_000, 1_690_000_000_000)
    config = tmp_path / "firegrid.toml"
    config.write_text('clock_scale = 60\nclock_anchor = "10=20"\n')
    assert load_settings(config, environ={}).clock == Clock(60.0, 10, 20)


class _Points:
    def __init__(self) -> None:
        self.index_at: list[int] = []

    def index_lines(self, at_ms: int, cancelled: Callable[[], bool] = never) -> list[str]:
        self.index_at.append(at_ms)
        return []

    def sla_lines(self, since_ms: int, until_ms: int, cancelled: Callable[[], bool] = never) -> list[str]:
        return []


def test_the_points_schedule_waits_in_wall_time_for_slots_on_a_scaled_clock() -> None:
    """15-minute slots on a clock 9000× as fast come every 0.1 wall s, not every 15 minutes."""
    points = _Points()
    clock = Clock(9000.0, wall_ms(), 0)
    schedule = Schedule(
        points, lambda _: None, clock.reader(), index_interval_ms=900_000, sla_period_ms=DAY_MS, scale=9000
    )
    schedule.start()
    try:
        eventually(lambda: len(points.index_at) >= 4, timeout=10, what="four slots in well under a second")
    finally:
        schedule.stop()
    assert all(at % 900_000 == 0 for at in points.index_at)


def test_a_simulation_follows_the_service_clock_of_its_settings(tmp_path: Path) -> None:
    args = argparse.Namespace(
        registry=tmp_path, rate=100.0, duration=None, scenario=None, qos=0, time_scale=None, truth=None,
        seed=1, per_device=False, connect_rate=None, respond=False,
    )  # fmt: skip
    base = RunSettings(url="mqtt://127.0.0.1:1883", prefix="", rules=RulesConfig(), credentials=tmp_path)
    plain = run_options(args, base)
    assert plain.start_ms is None and plain.wall_start_ms is None and plain.time_scale is None
    now = wall_ms()
    ahead = Clock(8640.0, now + 60_000, 1_000_000_000_000)
    options = run_options(args, replace(base, clock=ahead))
    assert (options.time_scale, options.start_ms, options.wall_start_ms) == (8640.0, 10**12, now + 60_000)
    passed = Clock(8640.0, now - 60_000, 1_000_000_000_000)
    options = run_options(args, replace(base, clock=passed))
    assert options.wall_start_ms is not None and options.start_ms is not None
    assert options.wall_start_ms - now == pytest.approx(CLOCK_LEAD_MS, abs=1000)
    assert options.start_ms == passed.service_ms(options.wall_start_ms)
