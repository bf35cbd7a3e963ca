"""The rules file: defaults of §7, TOML overrides, and one-line refusals naming file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import RulesError
from rules import RULE_TYPES, RulesConfig, load_rules


def test_defaults_are_the_contract() -> None:
    c = load_rules(None)
    assert (
        c.residual_current_high.limit,
        c.residual_current_high.for_s,
        c.residual_current_high.clear_ratio,
    ) == (
        300.0,
        10.0,
        0.9,
    )
    assert (c.cable_overheat.limit, c.cable_overheat.critical_delta, c.cable_overheat.clear_delta) == (
        70.0,
        20.0,
        5.0,
    )
    assert (c.low_pressure.limit, c.low_pressure.for_s, c.high_pressure.limit) == (0.10, 60.0, 1.20)
    assert (c.pressure_loss.limit, c.pressure_loss.clear, c.low_battery.limit, c.low_battery.clear) == (
        0.05,
        0.07,
        15.0,
        20.0,
    )
    assert c.device_offline.heartbeat_s == {"smoke": 3600.0, "electrical": 60.0, "water": 300.0}
    assert (c.patrol_missed.interval_h, c.patrol_missed.factor, c.patrol_too_fast.max_speed_m_s) == (
        24.0,
        1.1,
        10.0,
    )
    assert (c.fire_confirmed.window_s, c.fire_confirmed.min_detectors) == (120.0, 2)
    severities = {t: c.rule(t).severity for t in RULE_TYPES}
    assert severities == {
        "FIRE_ALARM": "critical",
        "FIRE_CONFIRMED": "critical",
        "TAMPER": "major",
        "LOW_BATTERY": "minor",
        "DEVICE_FAULT": "major",
        "RESIDUAL_CURRENT_HIGH": "major",
        "CABLE_OVERHEAT": "major",
        "TEMP_RISE_FAST": "major",
        "LOW_PRESSURE": "major",
        "PRESSURE_LOSS": "critical",
        "HIGH_PRESSURE": "minor",
        "PATROL_HAZARD": "major",
        "PATROL_MISSED": "minor",
        "PATROL_TOO_FAST": "minor",
        "DEVICE_OFFLINE": "minor",
    }


def test_a_rules_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[CABLE_OVERHEAT]\nlimit = 75\nfor_s = 20\nseverity = "critical"\n\n'
        "[DEVICE_OFFLINE]\nheartbeat_s = { smoke = 1800 }\n\n[TEMP_RISE_FAST]\nenabled = false\n"
    )
    c = load_rules(path)
    assert (c.cable_overheat.limit, c.cable_overheat.for_s, c.cable_overheat.severity) == (
        75.0,
        20.0,
        "critical",
    )
    assert c.cable_overheat.clear_delta == 5.0
    assert c.device_offline.heartbeat_s == {"smoke": 1800.0, "electrical": 60.0, "water": 300.0}
    assert not c.temp_rise_fast.enabled and c.fire_alarm.enabled
    assert c == RulesConfig.from_mapping(
        {
            "CABLE_OVERHEAT": {"limit": 75.0, "for_s": 20, "severity": "critical"},
            "DEVICE_OFFLINE": {"heartbeat_s": {"smoke": 1800}},
            "TEMP_RISE_FAST": {"enabled": False},
        }
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[CABLE_OVERHEAT]\nlimit = "hot"\n',
            "CABLE_OVERHEAT.limit: Input should be a valid number (got 'hot')",
        ),
        ("[CABLE_OVERHEAT]\nlimt = 75\n", "CABLE_OVERHEAT.limt: unknown key"),
        ("[FIRE_ALRM]\nfor_s = 1\n", "FIRE_ALRM: unknown key"),
        (
            '[LOW_PRESSURE]\nseverity = "urgent"\n',
            "LOW_PRESSURE.severity: Input should be 'minor', 'major' or 'critical'",
        ),
        ("[LOW_PRESSURE]\nfor_s = -1\n", "LOW_PRESSURE.for_s: Input should be greater than or equal to 0"),
        ("[LOW_BATTERY]\nlimit = 30\n", "LOW_BATTERY: clear (20.0) must be ≥ limit (30.0)"),
        (
            "[DEVICE_OFFLINE]\nheartbeat_s = { laser = 5 }\n",
            "DEVICE_OFFLINE: heartbeat_s: unknown kind(s) laser",
        ),
        (
            "[TEMP_RISE_FAST]\nmin_readings = 1\n",
            "TEMP_RISE_FAST.min_readings: Input should be greater than or equal",
        ),
        ("[CABLE_OVERHEAT\nlimit = 1\n", "(syntax): invalid TOML"),
        ("CABLE_OVERHEAT = 3\n", "CABLE_OVERHEAT: Input should be a valid dictionary"),
    ],
)
def test_a_wrong_rules_file_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    text_of = str(info.value)
    assert text_of.startswith(f"rules file {path}: ")
    assert message in text_of
    assert "\n" not in text_of


def test_a_missing_rules_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "nope.toml")
