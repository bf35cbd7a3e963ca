"""`firegrid simulate run` reads the broker, topic prefix and rules from the settings ingest reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firegrid import cli_simulate
from firegrid.cli_simulate import run_settings
from rules import RulesConfig


@pytest.fixture(autouse=True)
def _no_firegrid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("FIREGRID_"):
            monkeypatch.delenv(name)


def _errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli_simulate.main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def test_defaults_then_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_settings(None) == ("mqtt://127.0.0.1:1883", "", RulesConfig())
    monkeypatch.setenv("FIREGRID_MQTT_URL", "mqtt://broker.example:1884")
    monkeypatch.setenv("FIREGRID_TOPIC_PREFIX", "t1/")
    url, prefix, _ = run_settings(None)
    assert (url, prefix) == ("mqtt://broker.example:1884", "t1/")
    url, prefix, _ = run_settings(None, url="mqtt://other:1885", prefix="t2/")
    assert (url, prefix) == ("mqtt://other:1885", "t2/")
    assert run_settings(None, prefix="")[1] == ""  # an empty --prefix is a choice, not a default


def test_config_file_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[CABLE_OVERHEAT]\nlimit = 75.0\n")
    config = tmp_path / "firegrid.toml"
    config.write_text(f'mqtt_url = "mqtt://from-file:1886"\ntopic_prefix = "f/"\nrules = "{rules}"\n')
    url, prefix, planned = run_settings(config)
    assert (url, prefix) == ("mqtt://from-file:1886", "f/")
    assert planned.cable_overheat.limit == 75.0
    monkeypatch.setenv("FIREGRID_MQTT_URL", "mqtt://from-env:1887")
    assert run_settings(config)[:2] == ("mqtt://from-env:1887", "f/")


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        (
            {"FIREGRID_MQTT_URL": "http://broker:1883"},
            [],
            "invalid setting FIREGRID_MQTT_URL: must look like mqtt://",
        ),
        (
            {"FIREGRID_MQTT_URL": "mqtts://broker:8883"},
            [],
            "invalid setting FIREGRID_MQTT_URL: the simulator publishes without TLS: use mqtt://",
        ),
        ({"FIREGRID_TOPIC_PREFIX": "t1"}, [], "invalid setting FIREGRID_TOPIC_PREFIX: must end with '/'"),
        ({}, ["--prefix", "a/#/"], "invalid --prefix 'a/#/': must end with '/' and contain no MQTT"),
        ({}, ["--url", "mqtt://"], "invalid --url: MQTT URL must look like"),
        ({"FIREGRID_RULES": "/nonexistent/rules.toml"}, [], "rules file /nonexistent/rules.toml"),
        ({}, ["--config", "/nonexistent/firegrid.toml"], "cannot read config file /nonexistent/"),
    ],
)
def test_invalid_settings_are_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: dict[str, str],
    flags: list[str],
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, err = _errors(["simulate", "run", "--registry", str(tmp_path), *flags], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("firegrid simulate: error: "), err
    assert expected in err[0], err
