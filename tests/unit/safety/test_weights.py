"""The weights file (FIREGRID_INDEX): packaged defaults with reasons, overlays, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import SettingsError
from firegrid._settings import load_settings
from safety import DEFAULTS, GROUPS, WeightsError, load_weights


def test_defaults_name_exactly_the_groups_and_indicators_of_the_tree() -> None:
    weights = load_weights()
    assert weights.source == "defaults"
    assert list(weights.groups) == ["hazards", "handling", "devices", "patrol"]
    assert set(weights.groups) == set(GROUPS) == set(weights.indicators)
    assert sum(weights.groups.values()) == pytest.approx(1.0)
    for indicators in weights.indicators.values():
        assert sum(indicators.values()) == pytest.approx(1.0)
    text = DEFAULTS.read_text()
    for line in text.splitlines():  # every weight has its reason on the comment lines above it
        if "=" in line and not line.startswith("#"):
            previous = text.splitlines()[text.splitlines().index(line) - 1]
            assert previous.startswith("#"), line


def test_a_file_overrides_some_weights(tmp_path: Path) -> None:
    path = tmp_path / "index.toml"
    path.write_text("[groups]\npatrol = 0\n[hazards]\nminor = 1\n")
    weights = load_weights(path)
    assert weights.groups["patrol"] == 0.0 and weights.groups["hazards"] == 0.4
    assert weights.indicators["hazards"]["minor"] == 1.0
    assert weights.source == str(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[groups\n", "not valid TOML"),
        ("[fire]\nx = 1\n", "unknown section [fire] (known: groups, hazards, handling, patrol, devices)"),
        ("[hazards]\nfatal = 1\n", "unknown weight fatal in [hazards] (known: critical, major, minor)"),
        ("[hazards]\ncritical = -0.5\n", "[hazards] critical must be a non-negative number, not -0.5"),
        ("[hazards]\ncritical = true\n", "[hazards] critical must be a non-negative number, not True"),
        ("[hazards]\ncritical = 'high'\n", "[hazards] critical must be a non-negative number, not 'high'"),
        ("[hazards]\ncritical = nan\n", "[hazards] critical must be a non-negative number, not nan"),
        ("hazards = 1\n", "[hazards] must be a table of weights"),
        ("[devices]\nonline = 0\nfault_free = 0\nbattery_ok = 0\n", "the weights of [devices] add up to 0"),
        (
            "[groups]\nhazards = 0\nhandling = 0\ndevices = 0\npatrol = 0\n",
            "the weights of [groups] add up to 0",
        ),
    ],
)
def test_a_wrong_file_stops_the_start_up_with_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "index.toml"
    path.write_text(text)
    with pytest.raises(WeightsError) as raised:
        load_weights(path)
    assert str(raised.value).startswith(f"{path}: ") and problem in str(raised.value)
    with pytest.raises(SettingsError) as stopped:
        load_settings(environ={"FIREGRID_INDEX": str(path)})
    message = str(stopped.value)
    assert message.startswith(f"invalid setting FIREGRID_INDEX: {path}: ") and "\n" not in message


def test_a_missing_file_and_an_unset_one(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read it"):
        load_settings(environ={"FIREGRID_INDEX": str(tmp_path / "nope.toml")})
    assert load_settings(environ={"FIREGRID_INDEX": ""}).index is None
    assert load_settings(environ={}).index_weights == load_weights()
